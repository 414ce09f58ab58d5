"""The durable outbox: one SQLite database (WAL) recording every entry the uploader accepted.

States::

    queued ──▶ uploading ──▶ done
       ▲  ◀───────┘   └────▶ quarantined (after max attempts, or at once for a broken entry)
       └──────────────────────────┘ retryQuarantined
    queued/quarantined ──▶ evicted (the disk budget)

An entry is a sample (or a prediction-log batch): its claimed plaintext file until sealed, then
its sealed file. ``uploading`` entries found at start were cut off by a crash and go back to
``queued``: the create-only blob write makes the retry safe.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

QUEUED, UPLOADING, DONE, QUARANTINED, EVICTED = "queued", "uploading", "done", "quarantined", "evicted"
#: ``sealed_path`` of an entry whose envelope is kept in the database (table ``sealed_data``).
IN_DATABASE = ":outbox.db:"
STATES = (QUEUED, UPLOADING, DONE, QUARANTINED, EVICTED)
#: A checkpoint (the log copied into the database) once about this much went to the log...
_CHECKPOINT_BYTES = 1024 * 1024
#: ... or this long after the last one, whichever comes first.
_CHECKPOINT_S = 1.0
#: What a transaction writes to the log beside the payload it declares: a page or so.
_PAGE = 4096

log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    blob_name TEXT NOT NULL,
    sidecar_name TEXT,
    content_type TEXT NOT NULL,
    plain_path TEXT,
    sealed_path TEXT,
    size INTEGER NOT NULL,
    key_id TEXT,
    plaintext_sha256 TEXT,
    ciphertext_sha256 TEXT,
    info TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL NOT NULL DEFAULT 0,
    last_error TEXT,
    notified INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS entries_state ON entries (state, priority DESC, created_at);
-- Uploaded entries whose notice is not sent yet: a handful, among a week of done records.
CREATE INDEX IF NOT EXISTS entries_unnotified ON entries (updated_at) WHERE state = 'done' AND notified = 0;
CREATE TABLE IF NOT EXISTS sealed_data (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS predlog_pending (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    hour TEXT NOT NULL,
    sample_id TEXT NOT NULL,
    added_at REAL NOT NULL,
    line TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class Entry:
    id: str
    kind: str
    state: str
    priority: int
    created_at: float
    updated_at: float
    blob_name: str
    sidecar_name: str | None
    content_type: str
    plain_path: str | None
    sealed_path: str | None
    size: int
    key_id: str | None
    plaintext_sha256: str | None
    ciphertext_sha256: str | None
    info: dict[str, Any]
    attempts: int
    next_attempt_at: float
    last_error: str | None
    notified: bool

    @classmethod
    def from_row(cls, row: sqlite3.Row, **changes: Any) -> Entry:
        """The entry a row holds, with ``changes`` to its columns (a state just set)."""
        fields = {**dict(row), **changes}
        fields["info"] = json.loads(fields["info"])
        fields["notified"] = bool(fields["notified"])
        return cls(**fields)

    @property
    def sealed(self) -> bool:
        return self.sealed_path is not None


@dataclass(frozen=True)
class DoneRecord:
    """What an ``uploaded`` notice says of an entry recorded done (its columns only, the
    entry's ``info`` document is not parsed for them)."""

    id: str
    blob_name: str
    size: int
    plaintext_sha256: str | None
    key_id: str | None
    strategy: str | None
    traceparent: str | None
    updated_at: float


class OutboxDB:
    """Thread-safe access to the outbox tables (one connection behind a lock)."""

    def __init__(self, path: str, *, durability: str = "full") -> None:
        self.path = path
        self._lock = threading.RLock()
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        # No checkpoint inside a commit: they run on their own connection after the commit, so
        # the lock every upload worker needs is not held while a megabyte of envelopes is
        # copied and synced (``_after_write``). The WAL is cut back to 4 MB after one.
        self._conn.execute("PRAGMA wal_autocheckpoint=0")
        self._conn.execute("PRAGMA journal_size_limit=4194304")
        # Freed pages are not zeroed when that costs extra writes: the envelopes stored here
        # are ciphertext, and zeroing each one's overflow pages on delete wrote every uploaded
        # envelope to the log a second time (SQLite builds often default to ON).
        self._conn.execute("PRAGMA secure_delete=FAST")
        # Commits do not wait for the disk; a durable one syncs the log after the lock is let go.
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._checkpointer = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._checkpointer.execute("PRAGMA journal_size_limit=4194304")
        self._checkpointer.execute("PRAGMA synchronous=NORMAL")
        self._checkpoint_lock = threading.Lock()
        self._unchecked_bytes = 0  # written to the log since the last checkpoint (an estimate)
        self._checkpoint_at = time.monotonic()
        self._full = durability == "full"

    def set_durability(self, durability: str) -> None:
        self._full = durability == "full"

    def close(self) -> None:
        with self._lock, self._checkpoint_lock:
            self._checkpointer.close()
            self._conn.close()

    @contextmanager
    def transaction(self, *, durable: bool = False, size: int = 0) -> Iterator[sqlite3.Connection]:
        """One transaction (``size``: about how many bytes it writes, beside its rows).

        ``durable`` ones (accepting an entry) are on the disk when this returns if the outbox is
        configured ``full``: the log is synced once the transaction is committed and the lock
        let go, so other threads' transactions go on meanwhile, and a crash before the sync
        leaves a commit that the caller has not yet been told of. The others (uploading, done,
        notified, evicted) need not: losing them to a power loss only repeats an idempotent
        step, and the next durable sync makes them durable too (WAL order).

        Raises:
            OSError: the log could not be synced (the transaction is committed, maybe not on disk).
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
        if durable and self._full:
            self._sync_log()
        self._after_write(size + _PAGE)

    def _sync_log(self) -> None:
        """fsync the WAL: every transaction committed before is then on the disk. A checkpoint
        syncs the log before it copies it into the database, so a transaction that a checkpoint
        took out of the log in between is on the disk too."""
        fd = os.open(f"{self.path}-wal", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _after_write(self, size: int) -> None:
        """Checkpoint once about a megabyte went to the log, or a second after the last one,
        on the checkpointer's connection (a passive checkpoint never blocks a transaction); a
        thread that finds another one checkpointing leaves it to it."""
        self._unchecked_bytes += size
        now = time.monotonic()
        if self._unchecked_bytes < _CHECKPOINT_BYTES and now - self._checkpoint_at < _CHECKPOINT_S:
            return
        if not self._checkpoint_lock.acquire(blocking=False):
            return
        try:
            self._unchecked_bytes, self._checkpoint_at = 0, now
            self._checkpointer.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:  # a full disk: the log keeps it, the next one tries again
            log.warning("outbox checkpoint failed: %s", exc)
        finally:
            self._checkpoint_lock.release()

    def _one(self, sql: str, *args: Any) -> sqlite3.Row | None:
        with self._lock:
            row: sqlite3.Row | None = self._conn.execute(sql, args).fetchone()
            return row

    def _all(self, sql: str, *args: Any) -> list[sqlite3.Row]:
        with self._lock:
            return list(self._conn.execute(sql, args).fetchall())

    # -- entries ---------------------------------------------------------------------------
    def get(self, entry_id: str) -> Entry | None:
        row = self._one("SELECT * FROM entries WHERE id = ?", entry_id)
        return Entry.from_row(row) if row else None

    def existing_ids(self, ids: list[str]) -> set[str]:
        """Those of ``ids`` that the outbox holds an entry for, in any state."""
        found: set[str] = set()
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            marks = ", ".join("?" for _ in part)
            found.update(str(r[0]) for r in self._all(f"SELECT id FROM entries WHERE id IN ({marks})", *part))
        return found

    def insert(self, conn: sqlite3.Connection, **fields: Any) -> None:
        fields["info"] = json.dumps(fields.get("info", {}), separators=(",", ":"))
        columns = ", ".join(fields)
        marks = ", ".join("?" for _ in fields)
        conn.execute(f"INSERT INTO entries ({columns}) VALUES ({marks})", tuple(fields.values()))

    def insert_all(self, conn: sqlite3.Connection, rows: list[dict[str, Any]]) -> None:
        """``insert`` each of ``rows`` in order, one statement for each run of rows with the same
        columns (a message's samples: one)."""
        start = 0
        while start < len(rows):
            columns = tuple(rows[start])
            end = start + 1
            while end < len(rows) and tuple(rows[end]) == columns:
                end += 1
            values = [
                tuple(
                    json.dumps(row.get("info", {}), separators=(",", ":")) if name == "info" else row[name]
                    for name in columns
                )
                for row in rows[start:end]
            ]
            if "info" not in columns:  # as ``insert``: an entry without info gets an empty one
                columns += ("info",)
                values = [(*v, "{}") for v in values]
            marks = ", ".join("?" for _ in columns)
            conn.executemany(f"INSERT INTO entries ({', '.join(columns)}) VALUES ({marks})", values)
            start = end

    def update_in(self, conn: sqlite3.Connection, entry_id: str, **fields: Any) -> None:
        """``update`` inside a transaction the caller holds."""
        if "info" in fields:
            fields["info"] = json.dumps(fields["info"], separators=(",", ":"))
        sets = ", ".join(f"{name} = ?" for name in fields)
        conn.execute(f"UPDATE entries SET {sets} WHERE id = ?", (*fields.values(), entry_id))

    def update(self, entry_id: str, *, expect_state: str | None = None, **fields: Any) -> bool:
        """Set ``fields``; with ``expect_state`` only if the entry is still in that state."""
        if "info" in fields:
            fields["info"] = json.dumps(fields["info"], separators=(",", ":"))
        sets = ", ".join(f"{name} = ?" for name in fields)
        sql = f"UPDATE entries SET {sets} WHERE id = ?"
        args: list[Any] = [*fields.values(), entry_id]
        if expect_state is not None:
            sql += " AND state = ?"
            args.append(expect_state)
        with self._lock:
            changed = self._conn.execute(sql, args).rowcount == 1
        self._after_write(_PAGE)
        return changed

    def claim_next(self, now: float) -> Entry | None:
        """Move the most urgent ready entry (highest priority, then oldest) to ``uploading``."""
        claimed = self.claim_ready(now, limit=1)
        return claimed[0] if claimed else None

    def claim_ready(self, now: float, *, limit: int, share: int = 1) -> list[Entry]:
        """Move up to ``limit`` of the most urgent ready entries to ``uploading``, in one
        transaction. ``share`` workers take from the queue: while fewer than ``2 * limit * share``
        entries are ready, one takes half its share of them (a single worker: all, up to
        ``limit``), so batches shrink as the queue runs out and the workers finish together
        instead of one idling while another works through a full batch."""
        parts = 1 if share <= 1 else 2 * share
        with self.transaction() as conn:
            rows = conn.execute(
                "SELECT * FROM entries WHERE state = ? AND sealed_path IS NOT NULL AND next_attempt_at <= ? "
                "ORDER BY priority DESC, created_at, rowid LIMIT ?",
                (QUEUED, now, limit * parts),
            ).fetchall()
            rows = rows[: min(limit, -(-len(rows) // parts))]
            conn.executemany(
                "UPDATE entries SET state = ?, updated_at = ? WHERE id = ?",
                [(UPLOADING, now, row["id"]) for row in rows],
            )
        return [Entry.from_row(row, state=UPLOADING) for row in rows]

    def by_state(self, *states: str) -> list[Entry]:
        marks = ", ".join("?" for _ in states)
        rows = self._all(
            f"SELECT * FROM entries WHERE state IN ({marks}) ORDER BY priority DESC, created_at, rowid",
            *states,
        )
        return [Entry.from_row(r) for r in rows]

    def unsealed(self) -> list[Entry]:
        rows = self._all(
            "SELECT * FROM entries WHERE state = ? AND sealed_path IS NULL ORDER BY created_at", QUEUED
        )
        return [Entry.from_row(r) for r in rows]

    def eviction_candidates(self) -> list[Entry]:
        """Entries the budget may evict: lowest priority first, then oldest."""
        rows = self._all(
            "SELECT * FROM entries WHERE state IN (?, ?) ORDER BY priority ASC, created_at ASC, rowid ASC",
            QUEUED,
            QUARANTINED,
        )
        return [Entry.from_row(r) for r in rows]

    def unnotified_records(self) -> list[DoneRecord]:
        """What the notices of the entries recorded done and not yet announced say, oldest first;
        SQLite reads the two fields of ``info`` a notice needs, instead of each row's whole
        document being parsed."""
        # The partial index holds only these rows; without table statistics SQLite would pick
        # entries_state and walk every done record of the last keep_done_s.
        rows = self._all(
            "SELECT id, blob_name, size, plaintext_sha256, key_id, json_extract(info, '$.strategy'), "
            "json_extract(info, '$.traceparent'), updated_at FROM entries INDEXED BY entries_unnotified "
            "WHERE state = 'done' AND notified = 0 ORDER BY updated_at, priority DESC, created_at, rowid"
        )
        return [DoneRecord(*row) for row in rows]

    def store_sealed(self, conn: sqlite3.Connection, entry_id: str, data: bytes | None) -> None:
        """Keep an entry's envelope in the database, inside the caller's transaction (no-op for None)."""
        if data is not None:
            conn.execute("INSERT OR REPLACE INTO sealed_data (id, data) VALUES (?, ?)", (entry_id, data))

    def store_sealed_all(self, conn: sqlite3.Connection, items: list[tuple[str, bytes]]) -> None:
        """``store_sealed`` several envelopes in one statement."""
        if items:
            conn.executemany("INSERT OR REPLACE INTO sealed_data (id, data) VALUES (?, ?)", items)

    def sealed_bytes(self, entry_id: str) -> bytes | None:
        row = self._one("SELECT data FROM sealed_data WHERE id = ?", entry_id)
        return bytes(row[0]) if row else None

    def finish(self, entry_id: str, *, state: str, now: float, reason: str | None = None) -> bool:
        """Move an entry to ``done`` or ``evicted`` and drop its envelope from the database."""
        return self.finish_all([entry_id], state=state, now=now, reason=reason) == 1

    def finish_all(self, ids: list[str], *, state: str, now: float, reason: str | None = None) -> int:
        """``finish`` several entries in one transaction (all of them, or after a crash none);
        returns how many changed state."""
        with self.transaction() as conn:
            changed = 0
            for start in range(0, len(ids), 500):
                part = ids[start : start + 500]
                marks = ", ".join("?" for _ in part)
                changed += conn.execute(
                    "UPDATE entries SET state = ?, updated_at = ?, last_error = ?, "
                    "size = CASE WHEN ? = 'evicted' THEN 0 ELSE size END "
                    f"WHERE id IN ({marks}) AND state IN (?, ?, ?)",
                    (state, now, reason, state, *part, QUEUED, UPLOADING, QUARANTINED),
                ).rowcount
                conn.execute(f"DELETE FROM sealed_data WHERE id IN ({marks})", part)
        return changed

    def mark_notified(self, ids: list[str]) -> None:
        with self.transaction() as conn:
            conn.executemany("UPDATE entries SET notified = 1 WHERE id = ?", [(i,) for i in ids])

    def held_bytes(self) -> int:
        row = self._one(
            "SELECT COALESCE(SUM(size), 0) FROM entries WHERE state IN (?, ?, ?)",
            QUEUED,
            UPLOADING,
            QUARANTINED,
        )
        return int(row[0]) if row else 0

    def reusable_bytes(self) -> int:
        """Space inside the database file freed by deleted rows: new rows reuse it, though the
        volume does not count it as free."""
        free = self._one("PRAGMA freelist_count")
        size = self._one("PRAGMA page_size")
        return int(free[0]) * int(size[0]) if free and size else 0

    def counts(self) -> dict[str, int]:
        rows = self._all("SELECT state, COUNT(*) FROM entries GROUP BY state")
        counts = dict.fromkeys(STATES, 0)
        counts.update({r[0]: int(r[1]) for r in rows})
        return counts

    def oldest_waiting(self) -> Entry | None:
        row = self._one(
            "SELECT * FROM entries WHERE state IN (?, ?) ORDER BY created_at LIMIT 1", QUEUED, UPLOADING
        )
        return Entry.from_row(row) if row else None

    def next_ready_at(self) -> float | None:
        row = self._one(
            "SELECT MIN(next_attempt_at) FROM entries WHERE state = ? AND sealed_path IS NOT NULL", QUEUED
        )
        return float(row[0]) if row and row[0] is not None else None

    def requeue_interrupted(self, now: float) -> int:
        with self._lock:
            return self._conn.execute(
                "UPDATE entries SET state = ?, updated_at = ? WHERE state = ?", (QUEUED, now, UPLOADING)
            ).rowcount

    def retry_quarantined(self, ids: list[str] | None, now: float) -> int:
        sql = (
            "UPDATE entries SET state = ?, attempts = 0, next_attempt_at = ?, updated_at = ? WHERE state = ?"
        )
        args: list[Any] = [QUEUED, now, now, QUARANTINED]
        if ids:
            sql += f" AND id IN ({', '.join('?' for _ in ids)})"
            args.extend(ids)
        with self._lock:
            return self._conn.execute(sql, args).rowcount

    def clamp_backoff(self, now: float, latest: float) -> int:
        """Retries scheduled after ``latest`` (the clock went back while the process was down)
        are due ``now``; returns how many."""
        with self._lock:
            return self._conn.execute(
                "UPDATE entries SET next_attempt_at = ? WHERE state = ? AND next_attempt_at > ?",
                (now, QUEUED, latest),
            ).rowcount

    def reset_backoff(self, now: float) -> None:
        with self._lock:
            self._conn.execute("UPDATE entries SET next_attempt_at = ? WHERE state = ?", (now, QUEUED))

    def prune_done(self, before: float) -> int:
        with self._lock:
            return self._conn.execute(
                "DELETE FROM entries WHERE state IN (?, ?) AND updated_at < ? "
                "AND (state != ? OR notified = 1)",
                (DONE, EVICTED, before, DONE),
            ).rowcount

    def drop_orphan_data(self) -> int:
        with self._lock:
            return self._conn.execute(
                "DELETE FROM sealed_data WHERE id NOT IN (SELECT id FROM entries WHERE state IN (?, ?, ?))",
                (QUEUED, UPLOADING, QUARANTINED),
            ).rowcount

    def referenced_paths(self) -> set[str]:
        """Files still needed: those of entries waiting, uploading or quarantined. A done or
        evicted entry's files are leftovers (a crash between recording and deleting)."""
        rows = self._all(
            "SELECT plain_path, sealed_path FROM entries WHERE state IN (?, ?, ?)",
            QUEUED,
            UPLOADING,
            QUARANTINED,
        )
        return {p for r in rows for p in (r[0], r[1]) if p}

    # -- prediction log ----------------------------------------------------------------------
    def add_predictions(self, rows: list[tuple[str, str, float, str]]) -> None:
        """Rows of (hour, sample_id, added_at, json line)."""
        with self.transaction(durable=True, size=sum(len(row[3]) for row in rows)) as conn:
            conn.executemany(
                "INSERT INTO predlog_pending (hour, sample_id, added_at, line) VALUES (?, ?, ?, ?)", rows
            )

    def pending_hours(self) -> list[tuple[str, int, float]]:
        """(hour, count, oldest added_at) of pending prediction-log lines."""
        rows = self._all(
            "SELECT hour, COUNT(*), MIN(added_at) FROM predlog_pending GROUP BY hour ORDER BY hour"
        )
        return [(str(r[0]), int(r[1]), float(r[2])) for r in rows]

    def pending_lines(self, hour: str, limit: int) -> list[tuple[int, str, str]]:
        rows = self._all(
            "SELECT seq, sample_id, line FROM predlog_pending WHERE hour = ? ORDER BY seq LIMIT ?",
            hour,
            limit,
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]

    def delete_pending(self, seqs: list[int], *, conn: sqlite3.Connection | None = None) -> None:
        """Drop prediction-log lines (cut into a batch, or refused by the budget); inside the
        caller's transaction when ``conn`` is given."""
        args = [(s,) for s in seqs]
        if conn is not None:
            conn.executemany("DELETE FROM predlog_pending WHERE seq = ?", args)
            return
        with self.transaction() as own:
            own.executemany("DELETE FROM predlog_pending WHERE seq = ?", args)

    def pending_count(self) -> int:
        row = self._one("SELECT COUNT(*) FROM predlog_pending")
        return int(row[0]) if row else 0

    def selection_of(self, sample_ids: list[str]) -> dict[str, str]:
        """Strategy of each of ``sample_ids`` that the uploader accepted as a selected sample."""
        found: dict[str, str] = {}
        for start in range(0, len(sample_ids), 500):
            part = sample_ids[start : start + 500]
            marks = ", ".join("?" for _ in part)
            rows = self._all(f"SELECT id, info FROM entries WHERE kind = 'sample' AND id IN ({marks})", *part)
            for row in rows:
                found[str(row[0])] = str(json.loads(row[1]).get("strategy", ""))
        return found
