"""The outbox's disk budget: room for a new entry is made by evicting queued or quarantined
entries that rank lower (lower priority, then older); the volume's reserve is never given up."""

from __future__ import annotations

import logging
import os

from edgeloop_uploader.core import Core, remove_files
from edgeloop_uploader.outbox import EVICTED, Entry

log = logging.getLogger(__name__)


class Budget:
    """``outbox.max_bytes`` and ``outbox.min_free_bytes`` applied to each arriving entry."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._held_base: int | None = None  # outbox bytes held, as last read (see ``held``)

    def forget_held(self) -> None:
        """This thread added to the outbox (or a batch ended): read the held bytes again."""
        self._held_base = None

    def held(self, *, exact: bool, pending: int = 0) -> int:
        """Bytes the outbox holds, with ``pending`` bytes waiting for their batch's commit.
        Unless ``exact``, the last reading is reused: only uploads (which shrink the outbox) run
        beside the runtime thread that accepts, so it stays an upper bound until this thread
        inserts (and calls ``forget_held``)."""
        if exact or self._held_base is None:
            self._held_base = self.core.db.held_bytes()
        return self._held_base + pending

    def make_room(
        self,
        size: int,
        priority: int,
        created: float,
        new_id: str,
        *,
        pending: int = 0,
        reuse_held: bool = False,
    ) -> bool:
        """Whether an entry of ``size`` bytes fits, after evicting what ranks lower if needed.
        ``pending``: bytes of a batch not committed yet; ``reuse_held``: within a batch, the
        held bytes may be the last reading. A refusal is counted (an eviction on arrival, or a
        rejection for a full disk)."""
        core = self.core
        if not self._room_on_disk(size + pending, new_id):
            return False
        budget = core.config.outbox.max_bytes
        held = self.held(exact=not reuse_held, pending=pending)
        if held + size <= budget:
            return True
        held = self.held(exact=True, pending=pending)  # uploads may have made room since
        if held + size <= budget:
            return True
        if size <= budget:
            for victim in core.db.eviction_candidates():
                if (victim.priority, victim.created_at) > (priority, created):
                    break
                self.evict(victim, f"disk budget {budget} bytes: made room for {new_id}")
                held -= victim.size
                if held + size <= budget:
                    return True
        core.count("evicted")
        core.count("evicted_bytes", size)
        reason = f"disk budget {budget} bytes: no queued entry ranks lower (priority {priority})"
        core.recent_evictions.append(
            {"id": new_id, "reason": reason, "bytes": size, "at": core.clock.now().isoformat()}
        )
        log.warning("evicted %s on arrival: %s", new_id, reason)
        return False

    def _room_on_disk(self, size: int, new_id: str) -> bool:
        """Refuse a sample the outbox's volume cannot hold while keeping its reserve free: the
        database needs room to record uploads, or a disk filled by the outbox would never drain.
        The reserve is ``outbox.min_free_bytes``, at most a tenth of the volume."""
        core = self.core
        try:
            volume = os.statvfs(core.paths.outbox)
        except OSError:
            return True  # nothing to go by: the writes themselves will tell
        free = volume.f_bavail * volume.f_frsize
        reserve = min(core.config.outbox.min_free_bytes, volume.f_blocks * volume.f_frsize // 10)
        if free - size >= reserve:
            return True
        free += core.db.reusable_bytes()  # asked only when the volume alone is short: two queries
        if free - size >= reserve:
            return True
        reason = (
            f"the outbox disk is full: {free} bytes free (with the database's free pages), "
            f"{size} needed, and outbox.min_free_bytes keeps {reserve} free for the outbox's own records"
        )
        core.reject(new_id, reason, "disk_full")
        return False

    def evict(self, entry: Entry, reason: str) -> None:
        core = self.core
        if not core.db.finish(entry.id, state=EVICTED, now=core.now(), reason=reason):
            return
        core.sealed_cache.pop(entry.id)
        remove_files(entry)
        core.count("evicted")
        core.count("evicted_bytes", entry.size)
        core.recent_evictions.append(
            {"id": entry.id, "reason": reason, "bytes": entry.size, "priority": entry.priority,
             "at": core.clock.now().isoformat()}
        )  # fmt: skip
        log.warning("evicted %s (%s bytes, priority %s): %s", entry.id, entry.size, entry.priority, reason)
