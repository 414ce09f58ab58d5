"""The hub's queue ids: never handed out twice while the hub runs (a delivered message's id may
still sit in a connection's send list), and above every queued message after a restart."""

from __future__ import annotations

from pathlib import Path

from edgeloop.devhub.store import Store


def test_the_id_of_a_delivered_message_is_not_reused(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db")
    first = store.enqueue("filter", "predictions", "", b"a", 1e12)
    last = store.enqueue("filter", "predictions", "", b"b", 1e12)
    store.commit()
    store.dequeue(last)  # the newest row goes: SQLite alone would hand its id out again
    store.commit()
    again = store.enqueue("filter", "predictions", "", b"c", 1e12)
    store.commit()
    assert first < last < again
    assert [m.id for m in store.queued()] == [first, again]
    store.close()


def test_after_a_restart_new_ids_follow_the_queued_ones_in_order(tmp_path: Path) -> None:
    store = Store(tmp_path / "hub.db")
    kept = [store.enqueue("uploader", "selected", "", f"{i}".encode(), 1e12) for i in range(3)]
    store.close()
    reopened = Store(tmp_path / "hub.db")
    newer = reopened.enqueue("uploader", "selected", "", b"3", 1e12)
    reopened.commit()
    assert newer > max(kept)
    assert [m.body for m in reopened.queued()] == [b"0", b"1", b"2", b"3"]
    reopened.close()
