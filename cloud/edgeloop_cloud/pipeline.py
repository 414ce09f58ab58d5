"""One trigger pass: take stock, decide, and (when the policy fires) train, gate, register, promote.

``run_trigger_once`` is what the timer and blob triggers of the Functions app and
``edgeloop cloud trigger`` call. A run is recorded from start to end in the run ledger; bad
samples and labels are listed there with reasons; nothing is promoted unless the whole run
(training, publishing, gate) went through.
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
from edgeloop_cloud.basedata import load_base_set
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.errors import CloudError, SampleError
from edgeloop_cloud.gate import EvalItem, Evaluation, GateDecision, decide, evaluate, slice_weights
from edgeloop_cloud.registry import Champion, Registry
from edgeloop_cloud.runs import Run, RunLedger, make_run_id
from edgeloop_cloud.samples import SampleOpener, SampleRef, decode_image, fetch_plaintext, find_samples
from edgeloop_cloud.training import Example, default_preprocess, train
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


@dataclass
class PassOutcome:
    """What one trigger pass did."""

    trigger: TriggerDecision
    run_id: str | None = None
    status: str = "idle"  # idle | skipped | promoted | rejected | lost_race | failed
    version: str | None = None
    reasons: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "trigger": self.trigger.as_dict(),
            "run_id": self.run_id,
            "status": self.status,
            "version": self.version,
            "reasons": self.reasons,
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
    facts = TriggerFacts(
        now=svc.clock.now(),
        new_labels=len(new),
        new_per_class=dict(Counter(new.values())),
        max_drift=max_drift_since(svc, state.last_run_at),
        last_run_at=state.last_run_at,
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
    outcome = PassOutcome(trigger=decision)
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


def _load_examples(svc: CloudServices, inventory: Inventory) -> tuple[list[Example], list[dict[str, str]]]:
    examples, skipped = [], []
    for sample_id, label in sorted(inventory.labelled.items()):
        ref = inventory.samples[sample_id]
        try:
            plaintext = fetch_plaintext(svc.data, ref, svc.opener)
            image = decode_image(plaintext, sample_id=sample_id)
        except (SampleError, CloudError, BlobStoreError) as exc:
            skipped.append({"sample_id": sample_id, "blob": ref.blob_name, "reason": str(exc)})
            continue
        sha = hashlib.sha256(plaintext).hexdigest()
        examples.append(
            Example(image=image, label=label, sample_id=sample_id, blob=ref.blob_name, sha256=sha)
        )
    return examples, skipped


def execute_run(
    svc: CloudServices, run: Run, inventory: Inventory, champion: Champion | None, outcome: PassOutcome
) -> PassOutcome:
    """Train, publish, gate and maybe promote; every step lands in the run record."""
    cfg, name = svc.config, svc.config.model_name
    examples, skipped = _load_examples(svc, inventory)
    run.update(
        skipped_samples=skipped,
        unknown_label_ids=inventory.unknown_label_ids,
        label_problems=inventory.labels.problems,
    )
    new_train, new_hold = examples, list[Example]()  # every new label trains
    base = load_base_set(seed=cfg.training.base_seed)
    base_examples = [
        Example(image=i, label=lbl) for i, lbl in zip(base.train_images, base.train_labels, strict=True)
    ]
    log.info("run %s: training on %d base + %d new samples (%d held out, %d skipped)",
             run.run_id, len(base_examples), len(new_train), len(new_hold), len(skipped))  # fmt: skip
    trained = train(
        base=base_examples,
        new=new_train,
        preprocess=default_preprocess(),
        params=cfg.training,
        init=_champion_model(svc, champion),
    )
    version = svc.registry.claim_version(name)
    outcome.version = version
    model = trained.to_bytes(name=name, version=version)
    run.update(phase="trained", version=version, new_train=len(new_train), new_holdout=len(new_hold))

    items = [
        EvalItem(i, lbl, "fixed") for i, lbl in zip(base.holdout_images, base.holdout_labels, strict=True)
    ]
    items += [EvalItem(e.image, e.label, "new") for e in new_hold]
    candidate_eval = _evaluate(svc, model, items)
    champion_eval = _champion_eval(svc, champion, items) if champion else None
    decision = decide(
        candidate_eval, champion_eval, cfg.gate, champion_version=champion.version if champion else None
    )
    gate_doc = {
        **decision.as_dict(),
        "run_id": run.run_id,
        "eval_set": {"fixed": len(base.holdout_labels), "new": len(new_hold), "total": len(items)},
        "config": cfg.gate.model_dump(),
        "decided_at": svc.clock.now().isoformat(),
    }
    card = _card(trained.manifest, base.description, new_train, new_hold, skipped, candidate_eval, gate_doc,
                 champion, run.run_id, trained.labels, trained.preprocess.model_dump())  # fmt: skip
    svc.registry.publish(name, version, model, private_key_pem=svc.signing_key, card=card)
    status = _promote(svc, version, champion, decision)
    log.info("run %s: %s %s: %s", run.run_id, status, version, "; ".join(decision.reasons))
    svc.registry.record_decision(name, version, {**gate_doc, "outcome": status})
    outcome.status, outcome.reasons = status, decision.reasons
    consumed = [e.sample_id for e in examples] + [s["sample_id"] for s in skipped]
    run.finish(status, consumed=consumed, gate=gate_doc["decision"], reasons=decision.reasons)
    return outcome


def _champion_model(svc: CloudServices, champion: Champion | None) -> bytes | None:
    """The champion's ONNX, for training to continue from; None when there is none or it is unreadable."""
    if champion is None:
        return None
    try:
        return svc.registry.read_model(champion.name, champion.version)
    except (CloudError, BlobStoreError) as exc:
        log.warning("champion %s unreadable, training from scratch: %s", champion.version, exc)
        return None


