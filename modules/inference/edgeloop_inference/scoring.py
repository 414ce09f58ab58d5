"""From model outputs to ``Prediction`` records: softmax, top-k, confidence, margin, entropy,
and the model's embedding as compact float16 text."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from edgeloop.contracts import MAX_EMBEDDING_VALUES, FrameRef, Prediction, encode_embedding

_PREDICTIONS = TypeAdapter(list[Prediction])


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
    order, _top, confidence, margin, entropy = _ranked(probs, top_k)
    return order, confidence, margin, entropy


def _ranked(
    probs: np.ndarray, top_k: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``summarise``, with the top ``top_k`` probabilities of each row too. Few numpy calls: on
    a batch of 8 each costs about as much as its arithmetic (``np.minimum``/``np.maximum`` in
    place of ``np.clip``, whose wrapper costs more than both; NaN passes through all alike)."""
    k = min(top_k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, : max(k, 2)]
    # plain fancy indexing: take_along_axis builds its index in Python, 8 us a call of batch 8
    top = probs[np.arange(len(probs))[:, None], order]
    confidence = top[:, 0]
    gap = confidence - top[:, 1] if top.shape[1] > 1 else confidence
    margin = np.minimum(np.maximum(gap, 0.0), 1.0)
    p = np.minimum(np.maximum(probs, 1e-12), 1.0)
    entropy = np.maximum(-(probs * np.log(p)).sum(axis=1), 0.0)
    return order[:, :k], top[:, :k], confidence, margin, entropy


def sound_rows(probs: np.ndarray) -> np.ndarray:
    """Per row: whether every probability is finite and in [0, 1], so that the prediction made
    of it (confidence and margin in [0, 1], finite entropy >= 0) meets its contract by
    construction and needs no check of its own (``outgoing.encoded_batch``)."""
    sound = np.all((probs >= 0.0) & (probs <= 1.0), axis=1)  # NaN fails both, without a warning
    return np.asarray(sound)


def unsound_rows(probs: np.ndarray) -> list[int]:
    """The rows that are not ``sound_rows``; one check of the whole batch when all are."""
    if probs.size == 0 or (probs.min() >= 0.0 and probs.max() <= 1.0):  # NaN fails both
        return []
    return np.flatnonzero(~sound_rows(probs)).tolist()


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


def prediction_fields(
    frames: Sequence[FrameRef],
    probs: np.ndarray,
    *,
    labels: Sequence[str],
    top_k: int,
    include_scores: bool,
    model_name: str,
    model_version: str,
    latency_ms: float | Sequence[float],
    scored_at: datetime | Sequence[datetime],
    embeddings: Sequence[str | None] | None = None,
) -> list[dict[str, Any]]:
    """The fields of one ``ok`` prediction per frame, as plain dicts (not validated here: the
    message they go in is validated once, see ``outgoing``). Everything numeric is worked out
    for the whole batch at once; only the dicts are built per frame. ``embeddings``: one text
    per frame (``embedding_texts``, or ``edgeloop.contracts.encode_embedding`` of each row).
    ``latency_ms`` and ``scored_at``: one for all frames, or one per frame (the frames of
    several runs of one model, worked out together).

    Raises:
        ValueError: ``embeddings``, ``probs``, ``labels``, ``latency_ms`` or ``scored_at`` do
            not match the frames' count or the number of classes, or ``top_k`` is below 1.
    """
    rows = len(frames)
    if top_k < 1:
        raise ValueError(f"top_k must be at least 1, got {top_k}")
    if probs.ndim != 2 or probs.shape[0] != rows:
        raise ValueError(f"scores of shape {list(probs.shape)} for {rows} frames")
    if len(labels) < probs.shape[1]:
        raise ValueError(f"{len(labels)} labels for {probs.shape[1]} classes")
    if embeddings is not None and len(embeddings) != rows:
        raise ValueError(f"{len(embeddings)} embeddings for {rows} frames")
    latencies = [latency_ms] * rows if isinstance(latency_ms, int | float) else list(latency_ms)
    times = [scored_at] * rows if isinstance(scored_at, datetime) else list(scored_at)
    if len(latencies) != rows or len(times) != rows:
        raise ValueError(f"{len(latencies)} latencies and {len(times)} scoring times for {rows} frames")
    order, top, confidence, margin, entropy = _ranked(probs, top_k)
    label_list = list(labels)
    names = np.asarray(label_list, dtype=object)
    top_labels = names[order].tolist()
    top_scores = np.round(top, 6).tolist()
    scores = np.round(probs, 6).tolist() if include_scores else [[]] * rows
    label_field = label_list if include_scores else None
    texts = embeddings if embeddings is not None else [None] * rows
    return [
        {
            "sample_id": frame.sample_id,
            "frame": frame,
            "status": "ok",
            "model_name": model_name,
            "model_version": model_version,
            "label": top[0],
            "confidence": conf,
            "margin": marg,
            "entropy": ent,
            # plain dicts for the nested items: pydantic-core validates them with the message
            "top_k": [{"label": name, "score": score} for name, score in zip(top, values, strict=True)],
            "scores": row,
            "labels": label_field,
            "latency_ms": latency,
            "scored_at": at,
            "traceparent": frame.traceparent,
            "embedding": text,
        }
        for frame, top, values, row, conf, marg, ent, latency, at, text in zip(
            frames,
            top_labels,
            top_scores,
            scores,
            confidence.tolist(),
            margin.tolist(),
            entropy.tolist(),
            latencies,
            times,
            texts,
            strict=True,
        )
    ]


def predictions(
    frames: Sequence[FrameRef],
    probs: np.ndarray,
    *,
    labels: Sequence[str],
    top_k: int,
    include_scores: bool,
    model_name: str,
    model_version: str,
    latency_ms: float | Sequence[float],
    scored_at: datetime | Sequence[datetime],
    embeddings: Sequence[str | None] | None = None,
) -> list[Prediction]:
    """One ``ok`` prediction per frame: ``prediction_fields`` validated in one pydantic call
    (the frame instances are not validated again)."""
    fields = prediction_fields(
        frames,
        probs,
        labels=labels,
        top_k=top_k,
        include_scores=include_scores,
        model_name=model_name,
        model_version=model_version,
        latency_ms=latency_ms,
        scored_at=scored_at,
        embeddings=embeddings,
    )
    return _PREDICTIONS.validate_python(fields)


def error_fields(
    frame: FrameRef,
    reason: str,
    *,
    model_name: str | None,
    model_version: str | None,
    scored_at: datetime,
) -> dict[str, Any]:
    """The fields of a record saying why this sample was not scored (``error_prediction``)."""
    return {
        "sample_id": frame.sample_id,
        "frame": frame,
        "status": "error",
        "error": reason,
        "model_name": model_name,
        "model_version": model_version,
        "scored_at": scored_at,
        "traceparent": frame.traceparent,
    }


def error_prediction(
    frame: FrameRef,
    reason: str,
    *,
    model_name: str | None,
    model_version: str | None,
    scored_at: datetime,
) -> Prediction:
    """A record saying why this sample was not scored, so every sample is accounted for."""
    return Prediction.model_validate(
        error_fields(frame, reason, model_name=model_name, model_version=model_version, scored_at=scored_at)
    )
