"""A bounded memory of the ids seen most recently, to recognise what the hub delivers again.

The hub delivers inputs at least once, so a module meets the same thing twice: the runtime keeps
the input message ids it handled (a copy of a message is dropped), the filter the sample ids it
decided (a prediction delivered again after a restart, or scored twice by a restarted inference
module, is not decided, counted and budgeted twice; saved with its state). Only the latest
``limit`` ids are kept, oldest forgotten first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


class RecentIds(Generic[K]):
    """An insertion-ordered set of at most ``limit`` ids (0: remembers nothing)."""

    def __init__(self, limit: int, ids: Iterable[K] = ()) -> None:
        self._ids: OrderedDict[K, None] = OrderedDict()
        self.limit = limit
        for sample_id in ids:
            self.add(sample_id)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, sample_id: K) -> None:
        if self.limit <= 0:
            return
        self._ids[sample_id] = None
        self._ids.move_to_end(sample_id)
        while len(self._ids) > self.limit:
            self._ids.popitem(last=False)

    def resize(self, limit: int) -> None:
        """Keep the newest ``limit`` ids from now on."""
        self.limit = limit
        while len(self._ids) > max(limit, 0):
            self._ids.popitem(last=False)

    def snapshot(self) -> list[K]:
        """Oldest first, as ``RecentIds(limit, ids)`` takes them back."""
        return list(self._ids)
