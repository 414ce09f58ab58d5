"""The registry gate: candidate and champion scored on the same held-out set, a decision with reasons.

A candidate is promoted only when it loads with the expected inputs and outputs, its primary
metric beats the champion's by at least ``margin``, no class's recall drops by more than
``class_tolerance``, and its latency and size stay within budget. With no champion, the
primary metric must reach ``floor``. Every decision carries every check and its reason.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeloop.clock import Clock, SystemClock
from edgeloop.model_metadata import ModelMetadataError, Preprocess, read_session_metadata
from edgeloop_cloud import features
from edgeloop_cloud.training import OUTPUT_PROBABILITIES


class GateConfig(BaseModel):
    """When a candidate may replace the champion."""

    model_config = ConfigDict(extra="forbid")

    primary_metric: Literal["accuracy", "macro_f1"] = Field(
        default="accuracy", description="The metric the candidate must improve."
    )
    margin: float = Field(
        default=0.005, ge=0, le=1, description="Minimum improvement of the primary metric over the champion."
    )
    class_tolerance: float = Field(
        default=0.05, ge=0, le=1, description="Largest drop of any class's recall that is still accepted."
    )
    floor: float = Field(
        default=0.8, ge=0, le=1, description="Primary metric a first model (no champion) must reach."
    )
    max_latency_ms: float = Field(
        default=5.0, gt=0, description="Budget for model run time per sample (batch of 32, CPU), in ms."
    )
    max_size_bytes: int = Field(default=20_000_000, gt=0, description="Budget for the ONNX file size.")
    new_slice_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Share of every metric given to the held-out slice of newly labelled samples (the world "
            "as devices see it now); the rest goes to the fixed held-out set. Under drift the fixed "
            "set alone hides what a retrained model gained."
        ),
    )
    min_new_slice: int = Field(
        default=8, ge=1, description="New held-out samples needed before new_slice_weight applies."
    )
    latency_repeats: int = Field(default=5, ge=1, le=100, description="Timed runs; the median counts.")


@dataclass(frozen=True)
class EvalItem:
    """One held-out image and its true label."""

    image: np.ndarray
    label: str
    origin: str = "fixed"  # "fixed" base hold-out or "new" labelled slice


@dataclass
class Evaluation:
    """How one model did on the held-out set, or why it could not be scored."""

    loaded: bool
    error: str | None = None
    accuracy: float = 0.0
    macro_f1: float = 0.0
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: float = 0.0
    size_bytes: int = 0
    count: int = 0

    def metric(self, name: str) -> float:
        return float(getattr(self, name))

    def as_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "error": self.error,
            "overall": {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "count": self.count},
            "per_class": self.per_class,
            "latency_ms_per_sample": self.latency_ms,
            "size_bytes": self.size_bytes,
        }


@dataclass
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class GateDecision:
    """Promote or reject, with every check and the reasons in words."""

    promote: bool
    checks: list[Check]
    candidate: Evaluation
    champion: Evaluation | None
    champion_version: str | None
    primary_metric: str

    @property
    def reasons(self) -> list[str]:
        failed = [c.detail for c in self.checks if not c.passed]
        return failed or [c.detail for c in self.checks]

    def as_dict(self) -> dict[str, Any]:
        return {
            "decision": "promote" if self.promote else "reject",
            "reasons": self.reasons,
            "checks": [{"name": c.name, "passed": c.passed, "detail": c.detail} for c in self.checks],
            "primary_metric": self.primary_metric,
            "candidate": self.candidate.as_dict(),
            "champion": self.champion.as_dict() if self.champion else None,
            "champion_version": self.champion_version,
        }


def _session(model: bytes) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


def load_check(model: bytes) -> tuple[Any, Preprocess, list[str]]:
    """Load the ONNX bytes and check what the device relies on.

    Returns the session, its preprocess and labels. Raises ValueError with the reason.
    """
    try:
        session = _session(model)
    except Exception as exc:
        raise ValueError(f"ONNX Runtime cannot load the model: {exc}") from exc
    try:
        meta = read_session_metadata(session)
    except ModelMetadataError as exc:
        raise ValueError(str(exc)) from exc
    if meta.preprocess is None or not meta.labels:
        raise ValueError("the model lacks edgeloop.preprocess or edgeloop.labels metadata")
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].type != "tensor(float)":
        raise ValueError(f"expected one float tensor input, got {[(i.name, i.type) for i in inputs]}")
    outputs = {o.name: o for o in session.get_outputs()}
    probs = outputs.get(OUTPUT_PROBABILITIES)
    if probs is None or probs.type != "tensor(float)":
        raise ValueError(f"expected a float output {OUTPUT_PROBABILITIES!r}, got {sorted(outputs)}")
    width = probs.shape[-1] if probs.shape else None
    if isinstance(width, int) and width != len(meta.labels):
        raise ValueError(f"output {OUTPUT_PROBABILITIES!r} has {width} columns but {len(meta.labels)} labels")
    return session, meta.preprocess, list(meta.labels)


def slice_weights(items: Sequence[EvalItem], config: GateConfig) -> np.ndarray:
    """Per-item weights: ``new_slice_weight`` shared by the "new" items and the rest by the
    fixed ones, once the new slice holds ``min_new_slice`` items; equal weights otherwise."""
    is_new = np.array([i.origin == "new" for i in items], dtype=bool)
    n_new, n_fixed = int(is_new.sum()), int((~is_new).sum())
    if n_new < config.min_new_slice or n_fixed == 0:
        return np.ones(len(items))
    share = config.new_slice_weight
    return np.where(is_new, share / n_new, (1.0 - share) / n_fixed) * len(items)


def evaluate(
    model: bytes,
    items: Sequence[EvalItem],
    *,
    repeats: int = 5,
    clock: Clock | None = None,
    weights: np.ndarray | None = None,
) -> Evaluation:
    """Score ``model`` on ``items`` through its own preprocess; never raises for a bad model.

    ``weights`` (one per item, see ``slice_weights``) weight every metric; equal by default.
    """
    clock = clock or SystemClock()
    try:
        session, preprocess, labels = load_check(model)
        x = features.batch([i.image for i in items], preprocess)
        input_name = session.get_inputs()[0].name
        probs = np.asarray(session.run([OUTPUT_PROBABILITIES], {input_name: x})[0])
        if probs.shape != (len(items), len(labels)):
            raise ValueError(f"output shape {probs.shape}, expected {(len(items), len(labels))}")
    except Exception as exc:
        return Evaluation(loaded=False, error=str(exc), size_bytes=len(model))
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    truth = [i.label for i in items]
    w = np.ones(len(items)) if weights is None else np.asarray(weights, dtype=float)
    # Per-class figures (the forgetting guard) come from the fixed set alone: a few newly
    # labelled samples of a class, heavily weighted, would make its recall a coin toss.
    fixed = np.array([i.origin != "new" for i in items], dtype=bool)
    per_class = _per_class(truth, predicted, np.where(fixed, 1.0, 0.0) if fixed.any() else w)
    weighted_classes = _per_class(truth, predicted, w)
    timings = []
    sample = x[: min(32, len(x))]
    for _ in range(repeats):
        start = clock.monotonic()
        session.run([OUTPUT_PROBABILITIES], {input_name: sample})
        timings.append((clock.monotonic() - start) * 1000.0 / len(sample))
    return Evaluation(
        loaded=True,
        accuracy=float(np.average([t == p for t, p in zip(truth, predicted, strict=True)], weights=w)),
        macro_f1=float(np.mean([c["f1"] for c in weighted_classes.values()])) if weighted_classes else 0.0,
        per_class=per_class,
        latency_ms=float(statistics.median(timings)),
        size_bytes=len(model),
        count=len(items),
    )


def _per_class(
    truth: Sequence[str], predicted: Sequence[str], weights: np.ndarray
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    t_arr, p_arr = np.asarray(truth), np.asarray(predicted)
    counted = weights > 0
    for name in sorted(set(t_arr[counted].tolist()), key=lambda n: (len(n), n)):
        tp = float(weights[(t_arr == name) & (p_arr == name)].sum())
        support = float(weights[t_arr == name].sum())
        predicted_n = float(weights[p_arr == name].sum())
        recall = tp / support if support else 0.0
        precision = tp / predicted_n if predicted_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        count = float(((t_arr == name) & counted).sum())
        out[name] = {"recall": recall, "precision": precision, "f1": f1, "support": count}
    return out


def decide(
    candidate: Evaluation,
    champion: Evaluation | None,
    config: GateConfig,
    *,
    champion_version: str | None = None,
) -> GateDecision:
    """The gate's verdict; every check is listed, passed or not."""
    metric = config.primary_metric
    checks = [Check("load", candidate.loaded, "candidate loads with the expected inputs and outputs"
                    if candidate.loaded else f"candidate failed to load: {candidate.error}")]  # fmt: skip
    if candidate.loaded:
        checks += _budget_checks(candidate, config)
        if champion is None or not champion.loaded:
            value = candidate.metric(metric)
            note = "" if champion is None else f" (champion {champion_version} unusable: {champion.error})"
            checks.append(
                Check(
                    "floor",
                    value >= config.floor,
                    f"first model{note}: {metric} {value:.4f} "
                    f"{'>=' if value >= config.floor else '<'} floor {config.floor:.4f}",
                )
            )
        else:
            checks += _versus_champion(candidate, champion, config, champion_version)
    return GateDecision(
        promote=all(c.passed for c in checks),
        checks=checks,
        candidate=candidate,
        champion=champion,
        champion_version=champion_version,
        primary_metric=metric,
    )


