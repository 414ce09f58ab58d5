"""The ``edgeloop.predictions/1`` batch contract: header fields said once, one validation per
batch, bad items left out alone, older forms still read."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from edgeloop.contracts import FrameRef, Prediction, PredictionBatch
from edgeloop.errors import ContractError
from edgeloop.runtime.codec import decode, decode_each, encode

LABELS = ["0", "1", "2"]
SCORED = datetime(2026, 1, 5, 7, 0, 1, tzinfo=UTC)


def prediction(i: int, **extra: object) -> Prediction:
    frame = FrameRef(
        sample_id=f"s{i}",
        source_id="cam",
        seq=i,
        captured_at=datetime(2026, 1, 5, 7, tzinfo=UTC),
        kind="image",
        file_ref=f"cam/s{i}.png",
    )
    fields: dict[str, object] = {
        "sample_id": frame.sample_id,
        "frame": frame,
        "status": "ok",
        "model_name": "digits",
        "model_version": "v3",
        "label": "1",
        "confidence": 0.5 + i / 100,
        "scores": [0.2, 0.5, 0.3],
        "labels": LABELS,
        "scored_at": SCORED,
        "latency_ms": 1.5,
        **extra,
    }
    return Prediction.model_validate(fields)


def test_shared_fields_go_to_the_header_and_come_back_on_every_item() -> None:
    # given
    items = [prediction(i) for i in range(5)]
    # when
    [message] = encode("predictions", [PredictionBatch.of(items)])
    body = json.loads(message.body)
    # then
    assert body["schema"] == "edgeloop.predictions/1"
    assert body["model_version"] == "v3"
    assert body["labels"] == LABELS
    assert all("model_version" not in item and "labels" not in item for item in body["items"])
    assert message.properties["batch_size"] == "5"
    assert message.properties["sample_id"] == "s0"
    assert decode(message.body) == items


def test_fields_that_differ_stay_on_the_items() -> None:
    items = [prediction(0), prediction(1, model_version="v4", scored_at=None)]
    batch = PredictionBatch.of(items)
    assert batch.model_version is None
    assert batch.scored_at is None
    assert batch.model_name == "digits"
    assert decode(encode("predictions", [batch])[0].body) == items


def test_an_items_own_value_wins_over_the_header() -> None:
    body = {
        "schema": "edgeloop.predictions/1",
        "model_version": "v3",
        "items": [
            {**prediction(0).model_dump(mode="json", exclude_none=True), "model_version": "v9"},
            {k: v for k, v in prediction(1).model_dump(mode="json").items() if k != "model_version"},
        ],
    }
    got = decode(json.dumps(body))
    assert [p.model_version for p in got if isinstance(p, Prediction)] == ["v9", "v3"]


def test_a_bad_item_is_left_out_with_its_reason_and_its_mates_kept() -> None:
    # given
    doc = json.loads(encode("predictions", [PredictionBatch.of([prediction(i) for i in range(3)])])[0].body)
    doc["items"][1]["confidence"] = 7.0
    # when
    items, problems = decode_each(json.dumps(doc))
    # then
    assert [p.key for p in items] == ["s0", "s2"]
    assert len(problems) == 1
    assert "'s1'" in problems[0]
    assert "confidence" in problems[0]


def test_a_bad_header_rejects_the_message_naming_the_field() -> None:
    doc = json.loads(encode("predictions", [PredictionBatch.of([prediction(i) for i in range(3)])])[0].body)
    doc["latency_ms"] = -1
    with pytest.raises(ContractError, match="latency_ms"):
        decode_each(json.dumps(doc))


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        PredictionBatch.of([])
    with pytest.raises(ContractError, match="items"):
        decode(json.dumps({"schema": "edgeloop.predictions/1", "items": []}))


def test_single_prediction_and_batch_envelope_messages_are_still_read() -> None:
    items = [prediction(i) for i in range(3)]
    [single] = encode("predictions", items[:1])
    [envelope] = encode("predictions", items)
    assert json.loads(envelope.body)["schema"] == "edgeloop.batch/1"
    assert decode(single.body) == items[:1]
    assert decode(envelope.body) == items


def test_prediction_batches_inside_a_batch_envelope_are_read_item_by_item() -> None:
    first, second = PredictionBatch.of([prediction(0), prediction(1)]), PredictionBatch.of([prediction(2)])
    [message] = encode("predictions", [first, second])
    assert json.loads(message.body)["schema"] == "edgeloop.batch/1"
    assert decode(message.body) == [prediction(0), prediction(1), prediction(2)]
