"""From model outputs to ``Prediction`` records: softmax, top-k, confidence, margin, entropy,
and the model's embedding as compact float16 text."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import numpy as np

from edgeloop.contracts import MAX_EMBEDDING_VALUES, FrameRef, Prediction, encode_embedding


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


def embedding_shape_problem(embeddings: np.ndarray, rows: int) -> str | None:
    """Why an embedding output of a batch of ``rows`` samples cannot be forwarded, or None."""
    if embeddings.ndim != 2 or embeddings.shape[0] != rows:
        return f"embedding output shape {list(embeddings.shape)}, expected [{rows}, D]"
    if embeddings.dtype.kind != "f":
        return f"embedding output dtype {embeddings.dtype}, expected float"
    if embeddings.shape[1] > MAX_EMBEDDING_VALUES:
        dims = embeddings.shape[1]
        return f"embedding has {dims} values a sample; at most {MAX_EMBEDDING_VALUES} are forwarded"
    if embeddings.shape[1] == 0:
        return "embedding output has 0 values a sample"
    return None


def embedding_texts(embeddings: np.ndarray | None, rows: int) -> tuple[list[str | None], str | None]:
    """One float16 base64 text per sample (None for a sample with NaN or infinite values), or
    all None and the reason when the output's shape cannot be forwarded."""
    if embeddings is None:
        return [None] * rows, None
    problem = embedding_shape_problem(embeddings, rows)
    if problem is not None:
        return [None] * rows, problem
    finite = np.isfinite(embeddings).all(axis=1)
    texts: list[str | None] = [
        encode_embedding(row) if ok else None
        for row, ok in zip(embeddings.tolist(), finite.tolist(), strict=True)
    ]
    bad = rows - int(finite.sum())
    return texts, (f"{bad} of {rows} embeddings held NaN or infinite values" if bad else None)


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
    embeddings: Sequence[str | None] | None = None,
) -> list[Prediction]:
    """One ``ok`` prediction per frame (validated construction: faster than ``model_construct``
    in pydantic 2, and the frame instance is not validated again). ``embeddings``: one text per
    frame (``embedding_texts``, or ``edgeloop.contracts.encode_embedding`` of each row)."""
    if embeddings is not None and len(embeddings) != len(frames):
        raise ValueError(f"{len(embeddings)} embeddings for {len(frames)} frames")
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
                embedding=embeddings[i] if embeddings is not None else None,
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
