"""From model outputs to ``Prediction`` records: softmax, top-k, confidence, margin, entropy."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from edgeloop.contracts import FrameRef, Prediction


def softmax(logits: np.ndarray) -> np.ndarray:
    z = logits.astype(np.float64)
    z -= z.max(axis=1, keepdims=True)
    np.exp(z, out=z)
    z /= z.sum(axis=1, keepdims=True)
    return z


def as_probabilities(scores: np.ndarray, *, logits: bool) -> np.ndarray:
    """Rows of probabilities (float64): softmax of logits, or the scores clipped to [0, 1]."""
    if logits:
        return softmax(scores)
    return np.clip(scores.astype(np.float64), 0.0, 1.0)


def summarise(probs: np.ndarray, top_k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per row: indices of the top ``top_k`` classes (best first), confidence, margin, entropy."""
    k = min(top_k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, : max(k, 2)]
    rows = np.arange(len(probs))
    confidence = probs[rows, order[:, 0]]
    second = probs[rows, order[:, 1]] if probs.shape[1] > 1 else np.zeros(len(probs))
    margin = np.clip(confidence - second, 0.0, 1.0)
    p = np.clip(probs, 1e-12, 1.0)
    entropy = np.maximum(-(probs * np.log(p)).sum(axis=1), 0.0)
    return order[:, :k], confidence, margin, entropy


def predictions(
    frames: Sequence[FrameRef],
    probs: np.ndarray,
    *,
    labels: Sequence[str],
    top_k: int,
    include_scores: bool,
    model_name: str,
    model_version: str,
    latency_ms: float,
    scored_at: datetime,
) -> list[Prediction]:
    """One ``ok`` prediction per frame (validated construction: faster than ``model_construct``
    in pydantic 2, and the frame instance is not validated again)."""
    order, confidence, margin, entropy = summarise(probs, top_k)
    label_list = list(labels)
    rounded = np.round(probs, 6).tolist()
    orders, confidences, margins, entropies = (
        order.tolist(),
        confidence.tolist(),
        margin.tolist(),
        entropy.tolist(),
    )
    out = []
    for i, frame in enumerate(frames):
        row = rounded[i]
        # plain dicts for the nested items: pydantic-core validates them faster than it
        # takes LabelScore instances built one by one in Python
        top = [{"label": label_list[j], "score": row[j]} for j in orders[i]]
        out.append(
            Prediction(
                sample_id=frame.sample_id,
                frame=frame,
                status="ok",
                model_name=model_name,
                model_version=model_version,
                label=label_list[orders[i][0]],
                confidence=confidences[i],
                margin=margins[i],
                entropy=entropies[i],
                top_k=top,
                scores=row if include_scores else [],
                labels=label_list if include_scores else None,
                latency_ms=latency_ms,
                scored_at=scored_at,
                traceparent=frame.traceparent,
            )
        )
    return out


def error_prediction(
    frame: FrameRef,
    reason: str,
    *,
    model_name: str | None,
    model_version: str | None,
    scored_at: datetime,
) -> Prediction:
    """A record saying why this sample was not scored, so every sample is accounted for."""
    return Prediction(
        sample_id=frame.sample_id,
        frame=frame,
        status="error",
        error=reason,
        model_name=model_name,
        model_version=model_version,
        scored_at=scored_at,
        traceparent=frame.traceparent,
    )
