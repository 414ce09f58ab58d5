"""Message encoding: single items, batches, the size limit, decoding errors."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from edgeloop.contracts import FrameRef, Summary
from edgeloop.errors import ContractError, MessageTooLargeError
from edgeloop.runtime.codec import HUB_MESSAGE_LIMIT, MAX_MESSAGE_BYTES, decode, encode


def frame(i: int, **extra: object) -> FrameRef:
    return FrameRef(
        sample_id=f"s{i}",
        source_id="cam",
        seq=i,
        captured_at=datetime(2026, 1, 1, tzinfo=UTC),
        kind="vector",
        traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        **extra,  # type: ignore[arg-type]
    )


def test_single_item_is_a_bare_object_with_schema_and_properties() -> None:
    [message] = encode("frames", [frame(1)])
    body = json.loads(message.body)
    assert body["schema"] == "edgeloop.frame/1"
    assert body["sample_id"] == "s1"
    assert message.properties["sample_id"] == "s1"
    assert message.properties["traceparent"].startswith("00-0af7")
    assert message.content_type == "application/json"
    assert message.content_encoding == "utf-8"
    assert decode(message.body) == [frame(1)]


def test_batches_respect_max_batch_and_round_trip() -> None:
    items = [frame(i) for i in range(10)]
    messages = encode("frames", items, max_batch=4)
    assert [int(m.properties["batch_size"]) for m in messages] == [4, 4, 2]
    assert [x for m in messages for x in decode(m.body)] == items


def test_batches_split_to_stay_under_the_hub_limit() -> None:
    big = [frame(i, vector=[float(i)] * 3000) for i in range(40)]
    messages = encode("frames", big, max_batch=40)
    assert len(messages) > 1
    assert all(m.size <= MAX_MESSAGE_BYTES < HUB_MESSAGE_LIMIT for m in messages)
    assert [x.key for m in messages for x in decode(m.body)] == [f.key for f in big]


def test_one_item_over_the_limit_is_a_clear_error() -> None:
    huge = frame(7, vector=[1.25] * 70_000)
    with pytest.raises(MessageTooLargeError, match=r"sample 's7' encodes to \d+ bytes"):
        encode("frames", [huge])


def test_mixed_contracts_cannot_share_a_batch() -> None:
    summary = Summary(
        sample_id="x",
        module="filter",
        window_start=datetime(2026, 1, 1, tzinfo=UTC),
        window_end=datetime(2026, 1, 1, tzinfo=UTC),
        seen=0,
    )
    with pytest.raises(ValueError, match="one batch holds one contract"):
        encode("out", [frame(1), summary])


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff", "not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"{}", "no 'schema' field"),
        (b'{"schema": "edgeloop.frame/9"}', "unknown message schema"),
        (b'{"schema": "edgeloop.frame/1", "sample_id": "a"}', "edgeloop.frame/1 item 'a'"),
        (b'{"schema": "edgeloop.batch/1", "items": 3}', "bad batch envelope"),
        (
            b'{"schema": "edgeloop.frame/1", "sample_id": "a", "source_id": "c", "seq": 0,'
            b' "captured_at": "2026-01-01T00:00:00Z", "kind": "image", "file_ref": "../etc/passwd"}',
            "relative path inside the sample volume",
        ),
    ],
)
def test_decoding_errors_name_what_was_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(ContractError, match=reason):
        decode(body)


def test_wire_bodies_are_the_json_of_to_wire() -> None:
    items = [frame(i, vector=[0.5, float(i)], attributes={"unit": "°C"}) for i in range(3)]
    [single] = encode("frames", items[:1])
    [batch] = encode("frames", items)
    assert json.loads(single.body) == items[0].to_wire()
    assert json.loads(batch.body) == {
        "schema": "edgeloop.batch/1",
        "item_schema": "edgeloop.frame/1",
        "items": [item.to_wire() for item in items],
    }
