"""The hub's queue file: what was flushed survives a reopen (as after a crash), removals stay
removed, order is kept through a rewrite, a torn tail is cut off and later records follow the
good ones, and a state dir whose queue lived in SQLite keeps its messages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from edgeloop.devhub import queuelog
from edgeloop.devhub.queuelog import QueuedMessage, QueueLog
from edgeloop.devhub.store import Store, queue_path


def _message(message_id: int, body: bytes = b"x") -> QueuedMessage:
    return QueuedMessage(message_id, "filter", "frames", "%24.mid=m&k=v%2Fw", body, 1e12)


def _ids(path: Path) -> list[int]:
    live, _ = queuelog.read(path)
    return sorted(live)


def test_flushed_messages_survive_without_close_and_unflushed_ones_do_not(tmp_path: Path) -> None:
    path = tmp_path / "hub.queue"
    log = QueueLog(path)
    for i in (1, 2, 3):
        log.add(_message(i, f"body {i}".encode()))
    log.flush()
    log.remove(2)
    log.add(_message(4))
    assert _ids(path) == [1, 2, 3]  # nothing buffered is on file before flush
    log.flush()
    live, _ = queuelog.read(path)  # another reader, the writer still open (a crash now)
    assert sorted(live) == [1, 3, 4]
    assert live[3][0] == _message(3, b"body 3")


def test_a_torn_tail_is_cut_off_and_appends_follow_the_good_records(tmp_path: Path) -> None:
    path = tmp_path / "hub.queue"
    log = QueueLog(path)
    log.add(_message(1))
    log.add(_message(2))
    log.flush()
    log.close()
    good = path.read_bytes()
    path.write_bytes(good + queuelog._encode(_message(3))[:-5])  # the last write torn
    reopened = QueueLog(path)
    assert [m.id for m in reopened.messages] == [1, 2]
    assert path.read_bytes() == good
    reopened.add(_message(3))
    reopened.close()
    assert _ids(path) == [1, 2, 3]


def test_a_record_whose_checksum_fails_ends_the_log(tmp_path: Path) -> None:
    path = tmp_path / "hub.queue"
    log = QueueLog(path)
    for i in (1, 2, 3):
        log.add(_message(i))
        log.flush()
    log.close()
    data = bytearray(path.read_bytes())
    size = len(queuelog._encode(_message(1)))
    data[size + 20] ^= 0xFF  # inside the second record
    path.write_bytes(bytes(data))
    assert [m.id for m in QueueLog(path).messages] == [1]


def test_a_rewrite_keeps_what_is_queued_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queuelog, "_COMPACT_BYTES", 4096)
    path = tmp_path / "hub.queue"
    log = QueueLog(path)
    body = b"y" * 200
    for i in range(1, 201):
        log.add(_message(i, body))
        if i % 20:
            log.remove(i)
        log.flush()
    written = 200 * len(queuelog._encode(_message(1, body)))
    assert path.stat().st_size < written / 3  # rewritten along the way
    kept = [i for i in range(1, 201) if not i % 20]
    assert _ids(path) == kept
    log.close()
    assert [m.id for m in QueueLog(path).messages] == kept


def test_reopening_a_drained_log_empties_the_file(tmp_path: Path) -> None:
    path = tmp_path / "hub.queue"
    log = QueueLog(path)
    log.add(_message(1))
    log.remove(1)
    log.close()
    assert path.stat().st_size > 0
    assert QueueLog(path).messages == []
    assert path.stat().st_size == 0


def test_a_queue_kept_in_sqlite_moves_to_the_queue_file(tmp_path: Path) -> None:
    db_path = tmp_path / "hub.db"
    db = sqlite3.connect(db_path)
    db.execute(
        "CREATE TABLE queue (id INTEGER PRIMARY KEY, module TEXT NOT NULL, input TEXT NOT NULL,"
        " props TEXT NOT NULL, body BLOB NOT NULL, expires REAL NOT NULL)"
    )
    db.executemany(
        "INSERT INTO queue VALUES (?, ?, ?, ?, ?, ?)",
        [(7, "filter", "frames", "p=1", b"seven", 1e12), (9, "uploader", "selected", "", b"nine", 1e12)],
    )
    db.commit()
    db.close()
    store = Store(db_path)
    assert [(m.id, m.module, m.body) for m in store.queued()] == [
        (7, "filter", b"seven"),
        (9, "uploader", b"nine"),
    ]
    assert store.enqueue("filter", "frames", "", b"ten", 1e12) > 9
    store.close()
    assert _ids(queue_path(db_path)) == [7, 9, 10]
    tables = (
        sqlite3.connect(db_path).execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    )
    assert ("queue",) not in tables


def test_a_drained_log_over_the_limit_is_cut_to_nothing_and_appends_go_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queuelog, "_COMPACT_BYTES", 4096)
    path = tmp_path / "hub.queue"
    log = QueueLog(path)
    for i in range(1, 41):
        log.add(_message(i, b"z" * 200))
        log.remove(i)
        log.flush()
        assert path.stat().st_size <= 4096 + 600
    log.add(_message(41))
    log.flush()
    assert _ids(path) == [41]
    log.close()
