"""The byte-budgeted ring of raw frames on the memory-backed path.

Raw frames are large (640x480 BGR is 900 KiB) and live in memory, so their budget is kept at
every write, not only when the janitor runs: once the frames written exceed ``max_bytes``, the
oldest are deleted first. A frame already claimed (renamed ``<name>.claimed`` by the uploader)
is released then (the memory is bounded even between janitor runs); one hard-linked or already
gone is only forgotten. A frame deleted before
anyone claimed it is an eviction, counted and remembered by sample id (``evictedUnclaimed``),
so a reader that finds it missing can be matched to the reason.

The frames an earlier life of the module left are taken in at start (``adopt``), oldest first.
The janitor still runs over the same folder: it applies the TTL, releases claimed frames and
removes temp files a dead writer left.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeloop import rawframe
from edgeloop_capture import observe
from edgeloop_capture.writer import WrittenFile

log = logging.getLogger(__name__)

#: How many evicted sample ids the stats keep (the count covers every one).
RECENT_IDS = 64


@dataclass(frozen=True)
class _Entry:
    sample_id: str
    path: str
    size: int


class RawRing:
    """Thread-safe: the pipeline stages of every source add to it."""

    def __init__(self, *, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._entries: deque[_Entry] = deque()
        self._bytes = 0
        self._lock = threading.Lock()
        self.evicted = 0
        self.evicted_bytes = 0
        self.gone = 0
        self.released = 0
        self.errors = 0
        self.recent: deque[str] = deque(maxlen=RECENT_IDS)

    def configure(self, *, max_bytes: int) -> None:
        with self._lock:
            self.max_bytes = max_bytes

    def adopt(self, folder: Path) -> int:
        """Take in the raw frames an earlier life of the module left in ``folder`` (minute
        buckets, oldest first), so the budget covers them from the first write; returns how many."""
        found: list[_Entry] = []
        try:
            buckets = sorted(e.name for e in os.scandir(folder) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return 0
        for bucket in buckets:
            try:
                entries = sorted(os.scandir(folder / bucket), key=lambda e: e.name)
            except FileNotFoundError:
                continue
            for entry in entries:
                if not entry.name.endswith("." + rawframe.SUFFIX):
                    continue
                with contextlib.suppress(FileNotFoundError):
                    size = entry.stat(follow_symlinks=False).st_size
                    found.append(_Entry(entry.name.split(".", 1)[0], entry.path, size))
        with self._lock:
            self._entries.extendleft(reversed(found))
            self._bytes += sum(e.size for e in found)
        return len(found)

    def add(self, written: WrittenFile, *, sample_id: str) -> list[str]:
        """Record a frame just written; evict the oldest while over budget. Returns the ids of
        the frames evicted unclaimed by this call."""
        with self._lock:
            self._entries.append(_Entry(sample_id, written.location, written.size))
            self._bytes += written.size
            evicted: list[str] = []
            # The newest frame is never evicted by its own write: it has not been announced yet.
            while self.max_bytes and self._bytes > self.max_bytes and len(self._entries) > 1:
                entry = self._entries.popleft()
                self._bytes -= entry.size
                if self._evict(entry):
                    evicted.append(entry.sample_id)
        if evicted:
            observe.record_janitor({"evicted_unclaimed": len(evicted)}, self._bytes, volume="frames")
            log.warning(
                "raw frame ring over its %d byte budget: evicted %d unclaimed frame(s): %s",
                self.max_bytes,
                len(evicted),
                ", ".join(evicted),
            )
        return evicted

    def stats(self) -> dict[str, Any]:
        with self._lock:
            return {
                "maxBytes": self.max_bytes,
                "bytes": self._bytes,
                "frames": len(self._entries),
                "evictedUnclaimed": self.evicted,
                "evictedUnclaimedBytes": self.evicted_bytes,
                "evictedUnclaimedRecent": list(self.recent),
                "goneBeforeEviction": self.gone,
                "released": self.released,
                "errors": self.errors,
            }

    def _evict(self, entry: _Entry) -> bool:
        """Delete one frame; True when it was unclaimed (an eviction)."""
        try:
            os.unlink(entry.path + rawframe.CLAIMED_SUFFIX)
            self.released += 1  # claimed (the uploader holds its encoded copy): released now
            return False
        except FileNotFoundError:
            pass
        except OSError:
            self.errors += 1
            log.warning("cannot release raw frame %s", entry.path, exc_info=True)
        try:
            links = os.stat(entry.path).st_nlink
            os.unlink(entry.path)
        except FileNotFoundError:
            self.gone += 1  # consumed by its claimer, or the janitor's TTL got it first
            return False
        except OSError:
            self.errors += 1
            log.warning("cannot evict raw frame %s", entry.path, exc_info=True)
            return False
        if links > 1:
            self.gone += 1  # claimed by a hard link: the claimer's name keeps it
            return False
        self.evicted += 1
        self.evicted_bytes += entry.size
        self.recent.append(entry.sample_id)
        return True
