"""Storage hygiene for capture's files on the shared volume.

Downstream modules claim a sample by moving it away (it is gone), hard-linking it (its link
count is above one) or, for a raw frame, renaming it to ``<name>.claimed`` in place. The
janitor removes capture's own name of claimed samples ("released", nothing is lost), deletes
unclaimed samples older than the TTL, and keeps the unclaimed rest under the byte budget by
deleting the oldest first. Every deletion of an unclaimed sample is a drop, counted by reason
(``ttl``, ``budget``) and logged.

The minute buckets (see ``writer``) sort by time, so walking them in name order is walking
the samples oldest first; a bucket whose directory has not changed since the last run is not
listed again.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import Counter, deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edgeloop.clock import Clock
from edgeloop.rawframe import CLAIMED_SUFFIX
from edgeloop_capture import observe
from edgeloop_capture.ids import id_time
from edgeloop_capture.writer import BUCKET_FORMAT, CAPTURE_DIR, INCOMING_DIR

log = logging.getLogger(__name__)

#: A wall clock ahead of the monotonic clock's account by more than this has jumped forward.
JUMP_SLACK_S = 60.0
#: How many ids of samples dropped unclaimed the stats keep (the counts cover every one).
RECENT_IDS = 64


@dataclass(frozen=True)
class _File:
    name: str
    size: int
    links: int


@dataclass
class _Bucket:
    mtime_ns: int
    files: list[_File]


@dataclass(frozen=True)
class JanitorResult:
    dropped: dict[str, int]
    released: int
    stale_temp: int
    files: int
    bytes: int


class Janitor:
    def __init__(
        self,
        root: Path,
        *,
        clock: Clock,
        ttl_s: float,
        max_bytes: int,
        stale_temp_s: float,
        subdir: str = CAPTURE_DIR,
        volume: str = "samples",
    ) -> None:
        self.base = root / subdir
        self.volume = volume
        self.recent_dropped: deque[str] = deque(maxlen=RECENT_IDS)
        self.clock = clock
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.stale_temp_s = stale_temp_s
        self._cache: dict[str, _Bucket] = {}
        self._touched: set[str] = set()
        self.dropped: Counter[str] = Counter()
        self.dropped_bytes = 0
        self.released = 0
        self.stale_temp = 0
        self.runs = 0
        self.errors = 0
        self.last_run: datetime | None = None
        self.files = 0
        self.bytes = 0
        self.clock_jumps = 0
        self._anchor: tuple[datetime, float] | None = None  # (TTL time, monotonic) at the last run
        self._jumped_at: float | None = None  # monotonic time a forward jump was seen

    def _ttl_now(self) -> datetime:
        """The time TTLs are judged by: the wall clock, except after it jumps forward. Then time
        runs on from the last run at the monotonic rate until every sample has had its TTL in
        real time, so a jump of a day does not expire every fresh sample at once. (A backward
        jump only keeps samples longer; the byte budget still bounds them.)"""
        wall, mono = self.clock.now(), self.clock.monotonic()
        now = wall
        if self._anchor is not None:
            last, last_mono = self._anchor
            carried = last + timedelta(seconds=max(0.0, mono - last_mono))
            if (wall - carried).total_seconds() > JUMP_SLACK_S:
                if self._jumped_at is None:
                    self._jumped_at = mono
                    self.clock_jumps += 1
                    log.warning("wall clock jumped %s ahead; sample ages follow real time", wall - carried)
                if mono - self._jumped_at < self.ttl_s:
                    now = carried
                else:
                    self._jumped_at = None
            else:
                self._jumped_at = None
        self._anchor = (now, mono)
        return now

    def configure(self, *, ttl_s: float, max_bytes: int, stale_temp_s: float) -> None:
        self.ttl_s, self.max_bytes, self.stale_temp_s = ttl_s, max_bytes, stale_temp_s

    def run_once(self) -> JanitorResult:
        """One pass: release claimed, drop expired, then drop oldest while over budget."""
        now = self.clock.now()
        cutoff = self._ttl_now() - timedelta(seconds=self.ttl_s)
        buckets = self._scan()
        dropped: Counter[str] = Counter()
        released = 0
        kept: list[tuple[str, _File]] = []
        for name, bucket in buckets:
            bucket_end = _bucket_start(name) + timedelta(minutes=1)
            for f in bucket.files:
                if f.links > 1 or f.name.endswith(CLAIMED_SUFFIX):
                    released += self._delete(name, f, None)
                elif bucket_end <= cutoff or (
                    _bucket_start(name) <= cutoff and self._time(name, f) <= cutoff
                ):
                    dropped["ttl"] += self._delete(name, f, "ttl")
                else:
                    kept.append((name, f))
        total = sum(f.size for _, f in kept)
        index = 0
        while self.max_bytes and total > self.max_bytes and index < len(kept):
            name, f = kept[index]
            dropped["budget"] += self._delete(name, f, "budget")
            total -= f.size
            index += 1
        self._tidy(buckets, now)
        stale = self._clean_incoming(now)
        self.runs += 1
        self.last_run = now
        self.released += released
        self.stale_temp += stale
        self.files = len(kept) - index
        self.bytes = total
        counts = {reason: n for reason, n in dropped.items() if n}
        observe.record_janitor(counts, self.bytes, volume=self.volume)
        if counts:
            log.warning("janitor dropped unclaimed samples: %s", counts)
        return JanitorResult(counts, released, stale, self.files, self.bytes)

    def stats(self) -> dict[str, Any]:
        return {
            "dropped": dict(self.dropped),
            "droppedBytes": self.dropped_bytes,
            "droppedRecent": list(self.recent_dropped),
            "released": self.released,
            "staleTemp": self.stale_temp,
            "files": self.files,
            "bytes": self.bytes,
            "runs": self.runs,
            "errors": self.errors,
            "clockJumps": self.clock_jumps,
            "lastRun": self.last_run.isoformat() if self.last_run else None,
        }

    # -- internals -------------------------------------------------------------------------
    def _scan(self) -> list[tuple[str, _Bucket]]:
        try:
            names = sorted(e.name for e in os.scandir(self.base) if e.is_dir() and not e.name.startswith("."))
        except FileNotFoundError:
            return []
        result = []
        for name in names:
            if not _is_bucket(name):
                continue
            try:
                mtime_ns = os.stat(self.base / name).st_mtime_ns
            except FileNotFoundError:
                continue
            cached = self._cache.get(name)
            if cached is None or cached.mtime_ns != mtime_ns:
                cached = _Bucket(mtime_ns, self._list(self.base / name))
                self._cache[name] = cached
            result.append((name, cached))
        for gone in set(self._cache) - set(names):
            del self._cache[gone]
        return result

    @staticmethod
    def _list(folder: Path) -> list[_File]:
        files = []
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            files.append(_File(entry.name, st.st_size, st.st_nlink))
        return sorted(files, key=lambda f: f.name)

    def _time(self, bucket: str, f: _File) -> datetime:
        """Capture time of a file: from its sample id, else its modification time."""
        try:
            return id_time(f.name.split(".", 1)[0])
        except ValueError:
            pass
        try:
            return datetime.fromtimestamp(os.stat(self.base / bucket / f.name).st_mtime, UTC)
        except FileNotFoundError:
            return datetime.max.replace(tzinfo=UTC)

    def _delete(self, bucket: str, f: _File, reason: str | None) -> int:
        """Delete one file; 1 when it was deleted as ``reason``, 0 when already claimed."""
        path = self.base / bucket / f.name
        self._touched.add(bucket)
        try:
            links = os.stat(path).st_nlink
            os.unlink(path)
        except FileNotFoundError:
            return 0  # moved away by its claimer since the scan
        except OSError:
            self.errors += 1
            log.warning("janitor cannot delete %s", path, exc_info=True)
            return 0
        if reason is None:
            return 1
        if links > 1:
            self.released += 1  # hard-linked by a claimer since the scan: nothing lost
            return 0
        self.dropped[reason] += 1
        self.dropped_bytes += f.size
        self.recent_dropped.append(f.name.split(".", 1)[0])
        return 1

    def _tidy(self, buckets: list[tuple[str, _Bucket]], now: datetime) -> None:
        """Remove empty buckets of past minutes; forget listings the deletions changed."""
        current = now.strftime(BUCKET_FORMAT)
        for name, bucket in buckets:
            touched = name in self._touched
            if touched:
                self._cache.pop(name, None)
            if name < current and (touched or not bucket.files):
                with contextlib.suppress(OSError):  # not empty, or gone
                    os.rmdir(self.base / name)
        self._touched.clear()

    def _clean_incoming(self, now: datetime) -> int:
        removed = 0
        limit = now.timestamp() - self.stale_temp_s
        try:
            entries = list(os.scandir(self.base / INCOMING_DIR))
        except FileNotFoundError:
            return 0
        for entry in entries:
            try:
                if entry.stat().st_mtime < limit:
                    os.unlink(entry.path)
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


def _is_bucket(name: str) -> bool:
    try:
        datetime.strptime(name, BUCKET_FORMAT)
    except ValueError:
        return False
    return True


def _bucket_start(name: str) -> datetime:
    return datetime.strptime(name, BUCKET_FORMAT).replace(tzinfo=UTC)
