"""One trigger pass: take stock, decide, and (when the policy fires) train, gate, register, promote.

``run_trigger_once`` is what the timer and blob triggers of the Functions app and
``edgeloop cloud trigger`` call. A run is recorded from start to end in the run ledger; bad
samples and labels are listed there with reasons; nothing is promoted unless the whole run
(training, publishing, gate) went through.

Every labelled sample trains except the devices' audit share (blob metadata
``strategy = "audit"``), which only evaluates: it is the gate's current-data set and the source
of the field accuracy each pass reports. A run whose gate cannot decide yet ends ``waiting``,
consuming nothing, and the trigger tries again when more labels arrived.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edgeloop.blobstore import BlobContainer, BlobStoreError
from edgeloop.clock import Clock, SystemClock
from edgeloop_cloud import labels as labels_mod
from edgeloop_cloud.basedata import BaseSet, load_base_data
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.errors import CloudError, SampleError
from edgeloop_cloud.field import field_accuracy
from edgeloop_cloud.gate import GateDecision
from edgeloop_cloud.gating import Gated, card, eval_items, gate_model
from edgeloop_cloud.registry import Champion, Registry
from edgeloop_cloud.runs import Run, RunLedger, make_run_id
from edgeloop_cloud.samples import SampleOpener, SampleRef, decode_sample, fetch_plaintext, find_samples
from edgeloop_cloud.trainers.azureml import AzureMLPort
from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.factory import make_trainer, run_trainer
from edgeloop_cloud.trainers.job import TrainingJob
from edgeloop_cloud.trainers.samples import LabelledSample, labelled_sample
from edgeloop_cloud.training import Example
from edgeloop_cloud.trigger import TriggerDecision, TriggerFacts, evaluate_policy

log = logging.getLogger(__name__)


@dataclass
class CloudServices:
    """The ports and settings a pass works with."""

    data: BlobContainer
    models: BlobContainer
    runs: BlobContainer
    opener: SampleOpener
    signing_key: bytes
    config: CloudConfig = field(default_factory=CloudConfig)
    clock: Clock = field(default_factory=SystemClock)
    azureml: AzureMLPort | None = None  # the azureml trainer's port; the real client when None

    def close(self) -> None:
        for container in (self.data, self.models, self.runs):
            container.close()

    @property
    def registry(self) -> Registry:
        return Registry(self.models, clock=self.clock)

    @property
    def ledger(self) -> RunLedger:
        return RunLedger(self.runs, self.config.model_name, clock=self.clock)


@dataclass
class Inventory:
    """Samples and labels as found now."""

    samples: dict[str, SampleRef]
    labels: labels_mod.LabelSet
    labelled: dict[str, str]  # sample id -> label, for samples that exist
    unknown_label_ids: list[str]
    unlabelled: list[SampleRef]

    @property
    def audit_ids(self) -> set[str]:
        """Labelled samples of the devices' audit share: evaluation only."""
        return {sid for sid in self.labelled if self.samples[sid].is_audit}

    def label_problems(self) -> list[str]:
        """Every problem with the labels, in words: unreadable rows, duplicates, conflicts,
        labels for samples that were never uploaded."""
        unknown = [
            f"label for unknown sample {sid!r}: no uploaded sample has that id"
            for sid in self.unknown_label_ids
        ]
        return self.labels.problems + unknown

    def field_accuracy(self) -> list[dict[str, Any]]:
        return [f.as_dict() for f in field_accuracy(self.samples.values(), self.labelled)]


@dataclass
class PassOutcome:
    """What one trigger pass did."""

    trigger: TriggerDecision
    run_id: str | None = None
    status: str = "idle"  # idle | skipped | promoted | rejected | waiting | lost_race | failed
    version: str | None = None
    reasons: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)  # train, audit, skipped labelled samples
    gate: dict[str, Any] | None = None  # the gate's verdict and its audit / hold-out comparisons
    field_accuracy: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger.as_dict(),
            "run_id": self.run_id,
            "status": self.status,
            "version": self.version,
            "reasons": self.reasons,
            "counts": self.counts,
            "gate": self.gate,
            "field_accuracy": self.field_accuracy,
        }


