"""The inference module's traces and metrics: one ``infer`` span per sample with the attributes
the Azure Percept MM exporter keyed on (``confidence``, ``model_name``, ``model_version``,
``file_ref``), scored and failed counts, model run latency per batch (docs/observability.md)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from edgeloop import telemetry
from edgeloop.contracts import FrameRef
from edgeloop.telemetry import names

_scored = telemetry.metrics.counter(names.M_SCORED, description="Samples scored, by model version.")
_errors = telemetry.metrics.counter(names.M_ERRORS, description="Errors, by module and kind.")
_latency = telemetry.metrics.histogram(names.M_INFERENCE_LATENCY, description="Model run time per batch.")


def record_batch(model_version: str, run_ms: float) -> None:
    _latency.record(run_ms / 1000.0, {"model_version": model_version})


def record_records(jobs: Sequence[Any], records: Sequence[dict[str, Any]], done: float) -> None:
    """One span per sample, from its arrival (``job.enqueued``, ``perf_counter``) to ``done``,
    when tracing is on, each prediction record's (``outgoing.Record``) ``traceparent`` replaced
    by its span's; the scored and failed counts are added once per model version, not per sample.
    With telemetry off no span work is done per sample (the ``traceparent`` passes through)."""
    scored: Counter[str] = Counter()
    failed = 0
    for record in records:
        if record["status"] == "ok":
            scored[record.get("model_version") or ""] += 1
        else:
            failed += 1
    for version, count in scored.items():
        _scored.add(count, {"model_version": version})
    if failed:
        _errors.add(failed, {"module": "inference", "kind": "sample"})
    if not telemetry.current().tracing:
        return  # each record already carries its frame's traceparent on
    end_ns = time.time_ns()
    for job, record in zip(jobs, records, strict=True):
        start_ns = end_ns - int(max(0.0, done - job.enqueued) * 1e9)
        traceparent = telemetry.record_stage(
            names.SPAN_INFER,
            record.get("traceparent") or job.frame.traceparent,
            start_ns=start_ns,
            end_ns=end_ns,
            attributes=_attributes(record, job.frame),
            error=record.get("error") if record["status"] != "ok" else None,
        )
        if traceparent:
            record["traceparent"] = traceparent


def _attributes(record: dict[str, Any], frame: FrameRef) -> dict[str, str | float]:
    attributes: dict[str, str | float] = {names.ATTR_SAMPLE_ID: record["sample_id"]}
    for key, value in (
        (names.ATTR_CONFIDENCE, record.get("confidence")),
        (names.ATTR_MODEL_NAME, record.get("model_name")),
        (names.ATTR_MODEL_VERSION, record.get("model_version")),
        (names.ATTR_FILE_REF, frame.file_ref),
        (names.ATTR_LABEL, record.get("label")),
    ):
        if value is not None:
            attributes[key] = value
    return attributes
