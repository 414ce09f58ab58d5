"""EdgeLoop telemetry: one trace per sample across modules, and metrics by name.

Set up once per process (``run_module`` does it for every edge module; cloud jobs call
``setup_from_env``), from the standard ``OTEL_*`` variables; see ``docs/observability.md``.
Everything here is safe to call before setup, after shutdown, and with
``OTEL_SDK_DISABLED=true``: it then records nothing and passes ``traceparent`` through.

Traces, one span per sample per stage::

    from edgeloop import telemetry

    with telemetry.stage_span("infer", frame.traceparent, {"file_ref": frame.file_ref}) as stage:
        ...
        stage.set("confidence", top.score)
        out = Prediction(..., traceparent=stage.traceparent)

    # a batch scored together: one span per sample over the batch's time
    tp = telemetry.record_stage("infer", frame.traceparent, start_ns=t0, end_ns=t1, attributes={...})

Metrics, by name (kept in an attribute or looked up each time, both cheap)::

    telemetry.metrics.counter("edgeloop.samples.selected").add(1, {"strategy": "margin"})
    telemetry.metrics.histogram("edgeloop.inference.latency", unit="s").record(0.012)
    telemetry.metrics.gauge("edgeloop.filter.window_open").set(1)
    telemetry.metrics.observe("edgeloop.outbox.depth", lambda: outbox.depth())

The span names and attributes, metric names and units the modules use are listed in
``docs/observability.md``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from contextlib import AbstractContextManager

from edgeloop.telemetry.core import SpanAttributes, Telemetry
from edgeloop.telemetry.metrics import Counter, Gauge, Histogram, Metrics, UpDownCounter
from edgeloop.telemetry.settings import TelemetryConfigError, TelemetrySettings
from edgeloop.telemetry.tracing import Stage, format_traceparent, parse_traceparent

log = logging.getLogger(__name__)

#: The metrics facade; instruments by name on the telemetry in force.
metrics = Metrics()

_DISABLED = Telemetry(TelemetrySettings(enabled=False))
_current: Telemetry = _DISABLED


def current() -> Telemetry:
    """The telemetry in force (a disabled one before ``setup``)."""
    return _current


def setup(telemetry: Telemetry, *, shutdown_previous: bool = True) -> Telemetry:
    """Put ``telemetry`` in force for this process; the previous one is shut down unless
    ``shutdown_previous`` is False (to switch between two, as the overhead benchmark does)."""
    global _current
    previous = _current
    _current = telemetry
    metrics.bind(telemetry.meter)
    if shutdown_previous and previous is not _DISABLED and previous is not telemetry:
        previous.shutdown()
    return telemetry


def setup_from_env(
    service_name: str,
    *,
    module_id: str | None = None,
    device_id: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Telemetry:
    """Set up from ``OTEL_*`` and ``EDGELOOP_METRICS_*`` variables (``os.environ`` by default).

    A bad variable is logged and telemetry runs without export rather than stopping the
    process: observability must never take the workload down.
    """
    environ = os.environ if env is None else env
    try:
        settings = TelemetrySettings.from_env(environ, default_service_name=service_name)
    except TelemetryConfigError as exc:
        log.error("telemetry export is off: %s", exc.reason)
        settings = TelemetrySettings(service_name=service_name)
    telemetry = setup(Telemetry(settings, module_id=module_id, device_id=device_id))
    if not settings.enabled:
        log.info("telemetry disabled (OTEL_SDK_DISABLED=true)")
    else:
        log.info(
            "telemetry: service %s, traces %s, metrics %s, prometheus %s",
            settings.service_name,
            settings.traces.endpoint or settings.traces.exporter,
            settings.metrics.endpoint or settings.metrics.exporter,
            telemetry.metrics_url or "off",
        )
    return telemetry


def shutdown(timeout: float = 5.0) -> None:
    """Export what is queued (``timeout`` seconds at most) and go back to recording nothing."""
    global _current
    previous = _current
    _current = _DISABLED
    metrics.bind(_DISABLED.meter)
    if previous is not _DISABLED:
        previous.shutdown(timeout)


def stage_span(
    name: str, traceparent: str | None = None, attributes: SpanAttributes = None
) -> AbstractContextManager[Stage]:
    """Open one sample's span in one stage as a child of its incoming ``traceparent``; the
    yielded ``Stage`` holds the span and the ``traceparent`` for the item sent on.
    See ``Telemetry.stage_span``."""
    return _current.stage_span(name, traceparent, attributes)


def record_stage(
    name: str,
    traceparent: str | None,
    *,
    start_ns: int,
    end_ns: int,
    attributes: SpanAttributes = None,
    error: str | None = None,
) -> str | None:
    """Record a finished span for one sample of a batch; returns its ``traceparent``.
    See ``Telemetry.record_stage``."""
    return _current.record_stage(
        name, traceparent, start_ns=start_ns, end_ns=end_ns, attributes=attributes, error=error
    )


def traceparent_of(mapping: Mapping[str, str] | None) -> str | None:
    """The ``traceparent`` in message properties or blob metadata (keys compared case-blind)."""
    for key, value in (mapping or {}).items():
        if key.lower() == "traceparent":
            return value
    return None


__all__ = [
    "Counter",
    "Gauge",
    "Histogram",
    "Metrics",
    "Stage",
    "Telemetry",
    "TelemetryConfigError",
    "TelemetrySettings",
    "UpDownCounter",
    "current",
    "format_traceparent",
    "metrics",
    "parse_traceparent",
    "record_stage",
    "setup",
    "setup_from_env",
    "shutdown",
    "stage_span",
    "traceparent_of",
]
