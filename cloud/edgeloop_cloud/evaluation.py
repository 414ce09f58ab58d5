"""Score a model on labelled items through its own preprocess: per item right or wrong, and summaries.

The gate compares two models item by item, so an ``Evaluation`` keeps each item's true label,
its set (``holdout`` or ``audit``) and whether the model got it right, beside the summary
figures the model card shows.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgeloop.clock import Clock, SystemClock
from edgeloop.model_metadata import ModelMetadataError, Preprocess, read_session_metadata
from edgeloop_cloud import features
from edgeloop_cloud.training import OUTPUT_PROBABILITIES

#: The two evaluation sets an item can belong to.
HOLDOUT = "holdout"
AUDIT = "audit"


@dataclass(frozen=True)
class EvalItem:
    """One evaluation image, its true label and its set (``holdout`` or ``audit``)."""

    image: np.ndarray
    label: str
    origin: str = HOLDOUT


@dataclass
class Evaluation:
    """How one model did on the evaluation items, or why it could not be scored."""

    loaded: bool
    error: str | None = None
    accuracy: float = 0.0
    macro_f1: float = 0.0
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    latency_ms: float = 0.0
    size_bytes: int = 0
    count: int = 0
    truth: list[str] = field(default_factory=list)
    origins: list[str] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)

    def mask(self, origin: str, label: str | None = None) -> np.ndarray:
        """Which items belong to ``origin`` (and have true ``label``, when given)."""
        picked = np.asarray([o == origin for o in self.origins], dtype=bool)
        if label is not None:
            picked &= np.asarray([t == label for t in self.truth], dtype=bool)
        return picked

    def slice_summary(self, origin: str) -> dict[str, Any]:
        picked = self.mask(origin)
        right = np.asarray(self.correct, dtype=bool)[picked]
        return {"n": int(picked.sum()), "accuracy": float(right.mean()) if right.size else None}

    def as_dict(self) -> dict[str, Any]:
        return {
            "loaded": self.loaded,
            "error": self.error,
            "overall": {"accuracy": self.accuracy, "macro_f1": self.macro_f1, "count": self.count},
            "slices": {name: self.slice_summary(name) for name in (HOLDOUT, AUDIT)},
            "per_class": self.per_class,
            "latency_ms_per_sample": self.latency_ms,
            "size_bytes": self.size_bytes,
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
    probs = score_output(session)
    width = probs.shape[-1] if probs.shape else None
    if isinstance(width, int) and width != len(meta.labels):
        raise ValueError(f"output {probs.name!r} has {width} columns but {len(meta.labels)} labels")
    return session, meta.preprocess, list(meta.labels)


def score_output(session: Any) -> Any:
    """The output the scores are read from, as the inference module picks it: ``probabilities``
    when the model has it, else its first float [N, classes] output (probabilities or logits:
    the arg max is the same). Raises ValueError when there is none."""
    outputs = session.get_outputs()
    named = [o for o in outputs if o.name == OUTPUT_PROBABILITIES and o.type == "tensor(float)"]
    matrices = [o for o in outputs if o.type == "tensor(float)" and len(o.shape or []) == 2]
    if not named and not matrices:
        described = [(o.name, o.type, o.shape) for o in outputs]
        raise ValueError(f"expected a float [N, classes] output to read scores from, got {described}")
    return (named or matrices)[0]


def evaluate(
    model: bytes, items: Sequence[EvalItem], *, repeats: int = 5, clock: Clock | None = None
) -> Evaluation:
    """Score ``model`` on ``items`` through its own preprocess; never raises for a bad model.

    Per-class figures come from the ``holdout`` items (the forgetting guard), or from every
    item when none is a hold-out item.
    """
    clock = clock or SystemClock()
    try:
        session, preprocess, labels = load_check(model)
        x = features.batch([i.image for i in items], preprocess)
        input_name, output_name = session.get_inputs()[0].name, score_output(session).name
        probs = np.asarray(session.run([output_name], {input_name: x})[0])
        if probs.shape != (len(items), len(labels)):
            raise ValueError(f"output shape {probs.shape}, expected {(len(items), len(labels))}")
    except Exception as exc:
        return Evaluation(loaded=False, error=str(exc), size_bytes=len(model))
    predicted = [labels[i] for i in probs.argmax(axis=1)]
    truth = [i.label for i in items]
    correct = [t == p for t, p in zip(truth, predicted, strict=True)]
    held = np.array([i.origin == HOLDOUT for i in items], dtype=bool)
    per_class = _per_class(truth, predicted, held if held.any() else np.ones(len(items), dtype=bool))
    timings = []
    sample = x[: min(32, len(x))]
    for _ in range(repeats):
        start = clock.monotonic()
        session.run([output_name], {input_name: sample})
        timings.append((clock.monotonic() - start) * 1000.0 / max(1, len(sample)))
    all_classes = _per_class(truth, predicted, np.ones(len(items), dtype=bool))
    return Evaluation(
        loaded=True,
        accuracy=float(np.mean(correct)) if correct else 0.0,
        macro_f1=float(np.mean([c["f1"] for c in all_classes.values()])) if all_classes else 0.0,
        per_class=per_class,
        latency_ms=float(statistics.median(timings)),
        size_bytes=len(model),
        count=len(items),
        truth=truth,
        origins=[i.origin for i in items],
        correct=correct,
    )


def _per_class(
    truth: Sequence[str], predicted: Sequence[str], counted: np.ndarray
) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    t_arr, p_arr = np.asarray(truth)[counted], np.asarray(predicted)[counted]
    for name in sorted(set(t_arr.tolist()), key=lambda n: (len(n), n)):
        tp = float(((t_arr == name) & (p_arr == name)).sum())
        support = float((t_arr == name).sum())
        predicted_n = float((p_arr == name).sum())
        recall = tp / support if support else 0.0
        precision = tp / predicted_n if predicted_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out[name] = {"recall": recall, "precision": precision, "f1": f1, "support": support}
    return out
