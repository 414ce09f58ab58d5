"""The span exporter that sends ``inference`` spans as predictions, and a processor around it."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from edgeloop.otel.mapping import SpanMapping, SpanRejected, prediction_from_span
from edgeloop.otel.sink import PredictionSink
from edgeloop.runtime.codec import encode

log = logging.getLogger(__name__)

#: The output the filter module's ``predictions`` input is routed from.
OUTPUT = "predictions"


class PredictionSpanExporter(SpanExporter):
    """Exports ``inference`` spans as ``edgeloop.prediction/2`` messages; other spans are ignored.

    One message per prediction by default (``max_batch=1``), so that each message's
    ``traceparent`` property is its own span's; with ``max_batch`` > 1 predictions travel in
    ``edgeloop.batch/1`` envelopes, each item still carrying its ``traceparent``. A span with a
    bad attribute is dropped with the reason logged and counted in ``rejected``; it never
    raises into the app.
    """

    def __init__(
        self,
        sink: PredictionSink,
        *,
        mapping: SpanMapping | None = None,
        output: str = OUTPUT,
        max_batch: int = 1,
    ) -> None:
        self.sink = sink
        self.mapping = mapping or SpanMapping()
        self.output = output
        self.max_batch = max_batch
        self.sent = 0
        self.rejected: Counter[str] = Counter()
        self._shut = False

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if self._shut:
            return SpanExportResult.FAILURE
        predictions = []
        for span in spans:
            if span.name != self.mapping.span_name:
                continue
            try:
                predictions.append(prediction_from_span(span, self.mapping))
            except SpanRejected as exc:
                self.rejected[str(exc)] += 1
                log.warning("inference span %s dropped: %s", span.context and span.context.span_id, exc)
        try:
            for message in encode(self.output, predictions, max_batch=self.max_batch):
                self.sink.send(message)
        except Exception:  # the sink's (SDK's) errors vary; the app must keep running
            log.exception("could not send %d predictions to output %r", len(predictions), self.output)
            return SpanExportResult.FAILURE
        self.sent += len(predictions)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self._shut = True

    def force_flush(self, timeout_millis: int = 30_000) -> bool:
        return True


def prediction_span_processor(
    sink: PredictionSink,
    *,
    source_id: str = "otel",
    volume_root: str | None = None,
    max_batch: int = 1,
    **batch: Any,
) -> BatchSpanProcessor:
    """A ``BatchSpanProcessor`` (sends off the app's thread) around a ``PredictionSpanExporter``
    sending up to ``max_batch`` predictions a message; ``batch`` goes to the processor
    (``schedule_delay_millis``, ``max_export_batch_size``...)."""
    mapping = SpanMapping(source_id=source_id, volume_root=volume_root)
    return BatchSpanProcessor(PredictionSpanExporter(sink, mapping=mapping, max_batch=max_batch), **batch)
