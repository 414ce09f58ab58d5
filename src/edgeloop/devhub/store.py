"""The hub's durable state: one SQLite file (WAL) for module identities, persistent MQTT
sessions (subscriptions), twins and the ``$upstream`` log, and next to it an append-only file
for the per-module input queues (``queuelog``: a routed message costs one ``write`` there,
where a SQLite commit cost six ``fcntl`` lock calls and two ``pwrite64``).

Other processes may read the SQLite file while the hub runs (``open_read_only``): WAL readers
never block the hub's writes.

Writes are grouped: callers change rows and call ``commit`` once for a batch (the hub commits
before it acknowledges a message to its sender).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeloop.devhub.queuelog import QueuedMessage, QueueLog

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    module TEXT PRIMARY KEY, key TEXT NOT NULL, generation_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, PRIMARY KEY (client_id, filter));
CREATE TABLE IF NOT EXISTS twins (
    module TEXT PRIMARY KEY, desired TEXT NOT NULL, desired_version INTEGER NOT NULL,
    reported TEXT NOT NULL, reported_version INTEGER NOT NULL, seed TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS upstream (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, module TEXT NOT NULL, output TEXT,
    props TEXT NOT NULL, body BLOB NOT NULL, system TEXT NOT NULL DEFAULT '{}');
"""


@dataclass(frozen=True)
class UpstreamEntry:
    """A message routed to ``$upstream``: what IoT Hub would receive."""

    ts: float
    module: str
    output: str | None
    properties: dict[str, str]  # application properties
    system: dict[str, str]  # messageId, correlationId, contentType, connectionModuleId, ...
    body: bytes
    id: int = 0


@dataclass
class TwinRow:
    desired: dict[str, Any]
    desired_version: int
    reported: dict[str, Any]
    reported_version: int
    seed: str


def queue_path(db: Path) -> Path:
    """The queue file that goes with the SQLite file ``db`` (``hub.db`` -> ``hub.queue``)."""
    return db.with_suffix(".queue")


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._queue = QueueLog(queue_path(path))
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(upstream)")}
        if "system" not in columns:  # a state dir from before system properties were kept
            self._db.execute("ALTER TABLE upstream ADD COLUMN system TEXT NOT NULL DEFAULT '{}'")
        self._db.commit()
        self._migrate_queue()
        queued = self._queue.messages
        self._next_queue_id = queued[-1].id + 1 if queued else 1

    def _migrate_queue(self) -> None:
        """Move what a state dir from before keeps queued in SQLite into the queue file (the
        file first: a crash in between leaves both, and ids already in the file are skipped)."""
        if not self._db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queue'"
        ).fetchone():
            return
        known = {m.id for m in self._queue.messages}
        rows = self._db.execute("SELECT id, module, input, props, body, expires FROM queue ORDER BY id")
        for row in rows.fetchall():
            if row[0] not in known:
                self._queue.add(QueuedMessage(*row))
        self._queue.flush()
        self._db.execute("DROP TABLE queue")
        self._db.commit()

    def close(self) -> None:
        self.commit()
        self._queue.close()
        self._db.close()

    def commit(self) -> None:
        """Make every change so far durable: the queue file's one write, then SQLite's commit."""
        self._queue.flush()
        if self._db.in_transaction:
            self._db.commit()

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction or self._queue.pending

    # -- identities -----------------------------------------------------------------------
    def identity(self, module: str) -> tuple[str, str] | None:
        row = self._db.execute(
            "SELECT key, generation_id FROM identities WHERE module = ?", (module,)
        ).fetchone()
        return (row[0], row[1]) if row else None

    def set_identity(self, module: str, key: str, generation_id: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO identities (module, key, generation_id) VALUES (?, ?, ?)",
            (module, key, generation_id),
        )

    # -- sessions -------------------------------------------------------------------------
    def subscriptions(self, client_id: str) -> dict[str, int]:
        rows = self._db.execute("SELECT filter, qos FROM subscriptions WHERE client_id = ?", (client_id,))
        return {f: q for f, q in rows}

    def subscribe(self, client_id: str, topic_filter: str, qos: int) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO subscriptions (client_id, filter, qos) VALUES (?, ?, ?)",
            (client_id, topic_filter, qos),
        )

    def unsubscribe(self, client_id: str, topic_filter: str) -> None:
        self._db.execute(
            "DELETE FROM subscriptions WHERE client_id = ? AND filter = ?", (client_id, topic_filter)
        )

    def clear_session(self, client_id: str) -> None:
        self._db.execute("DELETE FROM subscriptions WHERE client_id = ?", (client_id,))

    # -- queues ---------------------------------------------------------------------------
    def enqueue(self, module: str, input_name: str, props: str, body: bytes, expires: float) -> int:
        """Add a message; its id is above every id this store handed out or found, so an id
        is never reused while the hub runs (a delivered message's id may still sit in a
        connection's send list) and a queue is delivered in id order after a restart."""
        message_id = self._next_queue_id
        self._queue.add(QueuedMessage(message_id, module, input_name, props, body, expires))
        self._next_queue_id = message_id + 1
        return message_id

    def queued(self) -> list[QueuedMessage]:
        """Every queued message (committed or not), in id order: fresh objects."""
        return [
            QueuedMessage(m.id, m.module, m.input, m.props, m.body, m.expires) for m in self._queue.messages
        ]

    def dequeue(self, message_id: int) -> None:
        """Delete a delivered message; deletes are batched into the next ``commit``."""
        self._queue.remove(message_id)

    # -- twins ----------------------------------------------------------------------------
    def twin(self, module: str) -> TwinRow | None:
        row = self._db.execute(
            "SELECT desired, desired_version, reported, reported_version, seed FROM twins WHERE module = ?",
            (module,),
        ).fetchone()
        if row is None:
            return None
        return TwinRow(json.loads(row[0]), row[1], json.loads(row[2]), row[3], row[4])

    def save_twin(self, module: str, twin: TwinRow) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO twins"
            " (module, desired, desired_version, reported, reported_version, seed) VALUES (?, ?, ?, ?, ?, ?)",
            (
                module,
                json.dumps(twin.desired),
                twin.desired_version,
                json.dumps(twin.reported),
                twin.reported_version,
                twin.seed,
            ),
        )

    # -- upstream -------------------------------------------------------------------------
    def add_upstream(self, entry: UpstreamEntry) -> int:
        cursor = self._db.execute(
            "INSERT INTO upstream (ts, module, output, props, body, system) VALUES (?, ?, ?, ?, ?, ?)",
            (entry.ts, entry.module, entry.output, json.dumps(entry.properties), entry.body,
             json.dumps(entry.system)),
        )  # fmt: skip
        return int(cursor.lastrowid or 0)

    def upstream(self, after: int = 0, limit: int = 1000) -> list[UpstreamEntry]:
        rows = self._db.execute(
            "SELECT id, ts, module, output, props, body, system FROM upstream"
            " WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [UpstreamEntry(r[1], r[2], r[3], json.loads(r[4]), json.loads(r[6]), r[5], r[0]) for r in rows]


def open_read_only(path: Path) -> sqlite3.Connection:
    """The hub's database opened for reading, also while a hub writes to it.

    Raises:
        sqlite3.Error: the file is missing or not a hub database.
    """
    if not path.exists():
        raise sqlite3.OperationalError(f"no hub database at {path}")
    return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
