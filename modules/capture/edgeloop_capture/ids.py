"""Time-sortable sample ids (ULID layout: 48-bit milliseconds + 80 random bits, base32)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


#: Every two-character string of the alphabet, by the 10-bit value it stands for.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]


def _encode(value: int, length: int) -> str:
    """``value`` as ``length`` base32 characters (``length`` even), two at a time."""
    pairs = []
    for _ in range(length // 2):
        pairs.append(_PAIRS[value & 1023])
        value >>= 10
    pairs.reverse()
    return "".join(pairs)


class SampleIds:
    """Makes 26-character ids that sort by capture time, also within one millisecond."""

    def __init__(self, random_bytes: Callable[[int], bytes] = os.urandom) -> None:
        self._random_bytes = random_bytes
        self._lock = threading.Lock()
        self._last_ms = -1
        self._last_rand = 0

    def new(self, when: datetime) -> str:
        ms = int(when.timestamp() * 1000)
        with self._lock:
            if ms <= self._last_ms:
                ms, rand = self._last_ms, self._last_rand + 1
            else:
                rand = int.from_bytes(self._random_bytes(10), "big") >> 1
            self._last_ms, self._last_rand = ms, rand
        # 10 characters of milliseconds, then 16 of the 80 random bits (whole pairs of
        # characters): one pass over both
        return _encode(ms << 80 | rand, 26)


def id_time(sample_id: str) -> datetime:
    """The millisecond timestamp encoded in a sample id.

    Raises:
        ValueError: the id is not one this module made.
    """
    value = 0
    for char in sample_id[:10].upper():
        index = _ALPHABET.find(char)
        if index < 0 or len(sample_id) < 10:
            raise ValueError(f"{sample_id!r} is not a sample id")
        value = (value << 5) | index
    return datetime.fromtimestamp(value / 1000, UTC)
