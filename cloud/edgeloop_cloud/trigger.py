"""The retrain trigger policy: a pure function of what is known now.

It fires when enough newly labelled samples arrived since the last run (in total, and per named
class), when devices report drift above a threshold (with at least a few new labels to learn
from), or when the last run is older than a maximum age and anything new is labelled. It never
fires inside the cooldown after a run, nor with nothing new to train on. During a drift it
fires again each time another batch of labels arrives: rounds beat one big retrain.

When the last run's gate could not decide (too few audit labels to judge the candidate), that
run consumed nothing: its labels still count as new, and the trigger fires again as soon as
``retry_after_labels`` more labelled samples arrived since it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field


class TriggerPolicy(BaseModel):
    """When to retrain."""

    model_config = ConfigDict(extra="forbid")

    min_new_labels: int = Field(default=50, ge=1, description="New labelled samples that start a run.")
    min_new_per_class: dict[str, int] = Field(
        default_factory=dict,
        description="Per-class minimums that must also be met for a volume-triggered run ({'7': 10}).",
    )
    drift_threshold: float = Field(
        default=0.2, gt=0, description="Device-reported drift (e.g. PSI) at or above which a run may start."
    )
    min_new_labels_on_drift: int = Field(
        default=10, ge=1, description="New labels needed for a drift-triggered run."
    )
    max_age_hours: float = Field(
        default=24 * 7,
        gt=0,
        description="A run older than this starts a new one if anything new is labelled.",
    )
    cooldown_minutes: float = Field(default=30, ge=0, description="No run starts this soon after the last.")
    retry_after_labels: int = Field(
        default=10,
        ge=1,
        description=(
            "After a run whose gate waited for evidence, labelled samples (audit ones included) that "
            "must arrive before the next try."
        ),
    )


@dataclass(frozen=True)
class TriggerFacts:
    """What the trigger knows when it is asked."""

    now: datetime
    new_labels: int
    new_per_class: dict[str, int] = field(default_factory=dict)
    max_drift: float | None = None
    last_run_at: datetime | None = None
    #: Labelled samples that arrived since the last run, when that run waited; None otherwise.
    labels_since_wait: int | None = None


@dataclass(frozen=True)
class TriggerDecision:
    fire: bool
    reasons: list[str]

    def as_dict(self) -> dict[str, object]:
        return {"fire": self.fire, "reasons": self.reasons}


def evaluate_policy(policy: TriggerPolicy, facts: TriggerFacts) -> TriggerDecision:
    """Whether to start a run now, and why (or why not)."""
    if facts.last_run_at is not None:
        ready_at = facts.last_run_at + timedelta(minutes=policy.cooldown_minutes)
        if facts.now < ready_at:
            started = facts.last_run_at.isoformat()
            why = f"cooldown: the last run started at {started}, next run allowed from {ready_at.isoformat()}"
            return TriggerDecision(False, [why])
    if facts.new_labels == 0:
        return TriggerDecision(False, ["no newly labelled samples since the last run"])
    if facts.labels_since_wait is not None and facts.labels_since_wait < policy.retry_after_labels:
        why = (
            f"the last run's gate waits for more labels: {facts.labels_since_wait} arrived since, "
            f"retrying at {policy.retry_after_labels}"
        )
        return TriggerDecision(False, [why])
    fired, waiting = [], []
    short = {c: n for c, n in policy.min_new_per_class.items() if facts.new_per_class.get(c, 0) < n}
    if facts.new_labels >= policy.min_new_labels and not short:
        fired.append(f"{facts.new_labels} new labels >= {policy.min_new_labels}")
    elif facts.new_labels >= policy.min_new_labels:
        waiting.append(
            "per-class minimums not met: "
            + ", ".join(f"{c} has {facts.new_per_class.get(c, 0)} < {n}" for c, n in sorted(short.items()))
        )
    else:
        waiting.append(f"{facts.new_labels} new labels < {policy.min_new_labels}")
    if facts.max_drift is not None and facts.max_drift >= policy.drift_threshold:
        if facts.new_labels >= policy.min_new_labels_on_drift:
            fired.append(
                f"drift {facts.max_drift:.3f} >= {policy.drift_threshold} with {facts.new_labels} new labels"
            )
        else:
            waiting.append(
                f"drift {facts.max_drift:.3f} reported but only {facts.new_labels} new labels "
                f"(< {policy.min_new_labels_on_drift})"
            )
    if facts.last_run_at is not None:
        age = facts.now - facts.last_run_at
        if age >= timedelta(hours=policy.max_age_hours):
            fired.append(f"last run {age.total_seconds() / 3600:.1f} h ago >= {policy.max_age_hours} h")
    return TriggerDecision(bool(fired), fired or waiting)
