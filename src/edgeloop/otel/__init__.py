"""Predictions from a user's own instrumented inference app, through OpenTelemetry spans.

An app that already traces its inference (as Azure Percept apps do) adds one exporter: every
span named ``inference`` with the attributes ``confidence``, ``model_name``, ``model_version``
and ``file_ref`` becomes an ``edgeloop.prediction/2`` message on the module's ``predictions``
output, carrying the span's trace context as ``traceparent``, so the filter, uploader and
cloud of EdgeLoop work on the app's own predictions::

    from azure.iot.device import IoTHubModuleClient
    from opentelemetry.sdk.trace import TracerProvider
    from edgeloop.otel import ModuleClientSink, prediction_span_processor

    client = IoTHubModuleClient.create_from_edge_environment()
    client.connect()
    provider = TracerProvider()
    provider.add_span_processor(prediction_span_processor(ModuleClientSink(client), source_id="cam1"))
"""

from edgeloop.otel.exporter import PredictionSpanExporter, prediction_span_processor
from edgeloop.otel.mapping import SpanMapping, SpanRejected, prediction_from_span
from edgeloop.otel.sink import MemorySink, ModuleClientSink, PredictionSink

__all__ = [
    "MemorySink",
    "ModuleClientSink",
    "PredictionSink",
    "PredictionSpanExporter",
    "SpanMapping",
    "SpanRejected",
    "prediction_from_span",
    "prediction_span_processor",
]
