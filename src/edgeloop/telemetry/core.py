"""``Telemetry``: the tracer and meter providers of one process, their exporters and the
Prometheus endpoint, with a bounded shutdown."""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from opentelemetry import context as context_api
from opentelemetry import trace
from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation
from opentelemetry.sdk.metrics import (
    AlwaysOffExemplarFilter,
    AlwaysOnExemplarFilter,
    ExemplarFilter,
    MeterProvider,
    TraceBasedExemplarFilter,
)
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SpanExporter

import edgeloop
from edgeloop.telemetry.export import (
    BoundedSpanProcessor,
    CountingMetricExporter,
    CountingSpanExporter,
    TelemetryStats,
    build_metric_exporter,
    build_span_exporter,
)
from edgeloop.telemetry.settings import TelemetrySettings
from edgeloop.telemetry.tracing import Stage, context_from_traceparent, format_traceparent

log = logging.getLogger(__name__)

SpanAttributes = Mapping[str, str | int | float | bool] | None
_EXEMPLAR_FILTERS: dict[str, type[ExemplarFilter]] = {
    "always_off": AlwaysOffExemplarFilter,
    "always_on": AlwaysOnExemplarFilter,
    "trace_based": TraceBasedExemplarFilter,
}


class _StageScope:
    """The span made current for the block, ended after it; cheaper per sample than the SDK's
    ``start_as_current_span``, which wraps two generator context managers."""

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span) -> None:
        self._span = span
        self._token: object = None

    def __enter__(self) -> Stage:
        self._token = context_api.attach(trace.set_span_in_context(self._span))
        return Stage(self._span, format_traceparent(self._span.get_span_context()))

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, _tb: Any) -> None:
        try:
            if exc is not None:
                self._span.record_exception(exc)
                self._span.set_status(trace.Status(trace.StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
        finally:
            context_api.detach(self._token)  # type: ignore[arg-type]
            self._span.end()


class Telemetry:
    """Traces and metrics of one process (a module, a cloud job).

    ``span_exporter`` and ``metric_reader`` add in-memory (test) or custom destinations beside
    the ones the settings name; ``span_queue_size`` bounds every span queue (default
    ``OTEL_BSP_MAX_QUEUE_SIZE`` or 2048).
    """

    def __init__(
        self,
        settings: TelemetrySettings,
        *,
        module_id: str | None = None,
        device_id: str | None = None,
        span_exporter: SpanExporter | None = None,
        metric_reader: MetricReader | None = None,
        span_queue_size: int | None = None,
    ) -> None:
        self.settings = settings
        self.stats = TelemetryStats()
        self.metrics_url: str | None = None
        self._server: Any = None
        self._tracer_provider: TracerProvider | None = None
        self._tracing = False
        self._meter_provider: MeterProvider | None = None
        self._registry: Any = None
        self._push_readers: list[MetricReader] = []
        self.tracer: trace.Tracer = trace.NoOpTracer()
        self.meter: Meter = NoOpMeter("edgeloop")
        if not settings.enabled:
            return
        resource = self._resource(module_id, device_id)
        self._tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        limits: dict[str, int] = {}
        if span_queue_size is not None:
            limits = {"max_queue_size": span_queue_size, "max_export_batch_size": min(512, span_queue_size)}
        for exporter in (build_span_exporter(settings.traces), span_exporter):
            if exporter is not None:
                self._tracing = True
                self._tracer_provider.add_span_processor(
                    BoundedSpanProcessor(CountingSpanExporter(exporter, self.stats), self.stats, **limits)
                )
        if self._tracing:
            # With no span exporter the spans would be built and dropped (15-30 us a sample a
            # module): the tracer stays the no-op one and the incoming trace passes through.
            self.tracer = self._tracer_provider.get_tracer("edgeloop", edgeloop.__version__)
        self._meter_provider = MeterProvider(
            metric_readers=self._metric_readers(metric_reader),
            resource=resource,
            shutdown_on_exit=False,
            exemplar_filter=_EXEMPLAR_FILTERS[settings.exemplar_filter](),
        )
        self.meter = self._meter_provider.get_meter("edgeloop", edgeloop.__version__)
        self._observe_own_stats()
        if settings.metrics_port:
            self._serve_metrics()

    @property
    def enabled(self) -> bool:
        return self.settings.enabled

    @property
    def tracing(self) -> bool:
        """Spans are made: telemetry is on and a span exporter is configured."""
        return self._tracing

    # -- traces ----------------------------------------------------------------------------
    def stage_span(
        self, name: str, traceparent: str | None = None, attributes: SpanAttributes = None
    ) -> AbstractContextManager[Stage]:
        """Open the span of one sample in one stage, as a child of the sample's incoming
        ``traceparent`` (or of the current span, or as a new trace when there is neither).
        Yields a ``Stage`` whose ``traceparent`` goes on the item sent on. An exception leaving
        the block is recorded on the span and re-raised."""
        parent = self._parent(traceparent)
        if not self._tracing:
            # Tracing off here must not cut the trace for the modules after this one.
            return nullcontext(Stage(trace.INVALID_SPAN, traceparent if parent is not None else None))
        return _StageScope(self.tracer.start_span(name, context=parent, attributes=attributes))

    def record_stage(
        self,
        name: str,
        traceparent: str | None,
        *,
        start_ns: int,
        end_ns: int,
        attributes: SpanAttributes = None,
        error: str | None = None,
    ) -> str | None:
        """Record a finished stage span for one sample of a batch processed together (times in
        ``time.time_ns()``; ``error`` marks it failed), returning the ``traceparent`` for the
        item sent on."""
        parent = self._parent(traceparent)
        if not self._tracing:
            return traceparent if parent is not None else None
        span = self.tracer.start_span(name, context=parent, attributes=attributes, start_time=start_ns)
        if error is not None:
            span.set_status(trace.Status(trace.StatusCode.ERROR, error))
        span.end(end_time=end_ns)
        return format_traceparent(span.get_span_context())

    def _parent(self, traceparent: str | None) -> Any:
        parent = context_from_traceparent(traceparent)
        if traceparent and parent is None:
            self.stats.add("traceparent_invalid")
            log.debug("ignoring invalid traceparent %r", traceparent)
        return parent

    # -- metrics ---------------------------------------------------------------------------
    def render_prometheus(self) -> bytes:
        """The current metrics in Prometheus text format (what ``/metrics`` serves)."""
        if self._registry is None:
            return b""
        from prometheus_client import generate_latest

        return bytes(generate_latest(self._registry))

    # -- lifecycle -------------------------------------------------------------------------
    def flush(self, timeout: float = 5.0) -> bool:
        """Export what is queued now; False when it did not finish in ``timeout`` seconds."""
        ok = True
        if self._tracer_provider is not None:
            ok = self._tracer_provider.force_flush(int(timeout * 1000)) and ok
        # Not the meter provider's force_flush: the Prometheus reader would keep a stale copy.
        for reader in self._push_readers:
            ok = reader.force_flush(int(timeout * 1000)) and ok
        return ok

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the endpoint and export what is queued, waiting ``timeout`` seconds at most:
        an unreachable collector never holds a module's exit."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        tracer_provider, meter_provider = self._tracer_provider, self._meter_provider
        self._tracer_provider = self._meter_provider = None

        def _stop() -> None:
            if tracer_provider is not None:
                tracer_provider.shutdown()
            if meter_provider is not None:
                meter_provider.shutdown(timeout_millis=timeout * 1000)

        stopper = threading.Thread(target=_stop, name="telemetry-shutdown", daemon=True)
        stopper.start()
        stopper.join(timeout)
        if stopper.is_alive():
            log.warning("telemetry export did not finish in %.1f s; what was queued is dropped", timeout)

    # -- setup helpers ---------------------------------------------------------------------
    def _resource(self, module_id: str | None, device_id: str | None) -> Resource:
        attributes: dict[str, str] = {
            "service.namespace": "edgeloop",
            "service.version": edgeloop.__version__,
            "telemetry.sdk.language": "python",
            "telemetry.sdk.name": "opentelemetry",
        }
        if device_id:
            attributes["iotedge.device_id"] = device_id
        if module_id:
            attributes["iotedge.module_id"] = module_id
        if device_id and module_id:
            attributes["service.instance.id"] = f"{device_id}/{module_id}"
        attributes.update(self.settings.resource_attributes)
        attributes["service.name"] = self.settings.service_name
        return Resource(attributes)

    def _metric_readers(self, extra: MetricReader | None) -> list[MetricReader]:
        from opentelemetry.exporter.prometheus import PrometheusMetricReader
        from prometheus_client import CollectorRegistry

        self._registry = CollectorRegistry(auto_describe=False)
        prometheus = PrometheusMetricReader(registry=self._registry, scope_info_enabled=False)
        readers: list[MetricReader] = [prometheus]
        exporter = build_metric_exporter(self.settings.metrics)
        if exporter is not None:
            self._push_readers.append(
                PeriodicExportingMetricReader(CountingMetricExporter(exporter, self.stats))
            )
        if extra is not None:
            self._push_readers.append(extra)
        return [*readers, *self._push_readers]

    def _observe_own_stats(self) -> None:
        for field in TelemetryStats.FIELDS:
            self.meter.create_observable_counter(
                f"edgeloop.telemetry.{field}",
                callbacks=[self._stat_observer(field)],
                description=f"Telemetry's own count of {field.replace('_', ' ')}.",
            )

    def _stat_observer(self, field: str) -> Any:
        def _observe(_options: CallbackOptions) -> list[Observation]:
            return [Observation(self.stats.get(field))]

        return _observe

    def _serve_metrics(self) -> None:
        from prometheus_client import start_http_server

        host, port = self.settings.metrics_host, self.settings.metrics_port
        try:
            self._server, _thread = start_http_server(port, addr=host, registry=self._registry)
        except OSError as exc:
            log.warning(
                "cannot serve /metrics on %s:%d (EDGELOOP_METRICS_PORT=%d; set another port, or 0 "
                "to turn it off): %s",
                host,
                port,
                port,
                exc,
            )
            return
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.metrics_url = f"http://{shown}:{port}/metrics"
