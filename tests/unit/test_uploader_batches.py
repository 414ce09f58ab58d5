"""How the uploader takes its work in batches: a worker claims a few entries at once, ships them
(with the opt-in sidecar, two samples in flight: one's sidecar beside the next one's envelope),
records them done in one commit and sends their notices in one message; an input message's
samples are accepted in one commit. A memory blob store and a fake clock stand in."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from edgeloop_uploader.lanes import Lanes
from edgeloop_uploader.outbox import DONE, EVICTED, QUEUED, UPLOADING

from edgeloop.blobstore import BlobUnavailableError
from edgeloop.contracts import UploadedNotice
from tests.unit.uploader_support import Harness, selected

ONE_WORKER = {"outbox": {"workers": 1}}
WITH_SIDECAR = {**ONE_WORKER, "storage": {"sidecar": True}}


class _Crash(BaseException):
    """Stands for the process dying (SIGKILL, power loss) at that point."""


def _accept(h: Harness, *sample_ids: str) -> None:
    for sample_id in sample_ids:
        assert h.uploader.accept_selected(selected(h.samples, sample_id))
        h.clock.advance(1)  # so the upload order is the order given


def _envelope(sample_id: str) -> str:
    return f"digits/3/2026/01/05/dev-1/{sample_id}.jpg.elenv"


def _sidecar(sample_id: str) -> str:
    return f"digits/3/2026/01/05/dev-1/{sample_id}.json"


def test_a_samples_sidecar_goes_out_beside_the_next_samples_envelope(tmp_path: Path) -> None:
    # given: the store holds the first sample's sidecar until the second sample's envelope starts
    h = Harness(tmp_path, config=WITH_SIDECAR)
    _accept(h, "01S1", "01S2")
    second_envelope = threading.Event()

    def hook(operation: str, name: str) -> None:
        if name == _envelope("01S2"):
            second_envelope.set()
        if name == _sidecar("01S1") and not second_envelope.wait(timeout=10):
            raise RuntimeError("the second envelope waited for the first sidecar")

    h.store.fail_hook = hook
    # when
    taken = h.uploader.upload_ready()
    # then: both in one batch, both delivered
    assert taken == 2
    assert h.uploader.db.counts()[DONE] == 2
    assert [n.sample_id for n in h.notices] == ["01S1", "01S2"]


def test_each_sidecar_follows_its_envelope_and_a_worker_has_at_most_two_requests_out(
    tmp_path: Path,
) -> None:
    # given: writes that take a moment (sidecars longer), so requests in flight overlap if they can
    h = Harness(tmp_path, config=WITH_SIDECAR)
    ids = [f"01S{i}" for i in range(8)]
    _accept(h, *ids)
    lock, in_flight, most = threading.Lock(), [0], [0]

    def hook(operation: str, name: str) -> None:
        with lock:
            in_flight[0] += 1
            most[0] = max(most[0], in_flight[0])
        time.sleep(0.03 if name.endswith(".json") else 0.005)
        with lock:
            in_flight[0] -= 1

    h.store.fail_hook = hook
    # when
    h.pump()
    # then: a sidecar present means its sample is complete
    puts = h.store.puts
    assert all(puts.index(_envelope(i)) < puts.index(_sidecar(i)) for i in ids)
    assert most[0] == 2
    assert [n.sample_id for n in h.notices] == ids


def test_a_batch_is_recorded_done_in_one_commit_and_announced_in_one_message(tmp_path: Path) -> None:
    # given
    h = Harness(tmp_path, config=ONE_WORKER)
    messages: list[list[UploadedNotice]] = []
    h.uploader.notify = messages.append
    _accept(h, "01S1", "01S2", "01S3")
    # when
    assert h.uploader.upload_ready() == 3
    # then
    assert h.uploader.db.counts()[DONE] == 3
    assert [[n.sample_id for n in message] for message in messages] == [["01S1", "01S2", "01S3"]]


def test_recording_uploads_done_does_not_write_their_envelopes_to_the_log_again(tmp_path: Path) -> None:
    # given: two envelopes of about 200 KB kept in the outbox database, then a checkpoint
    h = Harness(tmp_path, config=ONE_WORKER)
    for sample_id in ("01S1", "01S2"):
        data = bytes(range(256)) * 800
        assert h.uploader.accept_selected(selected(h.samples, sample_id, data=data))
    db = h.uploader.db
    db._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    wal = Path(f"{db.path}-wal")
    # when: both are uploaded and recorded done (their envelopes deleted from the database)
    assert h.uploader.upload_ready() == 2
    # then: the log holds the changed rows, not 400 KB of freed pages written over with zeros
    assert db.counts()[DONE] == 2
    assert db.sealed_bytes("01S1") is None
    assert wal.stat().st_size < 100_000, wal.stat().st_size


def test_a_crash_before_a_batch_is_recorded_leaves_no_half_and_redelivers_each_once(
    tmp_path: Path,
) -> None:
    # given: three samples in one batch; the process dies while the last sidecar is written
    h = Harness(tmp_path, config=WITH_SIDECAR)
    _accept(h, "01S1", "01S2", "01S3")

    def die(operation: str, name: str) -> None:
        if name == _sidecar("01S3"):
            raise _Crash

    h.store.fail_hook = die
    # when
    with pytest.raises(_Crash):
        h.uploader.upload_ready()
    # then: none of the batch is recorded done, though two samples reached the store
    counts = h.uploader.db.counts()
    assert (counts[DONE], counts[UPLOADING]) == (0, 3)
    assert h.notices == []
    # when: started again
    h.store.fail_hook = None
    h.restart()
    h.pump()
    # then: every sample delivered once, its earlier blobs taken as its own
    assert [n.sample_id for n in h.notices] == ["01S1", "01S2", "01S3"]
    assert len(h.store.blobs) == 6
    assert h.uploader.counters["already_present"] == 5
    assert h.uploader.db.counts()[DONE] == 3


def test_one_request_per_sample_a_crash_mid_batch_redelivers_each_once(tmp_path: Path) -> None:
    # given: the default (no sidecar); the process dies while the third sample is written
    h = Harness(tmp_path, config=ONE_WORKER)
    _accept(h, "01S1", "01S2", "01S3")
    h.store.fail_hook = lambda operation, name: _crash_at(name, _envelope("01S3"))
    # when
    with pytest.raises(_Crash):
        h.uploader.upload_ready()
    # then: one blob per sample reached the store, none recorded done
    assert h.store.puts == [_envelope("01S1"), _envelope("01S2")]
    assert h.uploader.db.counts()[UPLOADING] == 3
    # when: started again
    h.store.fail_hook = None
    h.restart()
    h.pump()
    # then: every sample delivered once, its earlier blob taken as its own, no sidecar anywhere
    assert [n.sample_id for n in h.notices] == ["01S1", "01S2", "01S3"]
    assert sorted(h.store.blobs) == [_envelope(i) for i in ("01S1", "01S2", "01S3")]
    assert h.uploader.counters["already_present"] == 2


def _crash_at(name: str, fatal: str) -> None:
    if name == fatal:
        raise _Crash


def test_a_storage_outage_mid_batch_stops_it_and_counts_no_attempt(tmp_path: Path) -> None:
    # given: the storage goes away at the second sample's envelope
    h = Harness(tmp_path, config=ONE_WORKER)
    _accept(h, "01S1", "01S2", "01S3")

    def outage(operation: str, name: str) -> None:
        if name == _envelope("01S2"):
            raise BlobUnavailableError("storage unreachable (simulated)")

    h.store.fail_hook = outage
    # when
    assert h.uploader.upload_ready() == 3
    # then: the first is done, the others wait with no attempt spent, the third was not tried
    entries = {e.id: e for e in h.uploader.db.by_state(DONE, QUEUED)}
    assert {i: e.state for i, e in entries.items()} == {"01S1": DONE, "01S2": QUEUED, "01S3": QUEUED}
    assert entries["01S2"].attempts == entries["01S3"].attempts == 0
    assert not any("01S3" in name for name in h.store.puts)
    assert h.uploader.storage.ready() is None  # backing off
    # when: the storage is back
    h.store.fail_hook = None
    h.clock.advance(10)
    h.pump()
    # then
    assert [n.sample_id for n in h.notices] == ["01S1", "01S2", "01S3"]


@pytest.mark.parametrize(
    ("ready", "workers", "taken"),
    [(1, 2, 1), (3, 2, 1), (3, 1, 3), (7, 2, 2), (16, 2, 4), (20, 2, 5), (20, 4, 3), (31, 2, 8), (40, 2, 8)],
)
def test_workers_share_a_short_queue_and_take_at_most_a_batch(
    tmp_path: Path, ready: int, workers: int, taken: int
) -> None:
    # given
    h = Harness(tmp_path, config={"outbox": {"workers": workers}})
    h.uploader.accept_selected_batch([selected(h.samples, f"01S{i:02d}") for i in range(ready)])
    # when
    claimed = h.uploader.db.claim_ready(h.uploader.now(), limit=8, share=workers)
    # then
    assert len(claimed) == taken
    assert all(entry.state == UPLOADING for entry in claimed)
    assert h.uploader.db.counts()[UPLOADING] == taken


def test_a_notice_sender_at_work_takes_the_notices_of_callers_that_find_it_busy(tmp_path: Path) -> None:
    # given: the first notice's message is on its way when a second sample is recorded done
    h = Harness(tmp_path)
    sending, release = threading.Event(), threading.Event()
    messages: list[list[str]] = []

    def notify(notices: list[UploadedNotice]) -> None:
        messages.append([n.sample_id for n in notices])
        if len(messages) == 1:
            sending.set()
            assert release.wait(timeout=10)

    h.uploader.notify = notify
    _accept(h, "01S1", "01S2")
    assert h.uploader.db.claim_ready(h.uploader.now(), limit=2) != []
    h.uploader.db.finish("01S1", state=DONE, now=h.uploader.now())
    first = threading.Thread(target=h.uploader.send_notices)
    first.start()
    assert sending.wait(timeout=10)
    # when: the other caller finds the sender busy
    h.uploader.db.finish("01S2", state=DONE, now=h.uploader.now())
    returned: list[int] = []
    second = threading.Thread(target=lambda: returned.append(h.uploader.send_notices()))
    second.start()
    second.join(timeout=5)
    waited = second.is_alive()
    release.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert not waited
    assert returned == [0]  # it returned at once, leaving its notice to the sender at work
    # then: each notice went once, the second in the sender's next message
    assert messages == [["01S1"], ["01S2"]]
    assert h.uploader.db.unnotified_records() == []


def test_an_input_batch_over_the_budget_evicts_queued_entries_that_rank_lower(tmp_path: Path) -> None:
    # given: room for three sealed samples, held by three queued ones of priority 0
    probe = Harness(tmp_path / "probe")
    probe.uploader.accept_selected(selected(probe.samples, "01P", b"x" * 1000))
    size = probe.uploader.db.held_bytes()
    h = Harness(tmp_path / "h", config={"outbox": {"max_bytes": 3 * size + 100}})
    h.store.outage = True
    h.uploader.accept_selected_batch([selected(h.samples, f"01A{i}", b"x" * 1000) for i in range(3)])
    h.clock.advance(1)
    # when: a message brings two of priority 1
    taken = h.uploader.accept_selected_batch(
        [selected(h.samples, f"01B{i}", b"x" * 1000, priority=1) for i in range(2)]
    )
    # then: the two oldest of priority 0 made room; the budget holds
    assert taken == 2
    states = {e.id: e.state for e in h.uploader.db.by_state(QUEUED, EVICTED)}
    assert states == {"01A0": EVICTED, "01A1": EVICTED, "01A2": QUEUED, "01B0": QUEUED, "01B1": QUEUED}
    assert h.uploader.db.held_bytes() <= 3 * size + 100


def test_a_repeated_id_in_one_batch_is_taken_once_while_no_key_is_known(tmp_path: Path) -> None:
    # given: no public key yet, so samples are claimed and recorded one by one
    h = Harness(tmp_path, key=None)
    item = selected(h.samples, "01S1")
    # when
    taken = h.uploader.accept_selected_batch([item, item])
    # then
    assert taken == 1
    assert h.uploader.counters["duplicates"] == 1
    assert h.uploader.db.counts()[QUEUED] == 1


def test_lanes_run_jobs_hand_back_failures_and_reuse_an_idle_lane() -> None:
    # given
    lanes = Lanes("test-lane")
    # when: jobs one after another, each waited for
    results = [lanes.submit(lambda n=n: n * n).result(timeout=10) for n in range(20)]
    failed = lanes.submit(lambda: 1 / 0)
    # then
    assert results == [n * n for n in range(20)]
    assert isinstance(failed.exception(timeout=10), ZeroDivisionError)
    assert lanes.size == 1  # one lane serves jobs that come one at a time
    # when: closed
    lanes.close()
    # then
    with pytest.raises(RuntimeError, match="closed"):
        lanes.submit(lambda: None)


@pytest.mark.parametrize(("durability", "syncs"), [("full", 1), ("normal", 0)])
def test_an_accepted_message_is_synced_to_disk_after_the_lock_is_let_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, durability: str, syncs: int
) -> None:
    # given
    h = Harness(tmp_path, config={"outbox": {"durability": durability}})
    db = h.uploader.db
    synced: list[bool] = []
    real_sync = db._sync_log

    def probe() -> None:  # as an upload worker would, while the log is synced
        taken = db._lock.acquire(timeout=5)
        if taken:
            db._lock.release()
        synced.append(taken)

    def sync() -> None:
        other = threading.Thread(target=probe)
        other.start()
        other.join()
        real_sync()

    monkeypatch.setattr(db, "_sync_log", sync)
    # when: one message of two samples
    assert h.uploader.accept_selected_batch([selected(h.samples, "01S1"), selected(h.samples, "01S2")]) == 2
    # then: the log is synced once for the message under ``full``, without the lock held
    assert synced == [True] * syncs


def test_checkpoints_keep_the_log_bounded_without_one_inside_a_commit(tmp_path: Path) -> None:
    # given: no checkpoint runs inside a commit (they run after it, on their own connection)
    h = Harness(tmp_path)
    db = h.uploader.db
    assert db._conn.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
    wal = Path(f"{db.path}-wal")
    # when: 6 MB of envelopes are accepted, 8 samples of 100 KB a message, and uploaded
    for message in range(8):
        items = [selected(h.samples, f"01M{message}{i}", bytes(range(256)) * 400) for i in range(8)]
        assert h.uploader.accept_selected_batch(items) == 8
        h.pump()
    # then: the log never grew far past the megabyte after which a checkpoint runs
    assert h.uploader.db.counts()[DONE] == 64
    assert wal.stat().st_size < 2_500_000, wal.stat().st_size
