"""What the parts of the uploader share: its folders, the outbox database, the config and public
key in force, outbox time, counters, recent refusals, the envelope cache and the wake-up event.

One ``Core`` is made by the ``Uploader`` facade and handed to intake, budget, sealing, shipping,
notices and the prediction log; none of them holds state the others need.
"""

from __future__ import annotations

import logging
import random
import threading
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeloop.clock import Clock
from edgeloop.envelope import PublicKey
from edgeloop_uploader import observe
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.outbox import IN_DATABASE, QUARANTINED, Entry, OutboxDB

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Paths:
    samples: Path
    outbox: Path

    @property
    def claims(self) -> Path:
        return self.outbox / "claims"

    @property
    def sealed(self) -> Path:
        return self.outbox / "sealed"

    @property
    def database(self) -> Path:
        return self.outbox / "outbox.db"


def remove_files(entry: Entry) -> None:
    """Delete an entry's claimed and sealed files (an envelope in the database goes with its row)."""
    for path in (entry.plain_path, entry.sealed_path):
        if path and path != IN_DATABASE:
            Path(path).unlink(missing_ok=True)


class SealedCache:
    """Recently sealed small entries kept in memory, so their upload need not read them back."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self._max and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def pop(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.pop(key, None)
            if data is not None:
                self._bytes -= len(data)
            return data


class Core:
    """The uploader's shared state; thread-safe where workers and the runtime thread meet."""

    def __init__(self, *, paths: Paths, device_id: str, clock: Clock, rng: random.Random) -> None:
        for folder in (paths.outbox, paths.claims, paths.sealed):
            folder.mkdir(parents=True, exist_ok=True)
        self.paths = paths
        self.default_device_id = device_id
        self.clock = clock
        self.rng = rng
        self.config = UploaderConfig()
        self.db = OutboxDB(str(paths.database), durability=self.config.outbox.durability)
        self.public_key: PublicKey | None = None
        self.counters: Counter[str] = Counter()
        self.recent_evictions: deque[dict[str, Any]] = deque(maxlen=20)
        self.recent_rejections: deque[dict[str, Any]] = deque(maxlen=20)
        self.sealed_cache = SealedCache()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self._count_lock = threading.Lock()
        self._rng_lock = threading.Lock()
        self._time_lock = threading.Lock()
        self._last_time: tuple[float, float] | None = None  # (outbox time, monotonic) of the last reading

    @property
    def durable(self) -> bool:
        """Whether files and records must survive a power loss (``outbox.durability: full``)."""
        return self.config.outbox.durability == "full"

    @property
    def device_id(self) -> str:
        return self.config.device_id or self.default_device_id

    def now(self) -> float:
        """Outbox time: the wall clock, except that it never runs backwards while the process
        lives. After the wall clock goes back (NTP after a cold boot, a bad RTC) it advances at
        the monotonic rate from where it was, so retry times and the oldest-first order hold."""
        with self._time_lock:
            wall, mono = self.clock.now().timestamp(), self.clock.monotonic()
            if self._last_time is not None:
                last, last_mono = self._last_time
                carried = last + max(0.0, mono - last_mono)
                if wall < carried:
                    if carried - wall > 1.0:
                        self.count("clock_went_back")
                    wall = carried
            self._last_time = (wall, mono)
            return wall

    def count(self, name: str, amount: int = 1) -> None:
        with self._count_lock:
            self.counters[name] += amount
        observe.count(name, amount)

    def counted(self) -> dict[str, int]:
        with self._count_lock:
            return dict(self.counters)

    def random(self) -> float:
        with self._rng_lock:
            return self.rng.random()

    def reject(self, sample_id: str, reason: str, category: str) -> None:
        """A sample not taken into the outbox, with the reason shown in ``getStats``."""
        self.count("rejected")
        self.count(f"rejected_{category}")
        self.recent_rejections.append(
            {"sample_id": sample_id, "reason": reason, "at": self.clock.now().isoformat()}
        )
        log.warning("sample %s not accepted: %s", sample_id, reason)

    def quarantine(self, entry: Entry, reason: str) -> None:
        """Park an entry that retrying cannot help until ``retryQuarantined``."""
        self.db.update(entry.id, state=QUARANTINED, last_error=reason, updated_at=self.now())
        self.count("quarantined")
        log.error("quarantined %s: %s", entry.id, reason)
