"""The gate inside a run: the evaluation set, both models scored on it, the decision record.

The evaluation set is the base data's fixed clean hold-out plus the labelled audit samples
(the devices' random share of current data); see ``gate`` for how the two combine.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edgeloop.blobstore import BlobStoreError
from edgeloop.clock import Clock
from edgeloop_cloud.basedata import BaseSet
from edgeloop_cloud.errors import CloudError
from edgeloop_cloud.evaluation import AUDIT, HOLDOUT, EvalItem, Evaluation, evaluate
from edgeloop_cloud.gate import GateConfig, GateDecision, decide
from edgeloop_cloud.registry import Champion, Registry
from edgeloop_cloud.training import Example


def eval_items(base: BaseSet, audit: Sequence[Example]) -> list[EvalItem]:
    """The clean hold-out, then the audit samples, each tagged with its set."""
    items = [
        EvalItem(i, lbl, HOLDOUT) for i, lbl in zip(base.holdout_images, base.holdout_labels, strict=True)
    ]
    return items + [EvalItem(e.image, e.label, AUDIT) for e in sorted(audit, key=lambda e: e.sample_id)]


@dataclass
class Gated:
    """A gate decision with its record."""

    decision: GateDecision
    doc: dict[str, Any]

    def summary(self) -> dict[str, Any]:
        """What a round shows: the verdict, the audit comparison and the hold-out comparison."""
        improvement, holdout = self.decision.check("improvement"), self.decision.check("holdout")
        floor = self.decision.check("floor")
        return {
            "decision": self.decision.outcome,
            "audit": improvement.stats if improvement else None,
            "holdout": holdout.stats if holdout else None,
            "floor": floor.stats if floor else None,
            "reasons": self.decision.reasons,
        }


def gate_model(
    *,
    model: bytes,
    items: list[EvalItem],
    champion: Champion | None,
    registry: Registry,
    config: GateConfig,
    clock: Clock,
    champion_model: bytes | None = None,
) -> Gated:
    """Score ``model`` and the champion on ``items`` and decide; the record says on what.
    ``champion_model``: the champion's bytes when the caller has them already (read and
    checked against its card), else they are read from ``registry``."""
    candidate = evaluate(model, items, repeats=config.latency_repeats, clock=clock)
    champion_eval = (
        _champion_eval(registry, champion, items, config, clock, champion_model) if champion else None
    )
    decision = decide(
        candidate, champion_eval, config, champion_version=champion.version if champion else None
    )
    audit_n = sum(1 for i in items if i.origin == AUDIT)
    doc = {
        **decision.as_dict(),
        "eval_set": {"holdout": len(items) - audit_n, "audit": audit_n, "total": len(items)},
        "config": config.model_dump(),
        "decided_at": clock.now().isoformat(),
    }
    return Gated(decision, doc)


def _champion_eval(
    registry: Registry,
    champion: Champion,
    items: list[EvalItem],
    config: GateConfig,
    clock: Clock,
    model: bytes | None,
) -> Evaluation:
    if model is None:
        try:
            model = registry.read_model(champion.name, champion.version)
        except (CloudError, BlobStoreError) as exc:
            return Evaluation(loaded=False, error=str(exc))
    return evaluate(model, items, repeats=config.latency_repeats, clock=clock)


def card(
    *,
    manifest: dict[str, Any],
    base: dict[str, object],
    new_train: Sequence[Example],
    audit: Sequence[Example],
    skipped: list[dict[str, str]],
    evaluation: Evaluation,
    gate_doc: dict[str, Any],
    champion: Champion | None,
    run_id: str,
    labels: list[str],
    preprocess: dict[str, Any],
) -> dict[str, Any]:
    """The model card's content (the registry adds name, version, hashes and signature)."""
    audited = [
        {"sample_id": e.sample_id, "blob": e.blob, "sha256": e.sha256, "label": e.label} for e in audit
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
            "slices": {name: evaluation.slice_summary(name) for name in (HOLDOUT, AUDIT)},
            "per_class": evaluation.per_class,
            "latency_ms_per_sample": evaluation.latency_ms,
        },
        "lineage": {"parent_version": champion.version if champion else None, "run_id": run_id},
        "training_manifest": {
            **manifest,
            "base_data": base,
            "new_train_count": len(new_train),
            "audit_samples": audited,
            "skipped_samples": skipped,
        },
        "gate": gate_doc,
    }