def take_inventory(svc: CloudServices) -> Inventory:
    samples = {ref.sample_id: ref for ref in find_samples(svc.data)}
    label_set = labels_mod.load_labels(svc.data)
    labelled = {sid: entry.label for sid, entry in label_set.labels.items() if sid in samples}
    unknown = sorted(sid for sid in label_set.labels if sid not in samples)
    unlabelled = [ref for sid, ref in sorted(samples.items()) if sid not in labelled]
    return Inventory(samples, label_set, labelled, unknown, unlabelled)


def max_drift_since(svc: CloudServices, since: datetime | None) -> float | None:
    """The largest drift value in device summaries routed to the data container after ``since``.

    Accepts JSON or JSON Lines of ``edgeloop.summary/1`` bodies, bare or wrapped as IoT Hub
    message routing writes them (``{"Body": {...}}``).
    """
    best: float | None = None
    for info in svc.data.list(svc.config.summaries_prefix):
        if since is not None and info.last_modified <= since:
            continue
        data, _ = svc.data.read(info.name)
        for line in data.decode("utf-8", errors="replace").splitlines():
            try:
                doc = json.loads(line) if line.strip() else None
            except ValueError:
                continue
            body = doc.get("Body", doc) if isinstance(doc, dict) else None
            drift = body.get("drift") if isinstance(body, dict) else None
            if isinstance(drift, dict):
                values = [float(v) for v in drift.values() if isinstance(v, int | float)]
                if values:
                    best = max(values) if best is None else max(best, *values)
    return best


def check_trigger(svc: CloudServices) -> tuple[TriggerDecision, Inventory]:
    """The trigger's verdict now, and the inventory it looked at."""
    inventory = take_inventory(svc)
    state = svc.ledger.state()
    new = {sid: lbl for sid, lbl in inventory.labelled.items() if sid not in state.consumed}
    waited = state.waiting_at_labelled
    facts = TriggerFacts(
        now=svc.clock.now(),
        new_labels=len(new),
        new_per_class=dict(Counter(new.values())),
        max_drift=max_drift_since(svc, state.last_run_at),
        last_run_at=state.last_run_at,
        labels_since_wait=None if waited is None else max(0, len(inventory.labelled) - waited),
    )
    return evaluate_policy(svc.config.trigger, facts), inventory


def export_labelling_queue(svc: CloudServices, inventory: Inventory) -> int:
    """Write the unlabelled samples to ``labelling/queue.jsonl`` for the labelling step."""
    return labels_mod.export_queue(svc.data, (ref.describe() for ref in inventory.unlabelled))


def run_trigger_once(svc: CloudServices, *, force: bool = False) -> PassOutcome:
    """One pass: export the labelling queue, ask the policy, and run when it fires (or ``force``)."""
    decision, inventory = check_trigger(svc)
    queued = export_labelling_queue(svc, inventory)
    log.info(
        "%d samples, %d labelled, %d queued for labelling; trigger %s: %s",
        len(inventory.samples), len(inventory.labelled), queued,
        "fires" if decision.fire else "waits", "; ".join(decision.reasons),
    )  # fmt: skip
    if force and not decision.fire:
        decision = TriggerDecision(True, ["forced", *decision.reasons])
    outcome = PassOutcome(trigger=decision, field_accuracy=inventory.field_accuracy())
    if not decision.fire:
        outcome.reasons = decision.reasons
        return outcome
    champion = svc.registry.champion(svc.config.model_name)
    run_id = make_run_id(
        svc.config.model_name, inventory.labelled.items(), champion.version if champion else None
    )
    outcome.run_id = run_id
    run = svc.ledger.claim(run_id, {"trigger": decision.reasons, "labelled": len(inventory.labelled)})
    if run is None:
        outcome.status, outcome.reasons = "skipped", [f"run {run_id} is finished or in progress elsewhere"]
        return outcome
    try:
        return execute_run(svc, run, inventory, champion, outcome)
    except Exception as exc:
        log.exception("run %s failed", run_id)
        run.finish("failed", error=f"{type(exc).__name__}: {exc}")
        outcome.status, outcome.reasons = "failed", [f"{type(exc).__name__}: {exc}"]
        return outcome


