"""Items their producer encoded already (``codec.PreEncoded``): sent as they are, with the
properties a contract object of the same items would give, and refused when over the limit."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

import pytest

from edgeloop.contracts import FrameRef, Prediction, PredictionBatch
from edgeloop.errors import MessageTooLargeError
from edgeloop.runtime.codec import PreEncoded, decode, encode


class EncodedPredictions(PreEncoded):
    SCHEMA: ClassVar[str] = PredictionBatch.SCHEMA


def _batch(count: int) -> PredictionBatch:
    frames = [
        FrameRef(
            sample_id=f"s{i}",
            source_id="cam",
            seq=i,
            captured_at=datetime(2026, 1, 1, tzinfo=UTC),
            kind="image",
            file_ref=f"frames/{i}.png",
        )
        for i in range(count)
    ]
    return PredictionBatch.of(
        [
            Prediction(sample_id=f.sample_id, frame=f, status="ok", label="a", confidence=0.5, model_name="m")
            for f in frames
        ]
    )


def _pre(batch: PredictionBatch) -> EncodedPredictions:
    [message] = encode("predictions", [batch], max_batch=1)
    return EncodedPredictions(body=message.body, first_key=batch.key, count=batch.item_count)


def test_the_body_goes_out_as_it_is_with_the_same_properties() -> None:
    batch = _batch(3)
    [want] = encode("predictions", [batch], max_batch=1)
    [got] = encode("predictions", [_pre(batch)], max_batch=1)
    assert got.body == want.body
    assert (
        got.properties
        == want.properties
        == {"schema": PredictionBatch.SCHEMA, "sample_id": "s0", "batch_size": "3"}
    )


def test_it_reads_back_as_its_items() -> None:
    batch = _batch(2)
    assert _pre(batch).unbatch() == batch.unbatch() == decode(_pre(batch).body)


def test_one_over_the_size_limit_is_refused() -> None:
    pre = _pre(_batch(4))
    with pytest.raises(MessageTooLargeError, match="over the"):
        encode("predictions", [pre], max_batch=1, max_bytes=len(pre.body) - 1)


def test_a_count_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        EncodedPredictions(body=b"{}", first_key="s0", count=0)
