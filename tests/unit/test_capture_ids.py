"""Sample ids: the ULID layout (48-bit milliseconds, then 80 random bits, Crockford base32),
sorted by capture time also within one millisecond."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edgeloop_capture.ids import SampleIds, id_time

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
AT = datetime(2026, 1, 5, 12, 0, 8, 200000, tzinfo=UTC)


def ulid(ms: int, rand: int) -> str:
    """The id spelled out one character at a time: 10 of the milliseconds, 16 of the 80 bits."""
    head = "".join(ALPHABET[(ms >> (5 * i)) & 31] for i in reversed(range(10)))
    tail = "".join(ALPHABET[(rand >> (5 * i)) & 31] for i in reversed(range(16)))
    return head + tail


def test_an_id_is_the_milliseconds_then_the_random_bits() -> None:
    # given: random bytes chosen so every character position is exercised
    random = bytes((0x8F + 0x11 * i) % 256 for i in range(10))
    ids = SampleIds(random_bytes=lambda n: random[:n])
    # when
    made = ids.new(AT)
    # then
    ms = int(AT.timestamp() * 1000)
    assert made == ulid(ms, int.from_bytes(random, "big") >> 1)
    assert len(made) == 26
    assert id_time(made) == AT.replace(microsecond=200000)


def test_ids_of_one_millisecond_count_up_and_later_ones_sort_after() -> None:
    ids = SampleIds(random_bytes=lambda n: b"\xff" * n)
    first, second = ids.new(AT), ids.new(AT)
    later = ids.new(AT + timedelta(milliseconds=1))
    top = (1 << 79) - 1
    ms = int(AT.timestamp() * 1000)
    assert (first, second) == (ulid(ms, top), ulid(ms, top + 1))
    assert first < second < later
    assert id_time(later) - id_time(first) == timedelta(milliseconds=1)
