"""Capture's traces and metrics: the ``capture`` span that starts each sample's trace,
samples and bytes captured per source, janitor evictions and volume use
(docs/observability.md)."""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime

from edgeloop import telemetry
from edgeloop.telemetry import names

_captured = telemetry.metrics.counter(names.M_CAPTURED, description="Samples captured, by source.")
_bytes = telemetry.metrics.counter(names.M_CAPTURE_BYTES, unit="By", description="Sample bytes written.")
_evicted = telemetry.metrics.counter(names.M_EVICTIONS, description="Samples deleted unclaimed, by reason.")
_volume = telemetry.metrics.gauge(
    names.M_VOLUME_USE, unit="By", description="Bytes of samples on the volume."
)


def record_capture(
    sample_id: str, source_id: str, captured_at: datetime, *, file_ref: str | None, size: int | None
) -> str | None:
    """Count one sample (and its bytes), and record its ``capture`` span, the root of its
    trace, from capture time to now; returns the span's ``traceparent`` (None when no span is
    made: no exporter configured, and then neither the span's times nor its attributes are
    gathered)."""
    attributes = {"source": source_id}
    if size is not None:
        _bytes.add(size, attributes)
    _captured.add(1, attributes)
    current = telemetry.current()
    if not current.tracing:
        return None
    end_ns = time.time_ns()
    start_ns = min(end_ns, int(captured_at.timestamp() * 1e9))
    span: dict[str, str | int] = {names.ATTR_SAMPLE_ID: sample_id, names.ATTR_SOURCE_ID: source_id}
    if file_ref is not None:
        span[names.ATTR_FILE_REF] = file_ref
    if size is not None:
        span[names.ATTR_BYTES] = size
    return current.record_stage(names.SPAN_CAPTURE, None, start_ns=start_ns, end_ns=end_ns, attributes=span)


def record_janitor(dropped: Mapping[str, int], volume_bytes: int, *, volume: str = "samples") -> None:
    """``volume``: ``samples`` (encoded files) or ``frames`` (the raw frame ring)."""
    for reason, count in dropped.items():
        _evicted.add(count, {"module": "capture", "reason": reason, "volume": volume})
    _volume.set(volume_bytes, {"volume": volume})
