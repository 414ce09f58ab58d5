"""The float16 embedding a prediction may carry, and ``/1`` predictions still accepted."""

from __future__ import annotations

import base64
import json
import struct

import pytest

from edgeloop.contracts import (
    MAX_EMBEDDING_VALUES,
    EmbeddingError,
    Prediction,
    decode_embedding,
    encode_embedding,
)
from edgeloop.model_metadata import EMBEDDING_KEY, ModelMetadataError, metadata_from_map, metadata_props
from edgeloop.runtime.codec import decode, encode
from tests.filter_helpers import prediction


@pytest.mark.parametrize("count", [1, 8, 32, MAX_EMBEDDING_VALUES])
def test_an_embedding_round_trips_within_float16_precision(count: int) -> None:
    # given
    values = [((i * 37) % 11 - 5) / 3.0 for i in range(count)]
    # when
    text = encode_embedding(values)
    back = decode_embedding(text)
    # then
    assert len(back) == count
    assert all(abs(a - b) <= 1e-3 * max(1.0, abs(a)) for a, b in zip(values, back, strict=True))
    assert len(text) <= 172


def test_values_beyond_float16_range_are_clipped_not_refused() -> None:
    assert decode_embedding(encode_embedding([1e6, -1e6])) == (65504.0, -65504.0)


@pytest.mark.parametrize(
    ("values", "says"),
    [([], "at least one"), ([0.0] * 65, "at most 64"), ([float("nan")], "finite")],
)
def test_encoding_refuses_what_cannot_be_carried(values: list[float], says: str) -> None:
    with pytest.raises(EmbeddingError, match=says):
        encode_embedding(values)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("not base64!", "not base64"),
        (base64.b64encode(b"\x00\x3c\x00").decode(), "2 bytes each"),
        ("", "0 bytes"),
        (base64.b64encode(struct.pack("<65e", *[1.0] * 65)).decode(), "65 values"),
        (base64.b64encode(struct.pack("<e", float("inf"))).decode(), "NaN or infinite"),
        ("ünïcode", "not base64"),
    ],
)
def test_decoding_names_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(EmbeddingError, match=says):
        decode_embedding(text)


def test_a_prediction_carries_its_embedding_under_schema_2_and_batches_stay_small() -> None:
    # given: a full batch of predictions, each with a 64-value embedding
    items = [prediction(i, embedding=encode_embedding([0.25] * 64)) for i in range(64)]
    # when
    messages = encode("predictions", items)
    # then
    body = json.loads(messages[0].body)
    assert body["item_schema"] == "edgeloop.prediction/2"
    assert all(m.size < 256 * 1024 for m in messages)
    decoded = [p for m in messages for p in decode(m.body)]
    assert [p.embedding for p in decoded] == [p.embedding for p in items]


def test_a_prediction_1_item_is_still_read_as_a_prediction_without_embedding() -> None:
    # given: what an older inference module sends
    old = prediction(3).to_wire() | {"schema": "edgeloop.prediction/1"}
    # when
    (item,) = decode(json.dumps(old))
    # then
    assert isinstance(item, Prediction)
    assert item.embedding is None
    assert item.sample_id == "s000003"


def test_model_metadata_names_the_embedding_output() -> None:
    # given
    props = metadata_props(labels=["a", "b"], embedding="embedding")
    # when
    meta = metadata_from_map(props)
    # then
    assert props[EMBEDDING_KEY] == "embedding"
    assert meta.embedding == "embedding"
    assert EMBEDDING_KEY not in meta.extra
    assert metadata_from_map({}).embedding is None


def test_an_empty_embedding_name_is_refused_with_the_key() -> None:
    with pytest.raises(ModelMetadataError, match=r"edgeloop\.embedding is empty"):
        metadata_from_map({EMBEDDING_KEY: " "})
