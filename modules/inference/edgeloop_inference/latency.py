"""Latency percentiles over a sliding window of recent observations."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class LatencyWindow:
    """The last ``size`` observations (milliseconds); thread-safe."""

    def __init__(self, size: int = 4096) -> None:
        self._values: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.count = 0

    def add(self, ms: float, times: int = 1) -> None:
        with self._lock:
            self._values.extend([ms] * times)
            self.count += times

    def add_many(self, values: list[float]) -> None:
        """Several observations under one lock."""
        with self._lock:
            self._values.extend(values)
            self.count += len(values)

    def summary(self) -> dict[str, float | int | None]:
        with self._lock:
            values = np.fromiter(self._values, dtype=np.float64)
        if values.size == 0:
            return {"count": self.count, "p50": None, "p90": None, "p99": None, "max": None}
        p50, p90, p99 = np.percentile(values, [50, 90, 99])
        return {
            "count": self.count,
            "p50": round(float(p50), 3),
            "p90": round(float(p90), 3),
            "p99": round(float(p99), 3),
            "max": round(float(values.max()), 3),
        }
