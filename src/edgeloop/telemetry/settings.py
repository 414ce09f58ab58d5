"""Telemetry settings, read from the standard ``OTEL_*`` variables and EdgeLoop's own.

Parsing is a pure function of a mapping (``os.environ`` in a module, a dict in tests).

What differs from the OpenTelemetry SDK's own defaults, on purpose:

- OTLP export is on only when an endpoint is set (``OTEL_EXPORTER_OTLP_ENDPOINT`` or a
  per-signal ``..._TRACES_ENDPOINT`` / ``..._METRICS_ENDPOINT``) or the exporter is named
  explicitly (``OTEL_TRACES_EXPORTER=otlp``). A device without a collector then does not
  retry against ``localhost:4317`` forever; spans are still made, so ``traceparent`` still
  joins the modules' work into one trace for whoever exports it.
- The default protocol is ``http/protobuf`` (the specification's default).
- Exemplars are off unless ``OTEL_METRICS_EXEMPLAR_FILTER`` asks for them: every counter a
  module adds inside a stage span would otherwise be offered to the exemplar reservoirs, a
  per-sample cost for data the Prometheus text format does not carry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from edgeloop.errors import ConfigError

Protocol = Literal["grpc", "http/protobuf"]
ExporterName = Literal["otlp", "console", "none"]
ExemplarFilter = Literal["always_off", "always_on", "trace_based"]

PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http/protobuf")
EXPORTERS: tuple[ExporterName, ...] = ("otlp", "console", "none")
EXEMPLAR_FILTERS: tuple[ExemplarFilter, ...] = ("always_off", "always_on", "trace_based")
#: Default port of the Prometheus ``/metrics`` endpoint (``EDGELOOP_METRICS_PORT``; 0 = off).
DEFAULT_METRICS_PORT = 9600
#: Bind address of the endpoint (``EDGELOOP_METRICS_HOST``): loopback unless told otherwise, so
#: nothing is exposed by accident; the deployment manifest sets ``0.0.0.0`` in the containers
#: so that the metrics collector module reaches each module over the IoT Edge network.
DEFAULT_METRICS_HOST = "127.0.0.1"

_DEFAULT_ENDPOINTS: dict[Protocol, str] = {
    "grpc": "http://localhost:4317",
    "http/protobuf": "http://localhost:4318",
}
_HTTP_PATHS = {"traces": "v1/traces", "metrics": "v1/metrics"}


class TelemetryConfigError(ConfigError):
    """An ``OTEL_*`` or ``EDGELOOP_METRICS_*`` variable holds a value that is not accepted."""


@dataclass(frozen=True)
class SignalExport:
    """Where one signal (traces or metrics) goes."""

    exporter: ExporterName = "none"
    protocol: Protocol = "http/protobuf"
    endpoint: str | None = None


@dataclass(frozen=True)
class TelemetrySettings:
    """Everything ``Telemetry`` needs; ``from_env`` builds it from environment variables."""

    enabled: bool = True
    service_name: str = "edgeloop"
    resource_attributes: dict[str, str] = field(default_factory=dict)
    traces: SignalExport = SignalExport()
    metrics: SignalExport = SignalExport()
    metrics_port: int = 0
    metrics_host: str = "127.0.0.1"
    exemplar_filter: ExemplarFilter = "always_off"

    @classmethod
    def from_env(cls, env: Mapping[str, str], *, default_service_name: str = "edgeloop") -> TelemetrySettings:
        """Read the settings from ``env``.

        Raises:
            TelemetryConfigError: a variable holds a value that is not accepted; the message
                names the variable, the value and what is accepted.
        """
        resource_attributes = _resource_attributes(env.get("OTEL_RESOURCE_ATTRIBUTES", ""))
        service_name = (
            env.get("OTEL_SERVICE_NAME", "").strip()
            or resource_attributes.get("service.name")
            or default_service_name
        )
        return cls(
            enabled=not _flag(env, "OTEL_SDK_DISABLED"),
            service_name=service_name,
            resource_attributes=resource_attributes,
            traces=_signal(env, "traces"),
            metrics=_signal(env, "metrics"),
            metrics_port=parse_port(env, "EDGELOOP_METRICS_PORT", DEFAULT_METRICS_PORT),
            metrics_host=env.get("EDGELOOP_METRICS_HOST", "").strip() or DEFAULT_METRICS_HOST,
            exemplar_filter=_exemplar_filter(env),
        )


def _flag(env: Mapping[str, str], name: str) -> bool:
    # The specification: only a case-insensitive "true" turns a boolean variable on.
    return env.get(name, "").strip().lower() == "true"


def _resource_attributes(raw: str) -> dict[str, str]:
    attributes: dict[str, str] = {}
    for pair in raw.split(","):
        key, sep, value = pair.partition("=")
        if not pair.strip():
            continue
        if not sep or not key.strip():
            raise TelemetryConfigError(
                f"OTEL_RESOURCE_ATTRIBUTES entry {pair!r} is not key=value "
                "(accepted: comma-separated key=value pairs)"
            )
        attributes[key.strip()] = value.strip()
    return attributes


def _signal(env: Mapping[str, str], signal: Literal["traces", "metrics"]) -> SignalExport:
    upper = signal.upper()
    protocol = _protocol(env, f"OTEL_EXPORTER_OTLP_{upper}_PROTOCOL") or _protocol(
        env, "OTEL_EXPORTER_OTLP_PROTOCOL"
    )
    protocol = protocol or "http/protobuf"
    specific = env.get(f"OTEL_EXPORTER_OTLP_{upper}_ENDPOINT", "").strip()
    general = env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip()
    exporter = _exporter(env, f"OTEL_{upper}_EXPORTER")
    if exporter is None:
        exporter = "otlp" if specific or general else "none"
    if exporter != "otlp":
        return SignalExport(exporter=exporter, protocol=protocol)
    if specific:
        endpoint = specific
    else:
        base = general or _DEFAULT_ENDPOINTS[protocol]
        # The specification: the general endpoint is a base URL for HTTP, used as is for gRPC.
        endpoint = base if protocol == "grpc" else f"{base.rstrip('/')}/{_HTTP_PATHS[signal]}"
    return SignalExport(exporter="otlp", protocol=protocol, endpoint=endpoint)


def _protocol(env: Mapping[str, str], name: str) -> Protocol | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return None
    for protocol in PROTOCOLS:
        if raw == protocol:
            return protocol
    raise TelemetryConfigError(f"{name}={raw!r} is not supported (accepted: {', '.join(PROTOCOLS)})")


def _exporter(env: Mapping[str, str], name: str) -> ExporterName | None:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return None
    names = [part.strip() for part in raw.split(",") if part.strip()]
    if len(names) != 1 or names[0] not in EXPORTERS:
        accepted = ", ".join(EXPORTERS)
        raise TelemetryConfigError(f"{name}={raw!r} is not supported (accepted: one of {accepted})")
    for exporter in EXPORTERS:
        if names[0] == exporter:
            return exporter
    return None  # pragma: no cover - checked above


def parse_port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        port = int(raw)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise TelemetryConfigError(f"{name}={raw!r} is not a port (accepted: 0 to turn off, or 1-65535)")
    return port


def _exemplar_filter(env: Mapping[str, str]) -> ExemplarFilter:
    raw = env.get("OTEL_METRICS_EXEMPLAR_FILTER", "").strip().lower() or "always_off"
    for name in EXEMPLAR_FILTERS:
        if raw == name:
            return name
    accepted = ", ".join(EXEMPLAR_FILTERS)
    raise TelemetryConfigError(
        f"OTEL_METRICS_EXEMPLAR_FILTER={raw!r} is not supported (accepted: {accepted})"
    )
