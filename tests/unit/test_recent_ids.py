"""The bounded memory of recent ids (the filter's decided sample ids, the runtime's message ids)."""

from __future__ import annotations

from edgeloop.recent import RecentIds


def test_the_oldest_ids_are_forgotten_first() -> None:
    # given
    ids = RecentIds(3)
    # when
    for sample_id in ["a", "b", "c", "a", "d"]:
        ids.add(sample_id)
    # then: "a" was seen again, so "b" is the oldest
    assert ids.snapshot() == ["c", "a", "d"]
    assert "b" not in ids
    assert "a" in ids


def test_a_snapshot_restores_in_order_and_a_resize_keeps_the_newest() -> None:
    # given
    ids = RecentIds(10, ["a", "b", "c", "d"])
    # when
    ids.resize(2)
    # then
    assert ids.snapshot() == ["c", "d"]
    assert RecentIds(10, ids.snapshot()).snapshot() == ["c", "d"]


def test_a_limit_of_zero_remembers_nothing() -> None:
    # given
    ids = RecentIds(0, ["a"])
    # when
    ids.add("b")
    # then
    assert len(ids) == 0
    assert "b" not in ids
