"""Exporters behind bounded queues, counting what they drop and what fails.

Spans go through a ``BatchSpanProcessor``: ``on_end`` only appends to a bounded in-memory
queue (``OTEL_BSP_MAX_QUEUE_SIZE``, 2048 by default) and a background thread exports batches.
An unreachable collector therefore costs the sample path nothing: the exporter thread retries
until its timeout (``OTEL_EXPORTER_OTLP_TIMEOUT``), the queue fills, and further spans are
dropped and counted. Metrics are aggregated in memory and exported on a timer
(``OTEL_METRIC_EXPORT_INTERVAL``); a failed export is counted and the next one carries the
cumulative values again.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Sequence
from typing import Any

from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics.export import MetricExporter, MetricExportResult, MetricsData
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)

from edgeloop.telemetry.settings import SignalExport

log = logging.getLogger(__name__)


class TelemetryStats:
    """What happened to the telemetry itself; thread-safe counters."""

    FIELDS = (
        "spans_exported",
        "spans_export_failed",
        "spans_dropped",
        "metric_exports",
        "metric_exports_failed",
        "traceparent_invalid",
    )

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(self.FIELDS, 0)

    def add(self, field: str, amount: int = 1) -> None:
        with self._lock:
            self._values[field] += amount

    def get(self, field: str) -> int:
        return self._values[field]

    def as_dict(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)


class CountingSpanExporter(SpanExporter):
    """Counts spans exported and spans whose export failed; never raises."""

    def __init__(self, inner: SpanExporter, stats: TelemetryStats) -> None:
        self._inner, self._stats = inner, stats

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self._inner.export(spans)
        except Exception:
            log.warning("span export failed", exc_info=True)
            result = SpanExportResult.FAILURE
        field = "spans_exported" if result is SpanExportResult.SUCCESS else "spans_export_failed"
        self._stats.add(field, len(spans))
        return result

    def shutdown(self) -> None:
        self._inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self._inner.force_flush(timeout_millis)


class BoundedSpanProcessor(BatchSpanProcessor):
    """A ``BatchSpanProcessor`` that counts the spans its full queue drops."""

    def __init__(self, exporter: SpanExporter, stats: TelemetryStats, **limits: Any) -> None:
        # Its own metrics would go to the global meter provider; ours are counted in stats.
        super().__init__(exporter, meter_provider=NoOpMeterProvider(), **limits)
        self._stats = stats

    def on_end(self, span: ReadableSpan) -> None:
        if span.context is not None and span.context.trace_flags.sampled and self._will_drop():
            self._stats.add("spans_dropped")
        super().on_end(span)

    def _will_drop(self) -> bool:
        # The SDK keeps a bounded deque and drops silently when it is full or shut down.
        batch = getattr(self, "_batch_processor", None)
        queue = getattr(batch, "_queue", None)
        if getattr(batch, "_shutdown", False):
            return True
        return queue is not None and queue.maxlen is not None and len(queue) >= queue.maxlen


class CountingMetricExporter(MetricExporter):
    """Counts metric exports and failed ones; never raises."""

    def __init__(self, inner: MetricExporter, stats: TelemetryStats) -> None:
        super().__init__(
            preferred_temporality=inner._preferred_temporality,
            preferred_aggregation=inner._preferred_aggregation,
        )
        self._inner, self._stats = inner, stats

    def export(
        self, metrics_data: MetricsData, timeout_millis: float = 10_000, **kwargs: Any
    ) -> MetricExportResult:
        try:
            result = self._inner.export(metrics_data, timeout_millis=timeout_millis, **kwargs)
        except Exception:
            log.warning("metric export failed", exc_info=True)
            result = MetricExportResult.FAILURE
        self._stats.add("metric_exports" if result is MetricExportResult.SUCCESS else "metric_exports_failed")
        return result

    def force_flush(self, timeout_millis: float = 10_000) -> bool:
        return self._inner.force_flush(timeout_millis)

    def shutdown(self, timeout_millis: float = 30_000, **kwargs: Any) -> None:
        self._inner.shutdown(timeout_millis=timeout_millis, **kwargs)


def build_span_exporter(export: SignalExport) -> SpanExporter | None:
    """The span exporter ``export`` names (None for ``none``). gRPC is imported only when used."""
    if export.exporter == "none":
        return None
    if export.exporter == "console":
        return ConsoleSpanExporter(out=sys.stdout)
    if export.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcSpans

        return GrpcSpans(endpoint=export.endpoint)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpSpans

    return HttpSpans(endpoint=export.endpoint)


def build_metric_exporter(export: SignalExport) -> MetricExporter | None:
    """The metric exporter ``export`` names (None for ``none``)."""
    if export.exporter == "none":
        return None
    if export.exporter == "console":
        from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

        return ConsoleMetricExporter(out=sys.stdout)
    if export.protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcMetrics

        return GrpcMetrics(endpoint=export.endpoint)
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpMetrics

    return HttpMetrics(endpoint=export.endpoint)
