"""An ``inference`` span as an ``edgeloop.prediction/2``.

Attributes read (OpenTelemetry attribute names, as a Percept-style app sets them):
``confidence`` (0..1, required), ``model_name`` and ``model_version`` (required), ``file_ref``
(required: the sample file, relative to the shared volume, or absolute under ``volume_root``),
and optionally ``label``, ``sample_id`` (else the span id), ``source_id``. The span's trace and
span ids become the prediction's ``traceparent``; its start and end times the capture and
scoring times.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Any

from pydantic import ValidationError

from edgeloop.contracts import FrameRef, Prediction
from edgeloop.telemetry.tracing import format_traceparent

SPAN_NAME = "inference"


class SpanRejected(ValueError):
    """An ``inference`` span lacks an attribute or carries a bad value (the message says which)."""


@dataclass
class SpanMapping:
    """How spans become predictions: the span name, the default source, the volume root."""

    source_id: str = "otel"
    span_name: str = SPAN_NAME
    volume_root: str | None = None
    _seq: itertools.count[int] = field(default_factory=itertools.count, repr=False)

    def next_seq(self) -> int:
        return next(self._seq)


def _utc(ns: int | None) -> datetime:
    return datetime.fromtimestamp((ns or 0) / 1e9, tz=UTC)


def _text(attrs: Any, key: str, *, required: bool = True) -> str | None:
    value = attrs.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise SpanRejected(f"span attribute {key!r} is missing")
        return None
    return str(value)


def _file_ref(value: str, volume_root: str | None) -> str:
    path = PurePosixPath(value)
    if path.is_absolute():
        root = PurePosixPath(volume_root) if volume_root else None
        if root is None or not path.is_relative_to(root):
            raise SpanRejected(
                f"span attribute 'file_ref' {value!r} is absolute and not under the volume root "
                f"{volume_root!r}; give a path relative to the shared volume"
            )
        return str(path.relative_to(root))
    return value


def prediction_from_span(span: Any, mapping: SpanMapping) -> Prediction:
    """The prediction an ``inference`` span describes.

    Raises:
        SpanRejected: a required attribute is missing or a value is out of range.
    """
    attrs = dict(span.attributes or {})
    raw = attrs.get("confidence")
    try:
        confidence = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SpanRejected(f"span attribute 'confidence' must be a number in 0..1, got {raw!r}") from None
    if not 0.0 <= confidence <= 1.0:
        raise SpanRejected(f"span attribute 'confidence' must be in 0..1, got {confidence}")
    model_name, model_version = _text(attrs, "model_name"), _text(attrs, "model_version")
    file_ref = _file_ref(str(_text(attrs, "file_ref")), mapping.volume_root)
    context = span.context
    sample_id = _text(attrs, "sample_id", required=False) or f"{context.span_id:016x}"
    start, end = _utc(span.start_time), _utc(span.end_time)
    label = _text(attrs, "label", required=False)
    parent = format_traceparent(context)
    try:
        frame = FrameRef(
            sample_id=sample_id, source_id=_text(attrs, "source_id", required=False) or mapping.source_id,
            seq=mapping.next_seq(), captured_at=start, kind="image", file_ref=file_ref,
            traceparent=parent,
        )  # fmt: skip
        return Prediction(
            sample_id=sample_id, frame=frame, status="ok", model_name=model_name, model_version=model_version,
            label=label, confidence=confidence, latency_ms=max(0.0, (end - start).total_seconds() * 1000.0),
            scored_at=end, traceparent=parent,
        )  # fmt: skip
    except ValidationError as exc:
        raise SpanRejected(f"span attributes do not make a prediction: {exc.errors()[0]['msg']}") from exc
