"""The demo's cloud side in rounds: label what arrived, ask the trigger, show each round.

Each round is one run of the retrain trigger: the labels it used (training and audit), the
gate's decision with the audit gain and its interval, and the field accuracy of the deployed
model measured on the devices' audit share. A promoted model goes to the inference module's
twin at once, so the next round's uncertain frames are picked by the newer model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edgeloop_demo.labeller import Labeller

MODEL_NAME = "digits"
#: Share of the stream the filter sends at random for evaluation only (the audit share). The
#: product's default is 2%; the demo's stream is short, so it audits more to let the gate decide.
AUDIT_SHARE = 0.2
#: Rounds the demo aims for over a run (the trigger fires after budget / (ROUNDS + 1) labels).
ROUNDS = 3


def cloud_config(*, budget: int, base_data: dict[str, Any]) -> dict[str, Any]:
    """The demo's ``CloudConfig`` settings: rounds as labels arrive, a gate fed by the audit share,
    ``base_data`` (the ``training.base_data`` setting) naming the digits base set."""
    return {
        "model_name": MODEL_NAME,
        "trigger": {
            "min_new_labels": max(8, budget // (ROUNDS + 1)),
            "cooldown_minutes": 0,
            "retry_after_labels": 6,
        },
        "training": {"base_data": base_data},
        # A quick run's audit share holds under a hundred items: the gate judges at 90% one-sided
        # confidence (a real deployment keeps the default 95% and waits for more audit labels).
        "gate": {"min_audit_items": 15, "confidence": 0.9},
    }


@dataclass
class CloudRounds:
    """Runs the cloud passes of one demo and keeps a record of every round."""

    svc: Any  # edgeloop_cloud.pipeline.CloudServices
    labeller: Labeller
    say: Callable[[str], None]
    rounds: list[dict[str, Any]] = field(default_factory=list)

    def bootstrap(self) -> Any:
        """Train the first model on clean base data and register it as champion (round 0)."""
        from edgeloop_cloud.pipeline import run_trigger_once

        outcome = run_trigger_once(self.svc, force=True)
        champion = self.svc.registry.champion(MODEL_NAME)
        if champion is None:
            return None
        self.rounds.append(_entry(0, outcome, labelled=0))
        return champion

    def step(self, *, force: bool = False) -> tuple[Any, bool]:
        """Label what arrived and run one trigger pass; returns (champion, promoted now)."""
        from edgeloop_cloud.pipeline import run_trigger_once

        self.labeller.label_new(self.svc.data)
        outcome = run_trigger_once(self.svc, force=force)
        champion = self.svc.registry.champion(MODEL_NAME)
        if outcome.run_id is None or outcome.status in ("idle", "skipped"):
            return champion, False
        entry = _entry(len(self.rounds), outcome, labelled=len(self.labeller.labelled))
        self.rounds.append(entry)
        self.say(round_line(entry))
        return champion, outcome.status == "promoted"

    def finish(self) -> tuple[Any, bool]:
        """A last forced round if labels arrived since the last one."""
        self.labeller.label_new(self.svc.data)
        last = self.rounds[-1]["labelled"] if self.rounds else 0
        if len(self.labeller.labelled) > last:
            return self.step(force=True)
        return self.svc.registry.champion(MODEL_NAME), False

    @property
    def labelled(self) -> int:
        return len(self.labeller.labelled)


def _entry(number: int, outcome: Any, *, labelled: int) -> dict[str, Any]:
    gate = outcome.gate or {}
    audit = gate.get("audit") or {}
    return {
        "round": number,
        "version": outcome.version,
        "status": outcome.status,
        "labelled": labelled,
        "train": outcome.counts.get("train", 0),
        "audit": outcome.counts.get("audit", 0),
        "gain": audit.get("difference"),
        "interval": audit.get("interval"),
        "p_value": audit.get("p_value"),
        "field_accuracy": outcome.field_accuracy,
        "reasons": outcome.reasons,
    }


def round_line(entry: dict[str, Any]) -> str:
    """One round in a line: labels used, the gate's decision, the gain and its interval, field accuracy."""
    head = f"round {entry['round']}: {entry['version'] or 'no candidate'} {entry['status']}"
    used = f"{entry['train']} train + {entry['audit']} audit labels"
    if entry.get("gain") is not None:
        lo, hi = entry["interval"]
        gate = f"audit gain {entry['gain']:+.1%} [{lo:+.1%}, {hi:+.1%}] p={entry['p_value']:.2g}"
    elif entry["status"] in ("promoted", "rejected") and entry["round"] == 0:
        gate = "first model (clean hold-out floor)"
    else:
        gate = "; ".join(entry["reasons"])[:110]
    fields = ", ".join(_field(f) for f in entry.get("field_accuracy", [])) or "no audit labels yet"
    return f"{head} | {used} | {gate} | field accuracy {fields}"


def _field(doc: dict[str, Any]) -> str:
    if not doc.get("n"):
        return f"{doc['version']}@{doc['device']} -"
    lo, hi = doc["interval"]
    return f"{doc['version']}@{doc['device']} {doc['accuracy']:.0%} [{lo:.0%}, {hi:.0%}] n={doc['n']}"
