"""The uploader's outbox under an exhausted byte budget and a wall clock that jumps.

- Budget: with storage down, more samples arrive than the outbox may hold. The bytes held never
  exceed the budget, what is evicted ranks below what is kept (priority, then age), every
  eviction is reported, and when storage returns everything kept is uploaded: accepted =
  uploaded + evicted, nothing unaccounted.
- Clock: the wall clock jumps an hour back or a day forward (NTP after a cold boot, a bad RTC).
  Retries are still made within the longest backoff, the oldest-first eviction order holds, and
  nothing is lost or uploaded twice.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from edgeloop.blobstore import BlobStoreError
from tests.reliability.conftest import AreaLedger
from tests.unit.uploader_support import Harness, selected

MAX_BACKOFF_S = 8.0  # the harness's retry.max_backoff_s


def _fail_once(operation: str, name: str) -> None:
    """A failure of this one upload (not an outage): the entry is retried after a backoff."""
    if operation == "put" and name.endswith(".elenv"):
        raise BlobStoreError(f"500 InternalError on {name}")


def _sealed_ids(h: Harness) -> list[str]:
    return [n.rsplit("/", 1)[1].split(".")[0] for n in h.store.blobs if n.endswith(".elenv")]


def test_an_exhausted_budget_evicts_lowest_priority_then_oldest_and_reports_every_eviction(
    tmp_path: Path, ledger: AreaLedger
) -> None:
    # given: storage is down and the outbox may hold about ten samples
    h = Harness(tmp_path, config={"outbox": {"max_bytes": 10 * 1500}})
    h.store.outage = True
    arrivals = []
    refused = set()  # evicted on arrival: nothing queued ranked lower
    # when: forty samples of three priorities arrive, one a second
    for i in range(40):
        sample_id = f"01B{i:03d}"
        arrivals.append((sample_id, i % 3))
        if not h.uploader.accept_selected(selected(h.samples, sample_id, b"x" * 1000, priority=i % 3)):
            refused.add(sample_id)
        h.pump()
        info = h.uploader.queue_info()
        assert info["bytes"] <= info["budget_bytes"], f"over budget after {sample_id}: {info['bytes']}"
        h.clock.advance(1.0)
    stats = h.uploader.stats()
    evicted = {e.id for e in h.uploader.db.by_state("evicted")} | refused
    # then: what was kept outranks what was evicted
    rank = {sid: (prio, n) for n, (sid, prio) in enumerate(arrivals)}
    kept = {sid for sid, _ in arrivals} - evicted
    assert kept, "everything was evicted"
    assert min(rank[k] for k in kept) > max(rank[e] for e in evicted)
    assert stats["counters"]["evicted"] == len(evicted)
    recent = [e["id"] for e in stats["recent_evictions"]]
    assert recent, "no eviction reported"
    assert set(recent) <= evicted
    assert all("disk budget" in e["reason"] for e in stats["recent_evictions"])
    # when: storage returns
    h.store.outage = False
    h.clock.advance(MAX_BACKOFF_S + 1)
    h.pump()
    uploaded = set(_sealed_ids(h))
    unaccounted = {sid for sid, _ in arrivals} - uploaded - evicted
    ledger.record(faults=1, inputs=len(arrivals), lost=len(unaccounted), note="evictions reported, not lost")
    # then
    assert uploaded == kept
    assert unaccounted == set()
    assert {n.sample_id for n in h.notices} == kept


@pytest.mark.parametrize("jump", [timedelta(hours=-1), timedelta(days=-3), timedelta(days=1)], ids=str)
def test_retries_are_made_within_the_longest_backoff_after_the_wall_clock_jumps(
    tmp_path: Path, jump: timedelta, ledger: AreaLedger
) -> None:
    # given: an upload failed and waits for its retry
    h = Harness(tmp_path)
    h.store.fail_hook = _fail_once
    h.uploader.accept_selected(selected(h.samples, "01J1"))
    h.pump()
    assert _sealed_ids(h) == []
    assert h.uploader.stats()["counters"]["attempt_errors"] == 1
    # when: the wall clock jumps, storage returns, and the longest backoff passes
    h.clock.set_wall(h.clock.now() + jump)
    h.uploader.accept_selected(selected(h.samples, "01J2"))
    h.store.fail_hook = None
    h.clock.advance(MAX_BACKOFF_S + 1)
    h.pump()
    ledger.record(faults=1, inputs=2, lost=2 - len(_sealed_ids(h)), note="wall clock jumps")
    # then
    assert sorted(_sealed_ids(h)) == ["01J1", "01J2"]
    assert h.uploader.queue_info()["depth"] == 0


@pytest.mark.parametrize("restart", [False, True], ids=["running", "restarted"])
def test_a_backwards_jump_during_downtime_does_not_stall_the_queue(
    tmp_path: Path, restart: bool, ledger: AreaLedger
) -> None:
    # given: an entry waiting for a retry when the device goes down
    h = Harness(tmp_path)
    h.store.fail_hook = _fail_once
    h.uploader.accept_selected(selected(h.samples, "01R1"))
    h.pump()
    # when: it comes back with its wall clock an hour behind
    h.clock.set_wall(h.clock.now() - timedelta(hours=1))
    if restart:
        h.restart()
    h.store.fail_hook = None
    h.clock.advance(MAX_BACKOFF_S + 1)
    h.pump()
    ledger.record(faults=1, inputs=1, lost=1 - len(_sealed_ids(h)), note="wall clock jumps")
    # then
    assert _sealed_ids(h) == ["01R1"]


def test_eviction_stays_oldest_first_when_the_wall_clock_goes_back(
    tmp_path: Path, ledger: AreaLedger
) -> None:
    # given: storage down, room for two sealed samples of equal priority (1750 bytes each)
    h = Harness(tmp_path, config={"outbox": {"max_bytes": 4000}})
    h.store.outage = True
    h.uploader.accept_selected(selected(h.samples, "01OLD", b"x" * 1000))
    h.clock.advance(5)
    h.uploader.accept_selected(selected(h.samples, "01MID", b"x" * 1000))
    # when: the wall clock goes back an hour and a third sample arrives
    h.clock.set_wall(h.clock.now() - timedelta(hours=1))
    h.clock.advance(5)
    h.uploader.accept_selected(selected(h.samples, "01NEW", b"x" * 1000))
    evicted = [e["id"] for e in h.uploader.stats()["recent_evictions"]]
    ledger.record(faults=1, inputs=3, note="wall clock jumps")
    # then: the oldest arrival made room, not the newest
    assert evicted == ["01OLD"]
