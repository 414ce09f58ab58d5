"""Builders shared by the filter tests."""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Literal

from edgeloop_filter.engine import Decision, Engine
from edgeloop_filter.policy import parse_policy

from edgeloop.contracts import FrameRef, LabelScore, Prediction, SelectedSample


def prediction(
    i: int = 0,
    *,
    label: str | None = "cat",
    confidence: float | None = 0.5,
    margin: float | None = None,
    entropy: float | None = None,
    scores: list[float] | None = None,
    source: str = "cam",
    dhash: str | None = None,
    size: int | None = 1000,
    status: Literal["ok", "error"] = "ok",
    model_version: str | None = "1",
    traceparent: str | None = None,
    **extra: Any,
) -> Prediction:
    frame = FrameRef(
        sample_id=f"s{i:06d}",
        source_id=source,
        seq=i,
        captured_at=datetime(2026, 1, 5, 12, 0, tzinfo=UTC),
        kind="image",
        file_ref=f"frames/s{i:06d}.jpg",
        bytes=size,
        dhash=dhash,
    )
    top_k = []
    if scores:
        top_k = [LabelScore(label=f"c{j}", score=s) for j, s in enumerate(sorted(scores, reverse=True)[:2])]
    return Prediction(
        sample_id=f"s{i:06d}",
        frame=frame,
        status=status,
        error="decode failed" if status == "error" else None,
        model_version=model_version,
        label=label,
        confidence=confidence,
        margin=margin,
        entropy=entropy,
        scores=scores or [],
        top_k=top_k,
        traceparent=traceparent,
        **extra,
    )


def policy_engine(doc: dict[str, Any], seed: int = 7) -> Engine:
    """An engine for a policy document, with a seeded random source."""
    return Engine(parse_policy(doc), rng=random.Random(seed))


def decide(engine: Engine, predictions: Iterable[Prediction]) -> list[Decision]:
    """Decide each prediction at a fixed time, one second apart on the monotonic clock."""
    when = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    return [engine.decide(p, when, float(i)) for i, p in enumerate(predictions)]


def chosen(decisions: Iterable[Decision]) -> list[SelectedSample]:
    return [d.selected for d in decisions if d.selected is not None]