def _load_examples(
    svc: CloudServices, inventory: Inventory
) -> tuple[list[Example], list[dict[str, str]], list[LabelledSample]]:
    examples, skipped, samples = [], [], []
    for sample_id, label in sorted(inventory.labelled.items()):
        ref = inventory.samples[sample_id]
        try:
            plaintext = fetch_plaintext(svc.data, ref, svc.opener)
            image = decode_sample(plaintext, sample_id=sample_id)
        except (SampleError, CloudError, BlobStoreError) as exc:
            skipped.append({"sample_id": sample_id, "blob": ref.blob_name, "reason": str(exc)})
            continue
        sha = hashlib.sha256(plaintext).hexdigest()
        examples.append(
            Example(image=image, label=label, sample_id=sample_id, blob=ref.blob_name, sha256=sha)
        )
        samples.append(labelled_sample(ref, label, plaintext, sha))
    return examples, skipped, samples


def execute_run(
    svc: CloudServices, run: Run, inventory: Inventory, champion: Champion | None, outcome: PassOutcome
) -> PassOutcome:
    """Train, publish, gate and maybe promote; every step lands in the run record."""
    cfg, name = svc.config, svc.config.model_name
    examples, skipped, samples = _load_examples(svc, inventory)
    audit_ids = inventory.audit_ids
    new_train = [e for e in examples if e.sample_id not in audit_ids]
    audit = [e for e in examples if e.sample_id in audit_ids]
    outcome.counts = {"train": len(new_train), "audit": len(audit), "skipped": len(skipped)}
    run.update(
        skipped_samples=skipped,
        unknown_label_ids=inventory.unknown_label_ids,
        label_problems=inventory.label_problems(),
        label_corrections=inventory.labels.corrections,
        counts=outcome.counts,
        field_accuracy=outcome.field_accuracy,
    )
    if champion is not None and len(audit) < cfg.gate.min_audit_items:
        why = (
            f"the audit set has {len(audit)} labelled items, the gate needs {cfg.gate.min_audit_items} "
            f"to judge a candidate against {champion.version}: waiting for more audit labels"
        )
        return _wait(run, outcome, inventory, [why])
    base = _base_set(svc)
    run.update(base_data=base.description)
    base_examples = [
        Example(image=i, label=lbl) for i, lbl in zip(base.train_images, base.train_labels, strict=True)
    ]
    log.info("run %s: training on %d base + %d new samples (%d audit samples evaluate, %d skipped)",
             run.run_id, len(base_examples), len(new_train), len(audit), len(skipped))  # fmt: skip
    trainer = make_trainer(cfg.trainer, base=base_examples, params=cfg.training, azureml=svc.azureml,
                           base_data=_base_reference(cfg))  # fmt: skip
    champion_model = _champion_model(svc, champion)  # read once: training starts from it, the gate scores it
    job = TrainingJob(model_name=name, run_id=run.run_id, seed=cfg.training.seed, samples=samples,
                      examples=new_train, champion=champion_model,
                      champion_version=champion.version if champion else None)  # fmt: skip
    try:
        trained = run_trainer(trainer, job)
    except TrainerFailed as exc:
        return _trainer_failed(run, outcome, trainer.describe(), exc)
    version = svc.registry.claim_version(name)
    outcome.version = version
    model = trained.to_bytes(name=name, version=version)
    trainer_doc = {**trainer.describe(), "metrics": trained.metrics, "log_tail": trained.log_tail}
    run.update(phase="trained", version=version, trainer=trainer_doc)
    gated = gate_model(model=model, items=eval_items(base, audit), champion=champion, registry=svc.registry,
                       config=cfg.gate, clock=svc.clock, champion_model=champion_model)  # fmt: skip
    gated.doc["run_id"] = run.run_id
    model_card = card(manifest=trained.manifest, base=base.description, new_train=new_train, audit=audit,
                      skipped=skipped, evaluation=gated.decision.candidate, gate_doc=gated.doc,
                      champion=champion, run_id=run.run_id, labels=trained.labels,
                      preprocess=trained.preprocess.model_dump())  # fmt: skip
    svc.registry.publish(name, version, model, private_key_pem=svc.signing_key, card=model_card)
    status = _promote(svc, version, champion, gated.decision)
    log.info("run %s: %s %s: %s", run.run_id, status, version, "; ".join(gated.decision.reasons))
    svc.registry.record_decision(name, version, {**gated.doc, "outcome": status})
    outcome.gate = gated.summary()
    if status == "waiting":
        return _wait(run, outcome, inventory, gated.decision.reasons)
    outcome.status, outcome.reasons = status, gated.decision.reasons
    consumed = [e.sample_id for e in examples] + [s["sample_id"] for s in skipped]
    run.finish(status, consumed=consumed, gate=outcome.gate, reasons=outcome.reasons)
    return outcome