def _champion_eval(svc: CloudServices, champion: Champion, items: list[EvalItem]) -> Evaluation:
    try:
        model = svc.registry.read_model(champion.name, champion.version)
    except (CloudError, BlobStoreError) as exc:
        return Evaluation(loaded=False, error=str(exc))
    return _evaluate(svc, model, items)


def _evaluate(svc: CloudServices, model: bytes, items: list[EvalItem]) -> Evaluation:
    """Score a model on the gate's held-out set, weighted by the gate's slice shares."""
    gate = svc.config.gate
    return evaluate(
        model, items, repeats=gate.latency_repeats, clock=svc.clock, weights=slice_weights(items, gate)
    )


def _promote(svc: CloudServices, version: str, champion: Champion | None, decision: GateDecision) -> str:
    if not decision.promote:
        return "rejected"
    won = svc.registry.promote(
        svc.config.model_name, version, expected=champion, reason="; ".join(decision.reasons)
    )
    return "promoted" if won else "lost_race"


def _card(
    manifest: dict[str, Any],
    base: dict[str, object],
    new_train: list[Example],
    new_hold: list[Example],
    skipped: list[dict[str, str]],
    evaluation: Evaluation,
    gate_doc: dict[str, Any],
    champion: Champion | None,
    run_id: str,
    labels: list[str],
    preprocess: dict[str, Any],
) -> dict[str, Any]:
    held = [
        {"sample_id": e.sample_id, "blob": e.blob, "sha256": e.sha256, "label": e.label} for e in new_hold
    ]
    return {
        "labels": labels,
        "preprocess": preprocess,
        "metrics": {
            "overall": {
                "accuracy": evaluation.accuracy,
                "macro_f1": evaluation.macro_f1,
                "count": evaluation.count,
            },
            "per_class": evaluation.per_class,
            "latency_ms_per_sample": evaluation.latency_ms,
        },
        "lineage": {"parent_version": champion.version if champion else None, "run_id": run_id},
        "training_manifest": {
            **manifest,
            "base_data": base,
            "new_train_count": len(new_train),
            "holdout_samples": held,
            "skipped_samples": skipped,
        },
        "gate": gate_doc,
    }


def gate_version(svc: CloudServices, version: str) -> PassOutcome:
    """Gate a published version against the current champion again and promote it if it passes.

    The held-out set is the fixed base hold-out plus the version's own held-out samples (from
    its card), fetched again; samples that no longer open are left out and listed.
    """
    name, registry = svc.config.model_name, svc.registry
    model = registry.read_model(name, version)
    card = registry.card(name, version)
    champion = registry.champion(name)
    outcome = PassOutcome(trigger=TriggerDecision(True, [f"gate {version} on request"]), version=version)
    if champion is not None and champion.version == version:
        outcome.status, outcome.reasons = "skipped", [f"{version} is already the champion"]
        return outcome
    base = load_base_set(seed=svc.config.training.base_seed)
    items = [
        EvalItem(i, lbl, "fixed") for i, lbl in zip(base.holdout_images, base.holdout_labels, strict=True)
    ]
    missing = []
    for held in card.get("training_manifest", {}).get("holdout_samples", []):
        ref = next(find_samples(svc.data, prefix=held["blob"]), None)
        try:
            if ref is None:
                raise SampleError(f"blob {held['blob']} is gone")
            items.append(
                EvalItem(decode_image(fetch_plaintext(svc.data, ref, svc.opener)), held["label"], "new")
            )
        except (CloudError, BlobStoreError) as exc:
            missing.append(f"{held['sample_id']}: {exc}")
    candidate_eval = _evaluate(svc, model, items)
    champion_eval = _champion_eval(svc, champion, items) if champion else None
    champion_version = champion.version if champion else None
    decision = decide(candidate_eval, champion_eval, svc.config.gate, champion_version=champion_version)
    status = _promote(svc, version, champion, decision)
    doc = {
        **decision.as_dict(),
        "outcome": status,
        "eval_set": {"total": len(items), "missing": missing},
        "config": svc.config.gate.model_dump(),
        "decided_at": svc.clock.now().isoformat(),
    }
    registry.record_decision(name, version, doc)
    outcome.status, outcome.reasons = status, decision.reasons
    return outcome
