"""The inference module's outgoing messages serialized straight from prediction records
(``outgoing.encoded_batch``) against the contract's own path (``outgoing.batch_of``, then the
codec): the same bytes and properties on the same records, decoded by the full contracts to
the same predictions; rows that are not sound checked against the contract when they are made."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgeloop_inference import outgoing, scoring

from edgeloop.contracts import FrameRef, Prediction, PredictionBatch, RawPixels, encode_embedding
from edgeloop.runtime.codec import OutboundMessage, decode, encode
from tests import model_factory as mf
from tests.unit.test_inference_module import Harness

SCORED_AT = datetime(2026, 1, 5, 7, 0, 1, 250000, tzinfo=UTC)


def _frame(i: int, rng: np.random.Generator) -> FrameRef:
    """Frames as capture sends them, optional fields present or not."""
    extra: dict[str, Any] = {}
    if i % 2 == 0:
        extra = {
            "content_type": "image/png",
            "width": 64,
            "height": 48,
            "bytes": 1000 + i,
            "sha256": f"{i:064x}",
            "dhash": f"{i * 7919:016x}",
            "attributes": {"file": f"f{i}.png", "note": 'quote " and \u00e9'},
        }
    if i % 3 == 0:
        extra["raw"] = RawPixels(channels=1, quality=90)
    frame = mf.frame_ref(i, file_ref=f"frames/{i}.png", **extra)
    if i % 4 == 1:
        frame = frame.model_copy(update={"traceparent": None})
    if i % 5 == 4:
        frame = mf.frame_ref(i, vector=[0.1 * i, -2.5e-7, 3e38, 1.0])
    return frame


def _old(records: list[dict[str, Any]]) -> OutboundMessage:
    batch, _sent, problems = outgoing.batch_of(records)
    assert problems == []
    [message] = encode("predictions", [batch], max_batch=1)
    return message


def _new(records: list[dict[str, Any]]) -> OutboundMessage:
    batch = outgoing.encoded_batch(records)
    assert batch is not None
    [message] = encode("predictions", [batch], max_batch=1)
    return message


def _records(seed: int, runs: int, rows: int, classes: int, **options: Any) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    labels = [f"class-{j}" if j else 'z\u00e9ro "0"\t\u2603' for j in range(classes)]
    records: list[dict[str, Any]] = []
    for run in range(runs):
        logits = rng.normal(scale=4.0, size=(rows, classes))
        probs = scoring.as_probabilities(logits, logits=options.get("logits", True))
        frames = [_frame(run * rows + i, rng) for i in range(rows)]
        embeddings = None
        if options.get("embeddings"):
            values = rng.normal(size=(rows, 16))
            embeddings = [encode_embedding(row) for row in values.tolist()]
        records += scoring.prediction_fields(
            frames,
            probs,
            labels=labels,
            top_k=options.get("top_k", 3),
            include_scores=options.get("include_scores", True),
            model_name="digits",
            model_version="7",
            latency_ms=round(float(rng.uniform(0.0, 50.0)), 3),
            scored_at=SCORED_AT + timedelta(milliseconds=run * options.get("apart_ms", 3)),
            embeddings=embeddings,
        )
    return records


CASES = [
    pytest.param({"seed": 1, "runs": 1, "rows": 8, "classes": 10}, id="one-run"),
    pytest.param({"seed": 2, "runs": 3, "rows": 8, "classes": 10}, id="three-runs"),
    pytest.param({"seed": 3, "runs": 2, "rows": 5, "classes": 10, "apart_ms": 0}, id="same-time"),
    pytest.param({"seed": 4, "runs": 1, "rows": 1, "classes": 1}, id="one-class"),
    pytest.param({"seed": 5, "runs": 2, "rows": 7, "classes": 2, "top_k": 5}, id="two-classes"),
    pytest.param({"seed": 6, "runs": 1, "rows": 8, "classes": 10, "include_scores": False}, id="no-scores"),
    pytest.param({"seed": 7, "runs": 2, "rows": 8, "classes": 1000, "top_k": 10}, id="1000-classes"),
    pytest.param({"seed": 8, "runs": 2, "rows": 8, "classes": 10, "embeddings": True}, id="embeddings"),
    pytest.param({"seed": 9, "runs": 1, "rows": 8, "classes": 6, "logits": False}, id="clipped"),
]


@pytest.mark.parametrize("case", CASES)
def test_the_message_from_records_is_the_contracts_message_byte_for_byte(case: dict[str, Any]) -> None:
    # given
    records = _records(**case)
    # when
    new, old = _new(records), _old(records)
    # then
    assert new.body == old.body
    assert new.properties == old.properties
    assert decode(new.body) == decode(old.body) == [Prediction.model_validate(r) for r in records]


def test_error_records_among_scored_ones_go_out_as_the_contract_says() -> None:
    # given: a run with two frames that could not be read, and an error without a model
    records = _records(seed=11, runs=1, rows=6, classes=4)
    frames = [_frame(40 + i, np.random.default_rng(0)) for i in range(2)]
    records.insert(
        2,
        scoring.error_fields(
            frames[0], "file gone", model_name="digits", model_version="7", scored_at=SCORED_AT
        ),
    )
    records.append(
        scoring.error_fields(frames[1], "no model", model_name=None, model_version=None, scored_at=SCORED_AT)
    )
    # when
    new, old = _new(records), _old(records)
    # then
    assert new.body == old.body
    statuses = [p.status for p in decode(new.body) if isinstance(p, Prediction)]
    assert statuses == ["ok", "ok", "error", "ok", "ok", "ok", "ok", "error"]


def test_records_are_left_whole() -> None:
    records = _records(seed=12, runs=2, rows=3, classes=3)
    copies = [dict(record) for record in records]
    outgoing.encoded_batch(records)
    assert records == copies


def test_the_message_decodes_as_a_prediction_batch() -> None:
    records = _records(seed=13, runs=1, rows=4, classes=3)
    batch = outgoing.encoded_batch(records)
    assert batch is not None
    assert (batch.key, batch.item_count) == (records[0]["sample_id"], 4)
    [whole] = [
        PredictionBatch.model_validate_json(batch.body.replace(b'"schema":"edgeloop.predictions/1",', b""))
    ]
    assert [p.sample_id for p in whole.items] == [r["sample_id"] for r in records]


def test_an_empty_message_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        outgoing.encoded_batch([])


# -- rows that are not sound ---------------------------------------------------------------
def test_sound_rows_are_finite_probabilities() -> None:
    probs = np.array([[0.5, 0.5], [np.nan, 1.0], [1.2, 0.0], [-0.1, 0.9], [np.inf, 0.0], [1.0, 0.0]])
    assert scoring.sound_rows(probs).tolist() == [True, False, False, False, False, True]
    assert scoring.unsound_rows(probs) == [1, 2, 3, 4]
    assert scoring.unsound_rows(probs[[0, 5]]) == []
    assert scoring.unsound_rows(np.array([[0.2, np.nan]])) == [0]


def _two_class_records(probs: np.ndarray) -> list[dict[str, Any]]:
    """The records of one run of two-class rows ``probs`` (a frame each)."""
    return scoring.prediction_fields(
        [_frame(i, np.random.default_rng(0)) for i in range(len(probs))],
        probs,
        labels=["a", "b"],
        top_k=2,
        include_scores=True,
        model_name="m",
        model_version="1",
        latency_ms=0.5,
        scored_at=SCORED_AT,
    )


def test_a_nan_row_becomes_an_error_record_naming_the_field() -> None:
    # given: a model that emitted NaN for one sample
    probs = np.array([[0.9, 0.1], [np.nan, np.nan]])
    records = _two_class_records(probs)
    assert scoring.sound_rows(probs).tolist() == [True, False]
    # when
    replaced, problem = outgoing.vetted(records[1])
    # then: the reason the contract's own check gives
    assert problem is not None
    assert "s000001" in problem
    assert "confidence" in problem
    assert replaced["status"] == "error"
    assert replaced["error"] == problem
    assert replaced["traceparent"] == records[1]["traceparent"]
    message = _new([records[0], replaced])
    assert message.body == _old([records[0], replaced]).body
    bad = decode(message.body)[1]
    assert isinstance(bad, Prediction)
    assert (bad.status, bad.error) == ("error", problem)


def test_a_row_that_is_not_sound_but_passes_the_contract_takes_the_contracts_path() -> None:
    # given: scores outside [0, 1] that still make a valid prediction
    probs = np.array([[0.5, -0.1], [0.7, 0.3]])
    records = _two_class_records(probs)
    # when
    kept, problem = outgoing.vetted(records[0])
    # then
    assert problem is None
    assert isinstance(kept, outgoing.Unvetted)
    assert kept == records[0]
    assert outgoing.encoded_batch([kept, records[1]]) is None
    batch, _sent, problems = outgoing.batch_of([kept, records[1]])
    assert problems == []
    assert [p.label for p in batch.items] == ["a", "a"]


# -- the module's own messages ---------------------------------------------------------------
def test_the_modules_messages_are_the_contracts_own_encoding_of_their_predictions(tmp_path: Path) -> None:
    # given: the module serving digits, with a frame whose file is missing among scored ones
    desired = {"batching": {"max_batch": 4, "max_wait_ms": 200}}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        frames = h.digit_frames([1, 2, 3, 4, 5, 6, 7])
        frames.insert(3, mf.frame_ref(99, file_ref="frames/gone.png"))
        # when
        h.hub.push_input("frames", frames)
        h.wait_predictions(len(frames))
        messages = [m for m in h.hub.sent if m.output == "predictions"]
    # then: each body is what PredictionBatch, fully validated, encodes its predictions to
    assert messages
    seen = []
    for message in messages:
        predictions = [p for p in decode(message.body) if isinstance(p, Prediction)]
        [reference] = encode("predictions", [PredictionBatch.of(predictions)], max_batch=1)
        assert message.body == reference.body
        assert message.properties == reference.properties
        seen += predictions
    assert sorted(p.sample_id for p in seen) == sorted(f.sample_id for f in frames)
    statuses = {p.sample_id: p.status for p in seen}
    assert statuses.pop(frames[3].sample_id) == "error"
    assert set(statuses.values()) == {"ok"}