def _budget_checks(candidate: Evaluation, config: GateConfig) -> list[Check]:
    latency_ok = candidate.latency_ms <= config.max_latency_ms
    size_ok = candidate.size_bytes <= config.max_size_bytes
    return [
        Check("latency", latency_ok, f"latency {candidate.latency_ms:.4f} ms/sample "
              f"{'within' if latency_ok else 'over'} budget {config.max_latency_ms} ms"),
        Check("size", size_ok, f"size {candidate.size_bytes} bytes "
              f"{'within' if size_ok else 'over'} budget {config.max_size_bytes} bytes"),
    ]  # fmt: skip


def _versus_champion(
    candidate: Evaluation, champion: Evaluation, config: GateConfig, champion_version: str | None
) -> list[Check]:
    metric = config.primary_metric
    new, old = candidate.metric(metric), champion.metric(metric)
    gain = new - old
    improved = gain >= config.margin - 1e-12 and gain > 0
    checks = [
        Check("improvement", improved, f"{metric} {new:.4f} vs champion {champion_version} {old:.4f}: "
              f"change {gain:+.4f}, required at least +{config.margin:.4f}"),
    ]  # fmt: skip
    regressions = []
    for name, stats in champion.per_class.items():
        mine = candidate.per_class.get(name, {}).get("recall", 0.0)
        drop = stats["recall"] - mine
        if drop > config.class_tolerance + 1e-12:
            regressions.append(f"class {name!r} recall {stats['recall']:.3f} -> {mine:.3f} (drop {drop:.3f})")
    checks.append(
        Check(
            "per_class",
            not regressions,
            "; ".join(regressions) + f" exceeds tolerance {config.class_tolerance}"
            if regressions
            else f"no class recall drops more than {config.class_tolerance}",
        )
    )
    return checks
