"""Each module's spans and metrics, with in-memory exporters: the filter through its runtime
and the fake hub, the other modules' telemetry helpers directly (inference's spans in
tests/unit/test_inference_records.py; the four together run in
tests/integration/test_telemetry_pipeline.py)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from edgeloop_capture.observe import record_capture
from edgeloop_cloud.samples import SampleRef, fetch_plaintext
from edgeloop_uploader import observe as uploader_observe
from opentelemetry.sdk.trace import ReadableSpan

from edgeloop import telemetry
from edgeloop.blobstore import MemoryContainer
from edgeloop.telemetry import names
from tests.filter_helpers import prediction
from tests.unit.test_filter_module import OLD_RULE, Running, wait_for
from tests.unit.test_telemetry import TP, Recorder


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    telemetry.setup(recorder.telemetry)
    yield recorder
    telemetry.shutdown()


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def total(rec: Recorder, name: str, **attributes: str) -> float:
    """A counter's value for the series with ``attributes`` (0 when absent)."""
    return sum(p.value for attrs, p in rec.points(name) if attrs == attributes)


def test_the_filter_makes_a_select_span_per_prediction_and_counts_decisions(rec: Recorder) -> None:
    # given
    selected_before = total(rec, names.M_SELECTED, strategy="low")
    dropped = {"module": "filter", "reason": "no_strategy_matched"}
    dropped_before = total(rec, names.M_DROPPED, **dropped)
    with Running({"policy": OLD_RULE, "summary_interval_s": 60}) as running:
        # when
        running.hub.push_input(
            "predictions",
            [prediction(1, confidence=0.5, traceparent=TP), prediction(2, confidence=0.95, traceparent=TP)],
        )
        wait_for(lambda: running.stats()["seen"] == 2)
        [chosen] = running.selected()

    # then
    spans = {attrs(span)[names.ATTR_SAMPLE_ID]: span for span in rec.finished() if span.name == "select"}
    kept, passed = spans["s000001"], spans["s000002"]
    assert kept.parent is not None
    assert kept.parent.span_id == 0xB7AD6B7169203331
    assert kept.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert chosen.traceparent == telemetry.format_traceparent(kept.context)
    assert (attrs(kept)[names.ATTR_SELECTED], attrs(kept)[names.ATTR_STRATEGY]) == (True, "low")
    assert (attrs(passed)[names.ATTR_SELECTED], attrs(passed)[names.ATTR_REASON]) == (
        False,
        "no_strategy_matched",
    )
    assert total(rec, names.M_SELECTED, strategy="low") == selected_before + 1
    assert total(rec, names.M_DROPPED, **dropped) == dropped_before + 1
    assert [p.count for _, p in rec.points(names.M_CAPTURE_TO_SELECTION)][-1] >= 1


def test_the_capture_span_roots_the_trace_from_the_capture_time(rec: Recorder) -> None:
    # given
    captured_at = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
    before = total(rec, names.M_CAPTURED, source="cam")

    # when
    traceparent = record_capture("s1", "cam", captured_at, file_ref="capture/s1.jpg", size=1234)

    # then
    (span,) = rec.finished()
    assert span.parent is None
    assert span.start_time == int(captured_at.timestamp() * 1e9)
    assert attrs(span)[names.ATTR_FILE_REF] == "capture/s1.jpg"
    assert traceparent == telemetry.format_traceparent(span.context)
    assert total(rec, names.M_CAPTURED, source="cam") == before + 1


@pytest.mark.parametrize(
    ("counter", "metric", "attributes"),
    [
        ("uploaded", names.M_UPLOADED, {}),
        ("evicted", names.M_EVICTIONS, {"module": "uploader", "reason": "budget"}),
        ("attempt_errors", names.M_ERRORS, {"module": "uploader", "kind": "upload"}),
    ],
)
def test_the_uploader_counters_feed_their_metrics(
    rec: Recorder, counter: str, metric: str, attributes: dict[str, Any]
) -> None:
    # given
    before = total(rec, metric, **attributes)

    # when
    uploader_observe.count(counter, 2)
    uploader_observe.count("claimed_by_link", 5)  # the uploader's own bookkeeping: no metric

    # then
    assert total(rec, metric, **attributes) == before + 2


class PlainOpener:
    def open(self, blob: bytes, ref: SampleRef) -> bytes:
        return blob


def test_the_cloud_continues_the_trace_from_the_blob_metadata(rec: Recorder) -> None:
    # given: a sample the uploader stored with its upload span's traceparent
    container = MemoryContainer("data")
    container.write("s1.bin", b"pixels", metadata={"TraceParent": TP})
    ref = SampleRef(sample_id="s1", blob_name="s1.bin", model="m", model_version="1", device="d", day="x")

    # when
    plaintext = fetch_plaintext(container, ref, PlainOpener())

    # then
    (span,) = rec.finished()
    assert plaintext == b"pixels"
    assert span.name == names.SPAN_DECRYPT
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331
