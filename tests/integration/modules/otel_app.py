"""A user's own inference app: the real SDK client, its own TracerProvider and EdgeLoop's span
processor. It emits ``OTEL_APP_COUNT`` ``inference`` spans (plus one span of another name and one
``inference`` span lacking ``model_version``), records each inference span's traceparent (as
OpenTelemetry's propagator writes it) as a JSON line in ``OTEL_APP_RECORD``, flushes and exits.
The processor sends up to ``OTEL_APP_MAX_BATCH`` predictions a message (default 1)."""

from __future__ import annotations

import json
import os
import sys

from azure.iot.device import IoTHubModuleClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from edgeloop.otel import ModuleClientSink, prediction_span_processor


def main() -> int:
    count = int(os.environ.get("OTEL_APP_COUNT", "3"))
    client = IoTHubModuleClient.create_from_edge_environment()
    client.connect()
    provider = TracerProvider()
    provider.add_span_processor(
        prediction_span_processor(
            ModuleClientSink(client),
            source_id="app-cam",
            volume_root="/data/samples",
            max_batch=int(os.environ.get("OTEL_APP_MAX_BATCH", "1")),
            schedule_delay_millis=50,
        )
    )
    tracer = provider.get_tracer("otel-app")
    with open(os.environ["OTEL_APP_RECORD"], "w", encoding="utf-8") as record:
        for n in range(count):
            with tracer.start_as_current_span("inference") as span:
                span.set_attributes({
                    "confidence": 0.25 + n / 10, "model_name": "app-model", "model_version": f"{n + 1}",
                    "file_ref": f"/data/samples/cam/{n:03d}.jpg", "label": f"class-{n}",
                    "sample_id": f"app-{n}",
                })  # fmt: skip
                carrier: dict[str, str] = {}
                TraceContextTextMapPropagator().inject(carrier)  # the span's context, as OTel writes it
                line = {"sample_id": f"app-{n}", "traceparent": carrier["traceparent"]}
                record.write(json.dumps(line) + "\n")
        with tracer.start_as_current_span("preprocess"):
            pass
        with tracer.start_as_current_span("inference") as span:
            span.set_attributes({"confidence": 0.5, "model_name": "app-model", "file_ref": "cam/x.jpg"})
    provider.force_flush()
    provider.shutdown()
    client.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
