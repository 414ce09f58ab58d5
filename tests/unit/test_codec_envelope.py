"""Batch envelopes on the way in: all items validated at once, and one bad item left out with
its reason while its batch mates are kept."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from edgeloop.contracts import FrameRef
from edgeloop.errors import ContractError
from edgeloop.runtime.codec import decode, decode_each, encode


def captured(i: int) -> FrameRef:
    """A frame reference with the fields capture sends."""
    return FrameRef(
        sample_id=f"s{i:03d}",
        source_id="cam0",
        seq=i,
        captured_at=datetime(2026, 1, 1, 12, 0, i, tzinfo=UTC),
        kind="image",
        file_ref=f"frames/cam0/s{i:03d}.jpg",
        content_type="image/jpeg",
        width=640,
        height=480,
        bytes=51_234 + i,
        sha256=f"{i:064x}",
        dhash=f"{i:016x}",
        attributes={"file": f"s{i:03d}.jpg", "frame_index": str(i)},
        traceparent=f"00-{i + 1:032x}-{i + 1:016x}-01",
    )


def envelope(items: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps(
        {"schema": "edgeloop.batch/1", "item_schema": "edgeloop.frame/1", "items": items, **extra}
    ).encode()


def test_an_envelope_decodes_to_the_frames_each_validated_alone_would_give() -> None:
    frames = [captured(i) for i in range(8)]
    [message] = encode("frames", frames, max_batch=8)
    items, problems = decode_each(message.body)
    assert problems == []
    assert items == frames
    assert all(type(item) is FrameRef for item in items)
    wire = json.loads(message.body)["items"]
    alone = [FrameRef.model_validate({k: v for k, v in raw.items() if k != "schema"}) for raw in wire]
    assert items == alone


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("sha256", "not-a-hash", "edgeloop.frame/1 item 's003': sha256: String should match pattern"),
        (
            "file_ref",
            "../etc/passwd",
            "edgeloop.frame/1 item 's003': file_ref: Value error, file_ref '../etc/passwd'",
        ),
        ("width", 0, "edgeloop.frame/1 item 's003': width: Input should be greater than or equal to 1"),
        ("unexpected", 1, "edgeloop.frame/1 item 's003': unexpected: Extra inputs are not permitted"),
    ],
)
def test_one_bad_item_is_left_out_with_its_reason_and_its_mates_kept(
    field: str, value: Any, reason: str
) -> None:
    frames = [captured(i) for i in range(8)]
    wire = [f.to_wire() for f in frames]
    wire[3][field] = value
    items, problems = decode_each(envelope(wire))
    assert items == frames[:3] + frames[4:]
    assert len(problems) == 1
    assert problems[0].startswith(reason)
    with pytest.raises(ContractError, match="item 's003'"):
        decode(envelope(wire))


def test_a_missing_field_names_the_item_and_the_field() -> None:
    wire = [captured(i).to_wire() for i in range(3)]
    del wire[0]["captured_at"]
    items, problems = decode_each(envelope(wire))
    assert [item.key for item in items] == ["s001", "s002"]
    assert problems == ["edgeloop.frame/1 item 's000': captured_at: Field required"]


def test_items_of_an_unknown_schema_are_each_refused() -> None:
    body = json.dumps(
        {
            "schema": "edgeloop.batch/1",
            "item_schema": "edgeloop.frame/9",
            "items": [captured(0).to_wire()] * 2,
        }
    ).encode()
    items, problems = decode_each(body)
    assert items == []
    assert problems == ["unknown message schema 'edgeloop.frame/9'"] * 2


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (envelope([], extra=1), "bad batch envelope: extra: Extra inputs are not permitted"),
        (
            envelope([captured(0).to_wire(), 3]),
            "bad batch envelope: items.1: Input should be a valid dictionary",
        ),
        (b'{"schema": "edgeloop.batch/1", "items": []}', "bad batch envelope: item_schema: Field required"),
        (b'{"schema": "edgeloop.batch/1", "item_schema": 5, "items": []}', "bad batch envelope: item_schema"),
    ],
)
def test_a_bad_envelope_is_refused_whole_with_what_was_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(ContractError) as caught:
        decode_each(body)
    assert str(caught.value).startswith(reason)


def test_an_empty_envelope_holds_nothing() -> None:
    assert decode_each(envelope([])) == ([], [])
