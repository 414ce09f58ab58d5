"""Near-duplicate suppression by the 64-bit dHash capture computes, per source."""

from __future__ import annotations

from collections import deque
from typing import Any

from edgeloop_filter.policy import Dedup


class DedupMemory:
    """The hashes selected recently, per source, with the wall time they were selected."""

    def __init__(self) -> None:
        self.recent: dict[str, deque[tuple[int, float]]] = {}

    def duplicate_of(self, config: Dedup, source: str, dhash: int, wall: float) -> int | None:
        """The Hamming distance to a recent selection within ``max_distance``, else None.
        Newest first, stopping at the first entry older than the window; an entry stamped
        later than ``wall`` (the clock was set back) counts as recent."""
        entries = self.recent.get(source)
        if not entries:
            return None
        oldest = wall - config.window_seconds
        most = config.max_distance
        for other, at in reversed(entries):  # newest first; stop at the first too old
            if at < oldest:
                break
            distance = (dhash ^ other).bit_count()
            if distance <= most:
                return distance
        return None

    def remember(self, config: Dedup, source: str, dhash: int, wall: float) -> None:
        entries = self.recent.get(source)
        if entries is None or entries.maxlen != config.per_source:
            entries = self.recent[source] = deque(entries or (), maxlen=config.per_source)
        entries.append((dhash, wall))

    def snapshot(self) -> dict[str, Any]:
        return {src: [[f"{h:016x}", at] for h, at in entries] for src, entries in self.recent.items()}

    @classmethod
    def restore(cls, doc: dict[str, Any], config: Dedup) -> DedupMemory:
        memory = cls()
        for source, entries in doc.items():
            memory.recent[source] = deque(
                ((int(h, 16), float(at)) for h, at in entries), maxlen=config.per_source
            )
        return memory
