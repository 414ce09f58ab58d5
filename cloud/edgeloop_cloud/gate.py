"""The registry gate: candidate and champion scored on the same items, a paired decision with reasons.

Two evaluation sets, each item scored by both models:

- the **audit set**: labelled samples the devices drew at random (blob metadata
  ``strategy = "audit"``), an unbiased sample of the data devices see now. The candidate must
  improve here: the lower bound of its accuracy gain (``stats.compare``, one-sided at
  ``confidence``) must be above ``margin``;
- the **clean hold-out**: the base data's fixed hold-out. It must not regress: overall and per
  class, a drop fails only when it is significantly larger than ``holdout_tolerance`` /
  ``class_tolerance`` (the upper bound of the change is below minus the tolerance).

The gate answers ``promote``, ``reject`` or ``wait``. It waits, rather than rejects, when it
cannot tell: fewer than ``min_audit_items`` audit items, fewer than ``min_discordant`` items on
which the two models disagree, or a gain that looks real but whose lower bound does not clear
the margin yet. A candidate whose observed gain is at or below the margin is rejected. With no
usable champion the candidate's clean hold-out accuracy must reach ``floor``. The candidate must
also load with the expected inputs and outputs and stay within its latency and size budgets.
Every check is recorded with its numbers: n, the difference, its interval, the test, the p-value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeloop_cloud.evaluation import AUDIT, HOLDOUT, EvalItem, Evaluation, evaluate, load_check
from edgeloop_cloud.stats import PairedComparison, compare

__all__ = ["EvalItem", "Evaluation", "GateConfig", "GateDecision", "decide", "evaluate", "load_check"]

Status = Literal["pass", "fail", "wait"]


class GateConfig(BaseModel):
    """When a candidate may replace the champion."""

    model_config = ConfigDict(extra="forbid")

    margin: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description=(
            "Accuracy gain on the audit set the candidate must clear: the lower bound of the gain "
            "(one-sided at `confidence`) must be above it."
        ),
    )
    confidence: float = Field(
        default=0.95,
        ge=0.5,
        lt=1,
        description=(
            "One-sided confidence of every bound (gain and regressions); 1 - confidence is the test level."
        ),
    )
    interval: Literal["mcnemar_exact", "bootstrap"] = Field(
        default="mcnemar_exact",
        description=(
            "How the interval of the accuracy difference is computed: exact (Clopper-Pearson on the "
            "discordant items, agreeing with McNemar's exact test) or a seeded paired bootstrap."
        ),
    )
    bootstrap_resamples: int = Field(
        default=2000, ge=100, le=100_000, description="Resamples of the paired bootstrap."
    )
    bootstrap_seed: int = Field(
        default=0, description="Seed of the paired bootstrap (decisions are repeatable)."
    )
    min_audit_items: int = Field(
        default=20,
        ge=1,
        description="Labelled audit samples needed before the gate judges a gain; with fewer it waits.",
    )
    min_discordant: int = Field(
        default=5,
        ge=1,
        description=(
            "Audit items on which the two models must disagree before the gate judges; with fewer it waits."
        ),
    )
    holdout_tolerance: float = Field(
        default=0.02,
        ge=0,
        le=1,
        description="Clean hold-out accuracy drop accepted; more fails only when the drop is significant.",
    )
    class_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Per-class recall drop (clean hold-out) accepted; more fails only when significant.",
    )
    floor: float = Field(
        default=0.8, ge=0, le=1, description="Clean hold-out accuracy a first model (no champion) must reach."
    )
    max_latency_ms: float = Field(
        default=5.0, gt=0, description="Budget for model run time per sample (batch of 32, CPU), in ms."
    )
    max_size_bytes: int = Field(default=20_000_000, gt=0, description="Budget for the ONNX file size.")
    latency_repeats: int = Field(default=5, ge=1, le=100, description="Timed runs; the median counts.")


@dataclass
class Check:
    """One condition of the gate: passed, failed, or cannot be judged yet (wait)."""

    name: str
    status: Status
    detail: str
    stats: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    def as_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"name": self.name, "status": self.status, "passed": self.passed}
        doc["detail"] = self.detail
        if self.stats is not None:
            doc["stats"] = self.stats
        return doc


@dataclass
class GateDecision:
    """Promote, reject or wait, with every check and the reasons in words."""

    checks: list[Check]
    candidate: Evaluation
    champion: Evaluation | None
    champion_version: str | None

    @property
    def outcome(self) -> Literal["promote", "reject", "wait"]:
        if any(c.status == "fail" for c in self.checks):
            return "reject"
        return "wait" if any(c.status == "wait" for c in self.checks) else "promote"

    @property
    def promote(self) -> bool:
        return self.outcome == "promote"

    @property
    def reasons(self) -> list[str]:
        wanted = {"reject": "fail", "wait": "wait"}.get(self.outcome)
        return [c.detail for c in self.checks if wanted is None or c.status == wanted]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": self.outcome,
            "reasons": self.reasons,
            "checks": [c.as_dict() for c in self.checks],
            "candidate": self.candidate.as_dict(),
            "champion": self.champion.as_dict() if self.champion else None,
            "champion_version": self.champion_version,
        }


def decide(
    candidate: Evaluation,
    champion: Evaluation | None,
    config: GateConfig,
    *,
    champion_version: str | None = None,
) -> GateDecision:
    """The gate's verdict; every check is listed with its status.

    Raises:
        ValueError: candidate and champion were scored on different items.
    """
    if not candidate.loaded:
        load = Check("load", "fail", f"candidate failed to load: {candidate.error}")
        return GateDecision([load], candidate, champion, champion_version)
    checks = [Check("load", "pass", "candidate loads with the expected inputs and outputs")]
    checks += _budget_checks(candidate, config)
    if champion is None or not champion.loaded:
        note = "" if champion is None else f" (champion {champion_version} unusable: {champion.error})"
        checks.append(_floor(candidate, config, note))
    else:
        if champion.truth != candidate.truth or champion.origins != candidate.origins:
            raise ValueError("candidate and champion must be evaluated on the same items")
        checks += [
            _improvement(candidate, champion, config, champion_version),
            _holdout_regression(candidate, champion, config),
            _class_regressions(candidate, champion, config),
        ]
    return GateDecision(checks, candidate, champion, champion_version)


def _compare(
    candidate: Evaluation, champion: Evaluation, picked: np.ndarray, config: GateConfig
) -> PairedComparison:
    return compare(
        np.asarray(candidate.correct, dtype=bool)[picked],
        np.asarray(champion.correct, dtype=bool)[picked],
        confidence=config.confidence,
        method=config.interval,
        resamples=config.bootstrap_resamples,
        seed=config.bootstrap_seed,
    )


def _budget_checks(candidate: Evaluation, config: GateConfig) -> list[Check]:
    latency_ok = candidate.latency_ms <= config.max_latency_ms
    size_ok = candidate.size_bytes <= config.max_size_bytes
    return [
        Check("latency", "pass" if latency_ok else "fail", f"latency {candidate.latency_ms:.4f} ms/sample "
              f"{'within' if latency_ok else 'over'} budget {config.max_latency_ms} ms"),
        Check("size", "pass" if size_ok else "fail", f"size {candidate.size_bytes} bytes "
              f"{'within' if size_ok else 'over'} budget {config.max_size_bytes} bytes"),
    ]  # fmt: skip


def _floor(candidate: Evaluation, config: GateConfig, note: str) -> Check:
    held = candidate.mask(HOLDOUT)
    picked = held if held.any() else np.ones(len(candidate.correct), dtype=bool)
    n = int(picked.sum())
    value = float(np.asarray(candidate.correct, dtype=bool)[picked].mean()) if n else 0.0
    ok = n > 0 and value >= config.floor
    detail = (
        f"first model{note}: clean hold-out accuracy {value:.4f} "
        f"{'>=' if ok else '<'} floor {config.floor:.4f} ({n} items)"
    )
    return Check("floor", "pass" if ok else "fail", detail, {"n": n, "accuracy": round(value, 6)})


def _improvement(
    candidate: Evaluation, champion: Evaluation, config: GateConfig, champion_version: str | None
) -> Check:
    picked = candidate.mask(AUDIT)
    n = int(picked.sum())
    if n < config.min_audit_items:
        return Check(
            "improvement",
            "wait",
            f"the audit set has {n} labelled items, the gate needs at least {config.min_audit_items} "
            "to judge a gain: waiting for more audit labels",
            {"n": n},
        )
    result = _compare(candidate, champion, picked, config)
    stats = result.as_dict()
    versus = f"audit accuracy vs champion {champion_version}: {result.describe()}"
    if result.discordant < config.min_discordant:
        why = (
            f"{versus}; the models disagree on {result.discordant} items, fewer than "
            f"{config.min_discordant}: waiting for more audit labels"
        )
        return Check("improvement", "wait", why, stats)
    lower = result.interval[0]
    if lower > config.margin:
        return Check(
            "improvement", "pass", f"{versus}; lower bound {lower:+.3f} > margin {config.margin}", stats
        )
    if result.difference <= config.margin:
        return Check("improvement", "fail", f"{versus}; no gain above margin {config.margin}", stats)
    why = (
        f"{versus}; lower bound {lower:+.3f} not above margin {config.margin} yet: "
        "waiting for more audit labels"
    )
    return Check("improvement", "wait", why, stats)


def _holdout_regression(candidate: Evaluation, champion: Evaluation, config: GateConfig) -> Check:
    picked = candidate.mask(HOLDOUT)
    if not picked.any():
        return Check("holdout", "pass", "no clean hold-out items to check for regression")
    result = _compare(candidate, champion, picked, config)
    tol = config.holdout_tolerance
    if result.interval[1] < -tol:
        return Check(
            "holdout",
            "fail",
            f"clean hold-out accuracy drops significantly more than {tol}: {result.describe()}",
            result.as_dict(),
        )
    detail = f"clean hold-out: {result.describe()}; no significant drop beyond {tol}"
    return Check("holdout", "pass", detail, result.as_dict())


def _class_regressions(candidate: Evaluation, champion: Evaluation, config: GateConfig) -> Check:
    held = candidate.mask(HOLDOUT)
    classes = sorted({t for t, h in zip(candidate.truth, held, strict=True) if h}, key=lambda n: (len(n), n))
    tol = config.class_tolerance
    per_class, failed = {}, []
    for name in classes:
        result = _compare(candidate, champion, candidate.mask(HOLDOUT, name), config)
        per_class[name] = result.as_dict()
        if result.interval[1] < -tol:
            failed.append(
                f"class {name!r} recall {result.champion_accuracy:.3f} -> {result.candidate_accuracy:.3f} "
                f"({result.difference:+.3f}, upper bound {result.interval[1]:+.3f})"
            )
    if failed:
        return Check(
            "per_class", "fail", "; ".join(failed) + f": a significant drop beyond tolerance {tol}", per_class
        )
    return Check("per_class", "pass", f"no class recall drops significantly more than {tol}", per_class)
