"""The uploader's traces and metrics: ``claim``, ``encrypt`` and ``upload`` spans per sample
(the blob's metadata carries the upload span's ``traceparent`` to the cloud), uploads, bytes,
evictions and errors, upload latency, outbox depth and age (docs/observability.md)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING

from edgeloop import telemetry
from edgeloop.contracts import SelectedSample
from edgeloop.telemetry import Stage, names
from edgeloop_uploader.outbox import QUEUED, UPLOADING

if TYPE_CHECKING:
    from edgeloop_uploader.service import Uploader

_uploaded = telemetry.metrics.counter(names.M_UPLOADED, description="Samples and log batches uploaded.")
_bytes = telemetry.metrics.counter(names.M_UPLOAD_BYTES, unit="By", description="Ciphertext bytes uploaded.")
_evicted = telemetry.metrics.counter(names.M_EVICTIONS, description="Samples deleted unshipped, by reason.")
_dropped = telemetry.metrics.counter(names.M_DROPPED, description="Samples not kept, by module and reason.")
_errors = telemetry.metrics.counter(names.M_ERRORS, description="Errors, by module and kind.")
_latency = telemetry.metrics.histogram(names.M_UPLOAD_LATENCY, description="One blob upload, with retries.")

#: The uploader's own counter names and the metric each one feeds.
_COUNTS: dict[str, Callable[[int], None]] = {
    "uploaded": lambda n: _uploaded.add(n),
    "uploaded_bytes": lambda n: _bytes.add(n),
    "evicted": lambda n: _evicted.add(n, {"module": "uploader", "reason": "budget"}),
    "rejected": lambda n: _dropped.add(n, {"module": "uploader", "reason": "rejected"}),
    "quarantined": lambda n: _errors.add(n, {"module": "uploader", "kind": "quarantined"}),
    "attempt_errors": lambda n: _errors.add(n, {"module": "uploader", "kind": "upload"}),
    "store_errors": lambda n: _errors.add(n, {"module": "uploader", "kind": "store"}),
    "seal_errors": lambda n: _errors.add(n, {"module": "uploader", "kind": "seal"}),
    "notice_errors": lambda n: _errors.add(n, {"module": "uploader", "kind": "notice"}),
}


def count(name: str, amount: int) -> None:
    """Mirror one of the uploader's counters into the metric it feeds, if any."""
    feed = _COUNTS.get(name)
    if feed is not None:
        feed(amount)


def claim_span(item: SelectedSample) -> AbstractContextManager[Stage]:
    """The ``claim`` span of a selected sample; sealing on arrival nests ``encrypt`` in it."""
    frame = item.prediction.frame
    attributes: dict[str, str | int] = {names.ATTR_SAMPLE_ID: item.sample_id}
    if frame.file_ref is not None:
        attributes[names.ATTR_FILE_REF] = frame.file_ref
    return telemetry.stage_span(names.SPAN_CLAIM, item.traceparent, attributes)


def encrypt_span(traceparent: str | None = None) -> AbstractContextManager[Stage]:
    """``encrypt``: inside the open ``claim`` span, or a child of the entry's trace when the
    sample is sealed later (the key arrived after it)."""
    return telemetry.stage_span(names.SPAN_ENCRYPT, traceparent)


def upload_span(entry_id: str, blob: str, traceparent: str | None) -> AbstractContextManager[Stage]:
    return telemetry.stage_span(
        names.SPAN_UPLOAD, traceparent, {names.ATTR_SAMPLE_ID: entry_id, names.ATTR_BLOB: blob}
    )


def record_upload(seconds: float) -> None:
    _latency.record(seconds)


def observe_outbox(uploader: Uploader) -> None:
    """Outbox depth and the age of its oldest waiting entry, read at each collection (the
    outbox database is safe to read from the collecting thread)."""

    def depth() -> float:
        counts = uploader.db.counts()
        return float(counts[QUEUED] + counts[UPLOADING])

    def age() -> list[tuple[float, dict[str, str]]]:
        oldest = uploader.db.oldest_waiting()
        if oldest is None:
            return []
        return [(max(0.0, uploader.clock.now().timestamp() - oldest.created_at), {})]

    telemetry.metrics.observe(names.M_OUTBOX_DEPTH, depth, description="Entries waiting to be uploaded.")
    telemetry.metrics.observe(
        names.M_OUTBOX_AGE, age, unit="s", description="Age of the oldest entry waiting to be uploaded."
    )
