"""Moving averages of how often work arrives and how long it takes: what a batching stage reads
to decide whether waiting for more pays (capture's sender, inference's batcher)."""

from __future__ import annotations

import time

#: Weight of the newest sample in a moving average.
SMOOTHING = 0.25
#: Longest gap between arrivals counted (an idle spell weighs no more than this).
GAP_CAP_S = 1.0


class MovingAverage:
    """An exponentially weighted moving average; ``value`` is None until the first sample."""

    def __init__(self, smoothing: float = SMOOTHING) -> None:
        self.smoothing = smoothing
        self.value: float | None = None

    def add(self, sample: float) -> None:
        old = self.value
        self.value = sample if old is None else old + self.smoothing * (sample - old)


class ArrivalGap:
    """The moving average of the time between arrivals (``monotonic`` seconds), each gap counted
    at most ``cap_s``; ``value`` is None until two arrivals were seen. Not thread-safe: callers
    hold their own lock."""

    def __init__(self, *, smoothing: float = SMOOTHING, cap_s: float = GAP_CAP_S) -> None:
        self.cap_s = cap_s
        self._average = MovingAverage(smoothing)
        self._last: float | None = None

    @property
    def value(self) -> float | None:
        return self._average.value

    def arrived(self) -> None:
        now = time.monotonic()
        if self._last is not None:
            self._average.add(min(now - self._last, self.cap_s))
        self._last = now
