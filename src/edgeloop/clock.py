"""Clocks: wall time (UTC, timezone-aware) and a monotonic counter, injectable for tests."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What modules use instead of ``time`` and ``datetime.now`` so tests can steer time."""

    def now(self) -> datetime:
        """The current wall time, timezone-aware UTC (may jump when the system clock is set)."""
        ...

    def monotonic(self) -> float:
        """Seconds on a counter that never goes backwards; for intervals and timeouts."""
        ...

    def sleep(self, seconds: float) -> None:
        """Block for ``seconds`` (returns at once on a fake clock after advancing it)."""
        ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(max(0.0, seconds))


class FakeClock:
    """A clock that moves only when told to; wall time can also jump backwards."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        if self._now.tzinfo is None:
            raise ValueError("FakeClock needs a timezone-aware start time")
        self._mono = 1000.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def monotonic(self) -> float:
        with self._lock:
            return self._mono

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def advance(self, seconds: float) -> None:
        """Move both wall and monotonic time forward."""
        with self._lock:
            self._now += timedelta(seconds=seconds)
            self._mono += seconds

    def set_wall(self, when: datetime) -> None:
        """Jump the wall clock (forwards or backwards) without touching monotonic time."""
        if when.tzinfo is None:
            raise ValueError("set_wall needs a timezone-aware time")
        with self._lock:
            self._now = when
