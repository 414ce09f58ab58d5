"""A bounded running window of recent scores that ranks a new score against them: the
streaming quantile behind ``top_share``. Deterministic: the same scores give the same ranks."""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections import deque


class RankWindow:
    """The last ``size`` scores, kept in arrival order and sorted (O(size) per update, fine
    for windows of a few thousand)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._order: deque[float] = deque()
        self._sorted: list[float] = []

    def __len__(self) -> int:
        return len(self._sorted)

    def rank(self, score: float) -> tuple[int, int]:
        """How many scores in the window are above ``score``, and how many equal it."""
        low, high = bisect_left(self._sorted, score), bisect_right(self._sorted, score)
        return len(self._sorted) - high, high - low

    def at_rank(self, above: int) -> float:
        """The score with ``above`` scores above it (0: the highest); the window must not be empty."""
        index = min(len(self._sorted) - 1, max(0, len(self._sorted) - 1 - above))
        return self._sorted[index]

    def add(self, score: float) -> None:
        self._order.append(score)
        insort(self._sorted, score)
        if len(self._order) > self.size:
            old = self._order.popleft()
            del self._sorted[bisect_left(self._sorted, old)]

    def clear(self) -> None:
        self._order.clear()
        self._sorted.clear()
