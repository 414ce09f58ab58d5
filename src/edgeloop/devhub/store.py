"""The hub's durable state in one SQLite file (WAL): module identities, persistent MQTT
sessions (subscriptions), per-module input queues, twins and the ``$upstream`` log.

Other processes may read the file while the hub runs (``open_read_only``): WAL readers never
block the hub's writes.

Writes are grouped: callers change rows and call ``commit`` once for a batch (the hub commits
before it acknowledges a message to its sender).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS identities (
    module TEXT PRIMARY KEY, key TEXT NOT NULL, generation_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS subscriptions (
    client_id TEXT NOT NULL, filter TEXT NOT NULL, qos INTEGER NOT NULL, PRIMARY KEY (client_id, filter));
-- Queue ids come from the store's own counter (see ``enqueue``), not AUTOINCREMENT, whose
-- sqlite_sequence row cost a page write a commit; a state dir from before keeps its table.
CREATE TABLE IF NOT EXISTS queue (
    id INTEGER PRIMARY KEY, module TEXT NOT NULL, input TEXT NOT NULL,
    props TEXT NOT NULL, body BLOB NOT NULL, expires REAL NOT NULL);
-- No index on module: nothing looks a queue up by it, and each one cost a page write a commit.
DROP INDEX IF EXISTS queue_module;
CREATE TABLE IF NOT EXISTS twins (
    module TEXT PRIMARY KEY, desired TEXT NOT NULL, desired_version INTEGER NOT NULL,
    reported TEXT NOT NULL, reported_version INTEGER NOT NULL, seed TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS upstream (
    id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL, module TEXT NOT NULL, output TEXT,
    props TEXT NOT NULL, body BLOB NOT NULL, system TEXT NOT NULL DEFAULT '{}');
"""


@dataclass
class QueuedMessage:
    id: int
    module: str
    input: str
    props: str  # the property segment of the input topic, already encoded
    body: bytes
    expires: float
    sent: bool = False  # delivered at least once (a redelivery carries the DUP flag)


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


class Store:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._deletes: list[int] = []
        self._db = sqlite3.connect(path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(upstream)")}
        if "system" not in columns:  # a state dir from before system properties were kept
            self._db.execute("ALTER TABLE upstream ADD COLUMN system TEXT NOT NULL DEFAULT '{}'")
        last_id = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM queue").fetchone()[0]
        self._next_queue_id = int(last_id) + 1
        self._db.commit()

    def close(self) -> None:
        self.commit()
        self._db.close()

    def commit(self) -> None:
        self._apply_deletes()
        self._db.commit()

    @property
    def in_transaction(self) -> bool:
        return self._db.in_transaction or bool(self._deletes)

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
        self._db.execute(
            "INSERT INTO queue (id, module, input, props, body, expires) VALUES (?, ?, ?, ?, ?, ?)",
            (message_id, module, input_name, props, body, expires),
        )
        self._next_queue_id = message_id + 1
        return message_id

    def queued(self) -> list[QueuedMessage]:
        self._apply_deletes()
        rows = self._db.execute("SELECT id, module, input, props, body, expires FROM queue ORDER BY id")
        return [QueuedMessage(*row) for row in rows]

    def dequeue(self, message_id: int) -> None:
        """Delete a delivered message; deletes are batched into the next ``commit``."""
        self._deletes.append(message_id)

    def _apply_deletes(self) -> None:
        if self._deletes:
            self._db.executemany("DELETE FROM queue WHERE id = ?", [(i,) for i in self._deletes])
            self._deletes.clear()

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
