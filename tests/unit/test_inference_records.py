"""The inference module's batch-at-once output path against per-sample references: prediction
fields worked out for a whole batch (top-k, confidence, margin, entropy), the outgoing message
validated once (header, a record that fails its contract), spans per record, and the batcher
taking the frames of a message in one step."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest
from edgeloop_inference import observe, outgoing, scoring
from edgeloop_inference.batcher import MicroBatcher

from edgeloop import telemetry
from edgeloop.contracts import FrameRef, Prediction, PredictionBatch
from edgeloop.runtime.codec import decode, encode
from edgeloop.telemetry import names
from tests import model_factory as mf
from tests.unit.test_telemetry import Recorder

SCORED_AT = datetime(2026, 1, 5, 7, 0, 1, tzinfo=UTC)


def _frames(count: int) -> list[FrameRef]:
    return [mf.frame_ref(i, file_ref=f"frames/{i}.png") for i in range(count)]


def _reference(frame: FrameRef, row: list[float], labels: list[str], top_k: int) -> dict[str, Any]:
    """One prediction worked out alone in plain Python, the way a per-sample loop would: classes
    by descending score, ties to the lower index; entropy in nats over the scores."""
    order = sorted(range(len(row)), key=lambda j: (-row[j], j))
    confidence = row[order[0]]
    second = row[order[1]] if len(row) > 1 else 0.0
    entropy = -sum(p * math.log(min(max(p, 1e-12), 1.0)) for p in row)
    return {
        "sample_id": frame.sample_id,
        "label": labels[order[0]],
        "confidence": confidence,
        "margin": min(max(confidence - second, 0.0), 1.0),
        "entropy": max(entropy, 0.0),
        "top_k": [(labels[j], float(np.round(row[j], 6))) for j in order[: min(top_k, len(row))]],
        "scores": [float(np.round(p, 6)) for p in row],
        "traceparent": frame.traceparent,
    }


def _fields(
    frames: list[FrameRef], probs: np.ndarray, labels: list[str], **options: Any
) -> list[dict[str, Any]]:
    settings: dict[str, Any] = {
        "top_k": 3,
        "include_scores": True,
        "model_name": "digits",
        "model_version": "7",
        "latency_ms": 0.8,
        "scored_at": SCORED_AT,
    }
    settings.update(options)
    return scoring.prediction_fields(frames, probs, labels=labels, **settings)


def _random_batches() -> list[Any]:
    rng = np.random.default_rng(7)
    cases = [
        pytest.param(scoring.softmax(rng.normal(scale=3.0, size=(rows, classes))), id=f"{rows}x{classes}")
        for classes in (1, 2, 3, 10)
        for rows in (1, 8, 33)
    ]
    ties = np.array(
        [[0.25, 0.25, 0.25, 0.25], [0.1, 0.4, 0.4, 0.1], [0.0, 0.5, 0.0, 0.5], [0.3, 0.3, 0.4, 0.0]]
    )
    # rounded to 2 places, so that many rows tie on their best or second-best class
    coarse = np.round(scoring.softmax(rng.normal(size=(32, 4))), 2)
    return [
        *cases,
        pytest.param(ties, id="ties"),
        pytest.param(coarse, id="coarse-ties"),
        pytest.param(np.eye(5), id="one-hot"),
        pytest.param(np.zeros((3, 4)), id="all-zero"),
        pytest.param(
            scoring.as_probabilities(rng.normal(0.5, 0.6, size=(16, 6)), logits=False), id="clipped"
        ),
    ]


@pytest.mark.parametrize("probs", _random_batches())
@pytest.mark.parametrize("top_k", [1, 3, 12])
def test_batch_fields_equal_a_per_sample_reference(probs: np.ndarray, top_k: int) -> None:
    # given
    frames = _frames(len(probs))
    labels = [f"c{j}" for j in range(probs.shape[1])]
    # when
    fields = _fields(frames, probs, labels, top_k=top_k)
    # then
    assert len(fields) == len(frames)
    for frame, row, got in zip(frames, probs.tolist(), fields, strict=True):
        want = _reference(frame, row, labels, top_k)
        assert got["sample_id"] == want["sample_id"]
        assert got["frame"] is frame
        assert got["label"] == want["label"]
        assert got["confidence"] == pytest.approx(want["confidence"], abs=1e-12)
        assert got["margin"] == pytest.approx(want["margin"], abs=1e-12)
        assert got["entropy"] == pytest.approx(want["entropy"], rel=1e-9, abs=1e-12)
        assert [(t["label"], t["score"]) for t in got["top_k"]] == want["top_k"]
        assert got["scores"] == want["scores"]
        assert got["labels"] == labels
        assert got["traceparent"] == want["traceparent"]
        assert (got["status"], got["model_name"], got["model_version"]) == ("ok", "digits", "7")
        assert (got["latency_ms"], got["scored_at"], got["embedding"]) == (0.8, SCORED_AT, None)


def test_ties_go_to_the_first_class_and_leave_no_margin() -> None:
    # given: two rows whose best two classes tie
    probs = np.array([[0.1, 0.45, 0.45], [0.5, 0.0, 0.5]])
    # when
    fields = _fields(_frames(2), probs, ["a", "b", "c"], top_k=2)
    # then
    assert [f["label"] for f in fields] == ["b", "a"]
    assert [[t["label"] for t in f["top_k"]] for f in fields] == [["b", "c"], ["a", "c"]]
    assert [f["margin"] for f in fields] == [0.0, 0.0]


def test_a_one_class_model_has_full_margin_and_no_entropy() -> None:
    fields = _fields(_frames(3), np.ones((3, 1)), ["only"], top_k=3)
    assert [(f["label"], f["confidence"], f["margin"], f["entropy"]) for f in fields] == [
        ("only", 1.0, 1.0, 0.0)
    ] * 3
    assert all(f["top_k"] == [{"label": "only", "score": 1.0}] for f in fields)


def test_without_scores_and_with_embeddings() -> None:
    # given
    probs = scoring.softmax(np.random.default_rng(1).normal(size=(4, 5)))
    texts = ["AAA=", None, "AAB=", "AAC="]
    # when
    fields = _fields(_frames(4), probs, list("abcde"), include_scores=False, embeddings=texts)
    # then
    assert [f["scores"] for f in fields] == [[]] * 4
    assert all(f["labels"] is None for f in fields)
    assert [f["embedding"] for f in fields] == texts


def test_mismatched_inputs_are_refused_with_what_is_wrong() -> None:
    probs = np.full((2, 3), 1 / 3)
    with pytest.raises(ValueError, match="3 frames"):
        _fields(_frames(3), probs, ["a", "b", "c"])
    with pytest.raises(ValueError, match="2 labels for 3 classes"):
        _fields(_frames(2), probs, ["a", "b"])
    with pytest.raises(ValueError, match="top_k must be at least 1, got 0"):
        _fields(_frames(2), probs, ["a", "b", "c"], top_k=0)
    with pytest.raises(ValueError, match="1 embeddings for 2 frames"):
        _fields(_frames(2), probs, ["a", "b", "c"], embeddings=["x"])


def test_validated_predictions_carry_the_same_values_as_the_fields() -> None:
    # given
    probs = scoring.softmax(np.random.default_rng(2).normal(size=(8, 10)))
    frames, labels = _frames(8), [str(j) for j in range(10)]
    options: dict[str, Any] = {"top_k": 3, "include_scores": True, "model_name": "m", "model_version": "1"}
    # when
    predictions = scoring.predictions(
        frames, probs, labels=labels, latency_ms=0.5, scored_at=SCORED_AT, **options
    )
    # then
    fields = _fields(frames, probs, labels, latency_ms=0.5, **options)
    assert [p.model_dump() for p in predictions] == [
        Prediction.model_validate(f).model_dump() for f in fields
    ]


# -- the outgoing message ------------------------------------------------------------------
def test_a_message_says_shared_fields_once_and_reads_back_as_the_records() -> None:
    # given: two runs, scored at different times by the same model
    probs = scoring.softmax(np.random.default_rng(3).normal(size=(6, 4)))
    frames = _frames(6)
    later = SCORED_AT + timedelta(milliseconds=5)
    records = _fields(frames[:3], probs[:3], list("abcd")) + _fields(
        frames[3:], probs[3:], list("abcd"), scored_at=later, latency_ms=0.9
    )
    # when
    batch, sent, problems = outgoing.batch_of(records)
    [message] = encode("predictions", [batch], max_batch=1)
    # then: model and labels in the header, time and latency per item
    body = json.loads(message.body)
    assert (body["model_name"], body["model_version"], body["labels"]) == ("digits", "7", list("abcd"))
    assert "scored_at" not in body
    assert "latency_ms" not in body
    assert all("model_name" not in item and "scored_at" in item for item in body["items"])
    assert problems == []
    assert sent == records
    assert decode(message.body) == [Prediction.model_validate(r) for r in records]


def test_the_message_equals_one_built_from_fully_validated_predictions_and_leaves_records_whole() -> None:
    # given: records of two runs of one model
    probs = scoring.softmax(np.random.default_rng(5).normal(size=(5, 3)))
    frames = _frames(5)
    records = _fields(frames[:2], probs[:2], list("xyz")) + _fields(
        frames[2:], probs[2:], list("xyz"), scored_at=SCORED_AT + timedelta(seconds=1), latency_ms=0.7
    )
    copies = [dict(record) for record in records]
    # when
    batch, _sent, _problems = outgoing.batch_of(records)
    # then: the header fields are taken out of the message's items, not out of the records
    assert records == copies
    assert batch == PredictionBatch.of([Prediction.model_validate(r) for r in copies])
    assert (
        batch.model_dump_json()
        == PredictionBatch.of([Prediction.model_validate(r) for r in copies]).model_dump_json()
    )


def test_a_record_failing_its_contract_goes_out_as_an_error_and_its_mates_are_kept() -> None:
    # given: a model that emitted NaN for one sample
    probs = np.array([[0.9, 0.1], [np.nan, np.nan], [0.2, 0.8]])
    records = _fields(_frames(3), probs, ["a", "b"])
    # when
    batch, sent, problems = outgoing.batch_of(records)
    # then
    items = [p for p in batch.unbatch() if isinstance(p, Prediction)]
    assert [p.status for p in items] == ["ok", "error", "ok"]
    assert [p.label for p in items] == ["a", None, "b"]
    bad = items[1]
    assert bad.error is not None
    assert "s000001" in bad.error
    assert "confidence" in bad.error
    assert bad.traceparent == records[1]["traceparent"]
    assert bad.frame == records[1]["frame"]
    assert len(problems) == 1
    assert sent[0] is records[0]
    assert sent[1]["status"] == "error"


def test_a_single_prediction_for_a_caller_is_checked_the_same_way() -> None:
    records = _fields(_frames(2), np.array([[0.6, 0.4], [np.nan, 1.0]]), ["a", "b"])
    good, problem = outgoing.prediction_of(records[0])
    assert (good.label, problem) == ("a", None)
    bad, problem = outgoing.prediction_of(records[1])
    assert bad.status == "error"
    assert problem is not None


def test_an_empty_message_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        outgoing.batch_of([])


def test_error_records_share_the_header_with_scored_ones() -> None:
    frames = _frames(2)
    records = [
        *_fields(frames[:1], np.array([[1.0, 0.0]]), ["a", "b"]),
        scoring.error_fields(
            frames[1], "file gone", model_name="digits", model_version="7", scored_at=SCORED_AT
        ),
    ]
    batch, _sent, problems = outgoing.batch_of(records)
    assert isinstance(batch, PredictionBatch)
    assert (batch.model_name, batch.model_version, batch.scored_at) == ("digits", "7", SCORED_AT)
    assert problems == []
    assert [p.status for p in batch.items] == ["ok", "error"]


# -- spans ---------------------------------------------------------------------------------
class _Job:
    def __init__(self, frame: FrameRef, enqueued: float) -> None:
        self.frame, self.enqueued = frame, enqueued


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    telemetry.setup(recorder.telemetry)
    yield recorder
    telemetry.shutdown()


def test_records_get_one_span_each_and_leave_with_its_trace_context(rec: Recorder) -> None:
    # given
    frames = _frames(2)
    records = [
        *_fields(frames[:1], np.array([[0.7, 0.3]]), ["cat", "dog"]),
        scoring.error_fields(
            frames[1], "unreadable", model_name="digits", model_version="7", scored_at=SCORED_AT
        ),
    ]
    jobs = [_Job(frames[0], 10.0), _Job(frames[1], 10.5)]
    # when
    observe.record_records(jobs, records, done=11.0)
    # then
    spans = {dict(s.attributes or {})[names.ATTR_SAMPLE_ID]: s for s in rec.finished()}
    good, bad = spans["s000000"], spans["s000001"]
    assert dict(good.attributes or {}) == {
        names.ATTR_SAMPLE_ID: "s000000",
        names.ATTR_CONFIDENCE: 0.7,
        names.ATTR_MODEL_NAME: "digits",
        names.ATTR_MODEL_VERSION: "7",
        names.ATTR_FILE_REF: "frames/0.png",
        names.ATTR_LABEL: "cat",
    }
    assert good.end_time is not None
    assert good.start_time is not None
    assert good.end_time - good.start_time == pytest.approx(1e9, rel=0.01)
    assert bad.status.status_code.name == "ERROR"
    assert [r["traceparent"] for r in records] == [
        telemetry.format_traceparent(good.context),
        telemetry.format_traceparent(bad.context),
    ]
    assert records[0]["traceparent"] != frames[0].traceparent


def test_with_telemetry_off_records_keep_their_trace_context() -> None:
    records = _fields(_frames(2), np.array([[0.7, 0.3], [0.1, 0.9]]), ["cat", "dog"])
    before = [r["traceparent"] for r in records]
    observe.record_records([_Job(r["frame"], 0.0) for r in records], records, done=1.0)
    assert [r["traceparent"] for r in records] == before


# -- the batcher ---------------------------------------------------------------------------
def test_a_message_of_frames_is_queued_at_once_and_scored_in_order_in_full_runs() -> None:
    # given
    seen: list[list[int]] = []
    batcher: MicroBatcher[int] = MicroBatcher(seen.append, max_batch=8, max_wait_s=0.5)
    batcher.start()
    # when: the 21 frames of one message
    batcher.submit_many(list(range(21)))
    left = batcher.stop(timeout=5)
    # then: they were queued together, so the worker found full runs
    assert left == []
    assert [len(batch) for batch in seen] == [8, 8, 5]
    assert [i for batch in seen for i in batch] == list(range(21))


def test_a_full_queue_holds_the_submitter_until_there_is_room_and_loses_nothing() -> None:
    # given: room for 4, a slow worker
    seen: list[int] = []

    def process(batch: list[int]) -> None:
        time.sleep(0.005)
        seen.extend(batch)

    batcher: MicroBatcher[int] = MicroBatcher(process, max_batch=2, max_wait_s=0.0, queue_limit=4)
    batcher.start()
    # when: 30 items in one call
    submitter = threading.Thread(target=batcher.submit_many, args=(list(range(30)),))
    submitter.start()
    time.sleep(0.01)
    # then: the queue never holds more than its limit, and every item is scored once
    assert batcher.pending <= 4
    submitter.join(10)
    assert not submitter.is_alive()
    assert batcher.stop(timeout=5) == []
    assert seen == list(range(30))


def test_a_stopped_batcher_refuses_a_message() -> None:
    batcher: MicroBatcher[int] = MicroBatcher(lambda batch: None)
    batcher.start()
    batcher.stop()
    with pytest.raises(RuntimeError, match="stopping"):
        batcher.submit_many([1, 2])