def _base_set(svc: CloudServices) -> BaseSet:
    """The configured base data, loaded once for the run (training and gate use the same set)."""
    cfg = svc.config
    return load_base_data(cfg.training.base_data, data=svc.data, data_container=cfg.data_container)


def _base_reference(cfg: CloudConfig) -> str | None:
    """What trainers of other kinds get as base_data: the configured reference."""
    base = cfg.training.base_data
    return base.reference(container=cfg.data_container) if base else None


def _champion_model(svc: CloudServices, champion: Champion | None) -> bytes | None:
    """The champion's ONNX, for training to continue from; None when there is none or it is unreadable."""
    if champion is None:
        return None
    try:
        return svc.registry.read_model(champion.name, champion.version)
    except (CloudError, BlobStoreError) as exc:
        log.warning("champion %s unreadable, training from scratch: %s", champion.version, exc)
        return None


def _trainer_failed(
    run: Run, outcome: PassOutcome, trainer: dict[str, object], exc: TrainerFailed
) -> PassOutcome:
    """End the run ``failed`` with the trainer's reason and log tail; the champion stays."""
    log.warning("run %s: trainer %s failed: %s", run.run_id, trainer, exc.reason)
    outcome.status, outcome.reasons = "failed", [exc.reason]
    run.finish("failed", error=exc.reason, trainer={**trainer, "log_tail": exc.log_tail})
    return outcome


def _wait(run: Run, outcome: PassOutcome, inventory: Inventory, reasons: list[str]) -> PassOutcome:
    """End the run ``waiting``: nothing consumed, the trigger retries once more labels arrived."""
    log.info("run %s waits: %s", run.run_id, "; ".join(reasons))
    outcome.status, outcome.reasons = "waiting", reasons
    run.finish("waiting", waiting_at=len(inventory.labelled), gate=outcome.gate, reasons=reasons)
    return outcome


def _promote(svc: CloudServices, version: str, champion: Champion | None, decision: GateDecision) -> str:
    if decision.outcome != "promote":
        return "waiting" if decision.outcome == "wait" else "rejected"
    won = svc.registry.promote(
        svc.config.model_name, version, expected=champion, reason="; ".join(decision.reasons)
    )
    return "promoted" if won else "lost_race"


def gate_version(svc: CloudServices, version: str) -> PassOutcome:
    """Gate a published version against the current champion again and promote it if it passes.

    The evaluation set is the fixed clean hold-out plus the audit samples labelled now (more
    than when the version was trained, if labels arrived since): a version the gate waited on
    can be gated again this way.
    """
    name, registry = svc.config.model_name, svc.registry
    model = registry.read_model(name, version)
    champion = registry.champion(name)
    outcome = PassOutcome(trigger=TriggerDecision(True, [f"gate {version} on request"]), version=version)
    if champion is not None and champion.version == version:
        outcome.status, outcome.reasons = "skipped", [f"{version} is already the champion"]
        return outcome
    inventory = take_inventory(svc)
    audit_only = Inventory(
        samples=inventory.samples,
        labels=inventory.labels,
        labelled={sid: lbl for sid, lbl in inventory.labelled.items() if sid in inventory.audit_ids},
        unknown_label_ids=inventory.unknown_label_ids,
        unlabelled=[],
    )
    audit, skipped, _ = _load_examples(svc, audit_only)
    base = _base_set(svc)
    gated: Gated = gate_model(model=model, items=eval_items(base, audit), champion=champion,
                              registry=registry, config=svc.config.gate, clock=svc.clock)  # fmt: skip
    status = _promote(svc, version, champion, gated.decision)
    gated.doc["eval_set"]["skipped"] = skipped
    gated.doc["base_data"] = base.description
    registry.record_decision(name, version, {**gated.doc, "outcome": status})
    outcome.status, outcome.reasons = status, gated.decision.reasons
    outcome.counts = {"audit": len(audit), "skipped": len(skipped)}
    outcome.gate = gated.summary()
    outcome.field_accuracy = inventory.field_accuracy()
    return outcome
