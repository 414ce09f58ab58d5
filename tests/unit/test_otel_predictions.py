"""A user's own instrumented app: its ``inference`` spans reach the filter as predictions."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from edgeloop.contracts import Prediction
from edgeloop.otel import MemorySink, ModuleClientSink, PredictionSpanExporter, SpanMapping
from edgeloop.runtime.codec import decode


class PerceptStyleApp:
    """A small app of the test's own: it classifies files and traces each call the Percept way."""

    def __init__(self, provider: TracerProvider) -> None:
        self.tracer = provider.get_tracer("my-vision-app")

    def handle_request(self, file_ref: str, confidence: Any, **extra: Any) -> tuple[int, int, int]:
        with (
            self.tracer.start_as_current_span("request"),
            self.tracer.start_as_current_span("inference") as span,
        ):
            span.set_attributes({"confidence": confidence, "model_name": "shelf-detector",
                                 "model_version": "7", "file_ref": file_ref, **extra})  # fmt: skip
            context = span.get_span_context()
            return context.trace_id, context.span_id, int(context.trace_flags)


@pytest.fixture
def app_and_sink() -> Iterator[tuple[PerceptStyleApp, MemorySink, PredictionSpanExporter]]:
    sink = MemorySink()
    exporter = PredictionSpanExporter(
        sink, mapping=SpanMapping(source_id="cam1", volume_root="/data/samples")
    )
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield PerceptStyleApp(provider), sink, exporter
    provider.shutdown()


def test_an_inference_span_becomes_a_prediction_with_its_trace_context(
    app_and_sink: tuple[PerceptStyleApp, MemorySink, PredictionSpanExporter],
) -> None:
    app, sink, _ = app_and_sink
    # when
    trace_id, span_id, flags = app.handle_request("cam1/2026/01/05/a1.jpg", 0.42, label="cereal")
    # then: only the inference span was sent (not the request span), to the 'predictions' output
    assert len(sink.messages) == 1
    message = sink.messages[0]
    assert message.output == "predictions"
    assert (message.content_type, message.content_encoding) == ("application/json", "utf-8")
    traceparent = f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    assert message.properties["traceparent"] == traceparent
    assert json.loads(message.body)["schema"] == "edgeloop.prediction/2"
    [prediction] = decode(message.body)
    assert isinstance(prediction, Prediction)
    assert (prediction.confidence, prediction.label) == (0.42, "cereal")
    assert (prediction.model_name, prediction.model_version) == ("shelf-detector", "7")
    assert prediction.frame.file_ref == "cam1/2026/01/05/a1.jpg"
    assert prediction.frame.source_id == "cam1"
    assert prediction.traceparent == prediction.frame.traceparent == traceparent
    assert prediction.sample_id == f"{span_id:016x}"


def test_an_absolute_path_under_the_volume_becomes_relative_and_ids_are_kept(
    app_and_sink: tuple[PerceptStyleApp, MemorySink, PredictionSpanExporter],
) -> None:
    app, sink, _ = app_and_sink
    app.handle_request("/data/samples/cam2/b7.jpg", 0.9, sample_id="b7", source_id="cam2")
    [prediction] = decode(sink.messages[0].body)
    assert isinstance(prediction, Prediction)
    assert (prediction.sample_id, prediction.frame.file_ref, prediction.frame.source_id) == (
        "b7",
        "cam2/b7.jpg",
        "cam2",
    )


@pytest.mark.parametrize(
    ("file_ref", "confidence", "reason"),
    [
        ("a.jpg", 1.5, "'confidence' must be in 0..1, got 1.5"),
        ("a.jpg", "high", "'confidence' must be a number in 0..1, got 'high'"),
        ("/etc/passwd", 0.5, "is absolute and not under the volume root '/data/samples'"),
        ("../a.jpg", 0.5, "must be a relative path inside the sample volume"),
    ],
)
def test_a_bad_span_is_dropped_with_the_reason_and_the_app_goes_on(
    app_and_sink: tuple[PerceptStyleApp, MemorySink, PredictionSpanExporter], file_ref: str, confidence: Any,
    reason: str,
) -> None:  # fmt: skip
    app, sink, exporter = app_and_sink
    # when
    app.handle_request(file_ref, confidence)
    app.handle_request("ok.jpg", 0.5)
    # then
    assert len(sink.messages) == 1
    assert exporter.sent == 1
    [(why, count)] = exporter.rejected.items()
    assert reason in why
    assert count == 1


def test_a_span_without_model_attributes_is_rejected_naming_the_attribute() -> None:
    sink = MemorySink()
    exporter = PredictionSpanExporter(sink)
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with provider.get_tracer("t").start_as_current_span("inference") as span:
        span.set_attributes({"confidence": 0.3, "file_ref": "x.jpg", "model_name": "m"})
    provider.shutdown()
    assert sink.messages == []
    assert list(exporter.rejected) == ["span attribute 'model_version' is missing"]


class RecordingModuleClient:
    """Stands in for ``IoTHubModuleClient``: records what ``send_message_to_output`` is given."""

    def __init__(self) -> None:
        self.sent: list[tuple[Any, str]] = []

    def send_message_to_output(self, message: Any, output_name: str) -> None:
        self.sent.append((message, output_name))


def test_the_module_client_sink_sends_sdk_messages_to_the_predictions_output(tmp_path: Path) -> None:
    # given
    from azure.iot.device import Message

    client = RecordingModuleClient()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(PredictionSpanExporter(ModuleClientSink(client))))
    app = PerceptStyleApp(provider)
    # when
    trace_id, span_id, flags = app.handle_request("a.jpg", 0.61)
    provider.shutdown()
    # then
    [(message, output)] = client.sent
    assert output == "predictions"
    assert isinstance(message, Message)
    assert (message.content_type, message.content_encoding) == ("application/json", "utf-8")
    assert message.custom_properties["traceparent"] == f"00-{trace_id:032x}-{span_id:016x}-{flags:02x}"
    assert message.custom_properties["schema"] == "edgeloop.prediction/2"
    assert json.loads(message.data)["confidence"] == 0.61


def test_the_batch_processor_sends_off_the_apps_thread_and_flushes() -> None:
    from edgeloop.otel import prediction_span_processor

    sink = MemorySink()
    provider = TracerProvider()
    provider.add_span_processor(
        prediction_span_processor(sink, source_id="cam9", schedule_delay_millis=60_000)
    )
    app = PerceptStyleApp(provider)
    for n in range(5):
        app.handle_request(f"f{n}.jpg", 0.1 * n)
    assert provider.force_flush()
    provider.shutdown()
    predictions = [p for m in sink.messages for p in decode(m.body)]
    assert [p.frame.file_ref for p in predictions if isinstance(p, Prediction)] == [
        f"f{n}.jpg" for n in range(5)
    ]
