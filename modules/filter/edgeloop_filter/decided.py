"""The sample ids the filter decided most recently, so a prediction delivered again is not
decided (and counted, and budgeted) twice.

The hub delivers inputs at least once: a filter killed before its decisions were saved gets
those predictions again, and so does one whose inference module was killed after sending
predictions but before acknowledging the frames (it scores them again). Only the latest
``limit`` ids are kept, oldest forgotten first; they are saved with the filter's state.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class RecentIds:
    """An insertion-ordered set of at most ``limit`` sample ids (0: remembers nothing)."""

    def __init__(self, limit: int, ids: Iterable[str] = ()) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self.limit = limit
        for sample_id in ids:
            self.add(sample_id)

    def __contains__(self, sample_id: object) -> bool:
        return sample_id in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, sample_id: str) -> None:
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

    def snapshot(self) -> list[str]:
        """Oldest first, as ``RecentIds(limit, ids)`` takes them back."""
        return list(self._ids)
