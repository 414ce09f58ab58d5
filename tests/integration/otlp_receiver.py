"""An OTLP receiver for tests: OTLP/HTTP (protobuf) and OTLP/gRPC, decoding with
opentelemetry-proto what a collector or Jaeger would receive."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2, metrics_service_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue


@dataclass(frozen=True)
class ReceivedSpan:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)

    def is_named_by(self, traceparent: str | None) -> bool:
        """``traceparent`` names this span (whatever its flags)."""
        return (traceparent or "").split("-")[1:3] == [self.trace_id, self.span_id]


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    return getattr(value, kind) if kind else None


def _attributes(items: Any) -> dict[str, Any]:
    return {kv.key: _value(kv.value) for kv in items if isinstance(kv, KeyValue)}


class OtlpReceiver:
    """Collects what it is sent; ``spans`` and ``metric_names`` are snapshots."""

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._spans: list[ReceivedSpan] = []
        self._metrics: set[tuple[str, str]] = set()
        self.requests = 0
        self._http: ThreadingHTTPServer | None = None
        self._grpc: Any = None

    # -- what tests read -------------------------------------------------------------------
    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def metric_names(self, service: str | None = None) -> set[str]:
        with self._lock:
            return {name for svc, name in self._metrics if service is None or svc == service}

    def wait_for(self, predicate: Callable[[OtlpReceiver], bool], timeout: float = 30.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(min(remaining, 0.2))
        return True

    # -- decoding --------------------------------------------------------------------------
    def take_traces(self, body: bytes) -> bytes:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        spans = []
        for resource_spans in request.resource_spans:
            service = str(_attributes(resource_spans.resource.attributes).get("service.name", ""))
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    spans.append(
                        ReceivedSpan(
                            service=service,
                            name=span.name,
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_span_id=span.parent_span_id.hex(),
                            attributes=_attributes(span.attributes),
                        )
                    )
        with self._lock:
            self._spans.extend(spans)
            self.requests += 1
            self._lock.notify_all()
        return trace_service_pb2.ExportTraceServiceResponse().SerializeToString()

    def take_metrics(self, body: bytes) -> bytes:
        request = metrics_service_pb2.ExportMetricsServiceRequest.FromString(body)
        names: set[tuple[str, str]] = set()
        for resource_metrics in request.resource_metrics:
            service = str(_attributes(resource_metrics.resource.attributes).get("service.name", ""))
            for scope_metrics in resource_metrics.scope_metrics:
                names.update((service, metric.name) for metric in scope_metrics.metrics)
        with self._lock:
            self._metrics.update(names)
            self.requests += 1
            self._lock.notify_all()
        return metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()

    # -- servers ---------------------------------------------------------------------------
    def start_http(self) -> str:
        """Serve OTLP/HTTP; returns the base endpoint (``OTEL_EXPORTER_OTLP_ENDPOINT``)."""
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                routes = {"/v1/traces": receiver.take_traces, "/v1/metrics": receiver.take_metrics}
                take = routes.get(self.path)
                if take is None:
                    self.send_error(404)
                    return
                answer = take(body)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *_args: Any) -> None:
                pass

        self._http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._http.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{self._http.server_address[1]}"

    def start_grpc(self) -> str:
        """Serve OTLP/gRPC; returns the endpoint."""
        import grpc  # type: ignore[import-untyped]

        receiver = self

        class Traces(trace_service_pb2_grpc.TraceServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                receiver.take_traces(request.SerializeToString())
                return trace_service_pb2.ExportTraceServiceResponse()

        class Metrics(metrics_service_pb2_grpc.MetricsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                receiver.take_metrics(request.SerializeToString())
                return metrics_service_pb2.ExportMetricsServiceResponse()

        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Traces(), self._grpc)
        metrics_service_pb2_grpc.add_MetricsServiceServicer_to_server(Metrics(), self._grpc)
        port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        return f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        if self._grpc is not None:
            self._grpc.stop(grace=None)
