"""The uploader's outbox driven directly: claim, seal, upload, retries, quarantine, eviction,
recovery after a crash, key rotation. A memory blob store and a fake clock stand in."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import logging
import random
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from edgeloop_cloud.opener import EnvelopeOpener
from edgeloop_cloud.samples import fetch_plaintext, find_samples, find_samples_by_tags
from edgeloop_uploader.backoff import backoff_delay
from edgeloop_uploader.config import RetryConfig
from edgeloop_uploader.outbox import DONE, QUARANTINED, QUEUED, UPLOADING

from edgeloop.blobstore import ANY, BlobStoreError
from edgeloop.contracts import UploadedNotice
from edgeloop.envelope import EnvelopeContext, PublicKey, read_header, sealed_size
from tests.unit.uploader_support import TRACEPARENT, Harness, key_id, keyring, public_pem, selected


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_a_selected_sample_is_one_request_with_metadata_and_tags_and_is_reported(h: Harness) -> None:
    # given
    item = selected(h.samples, "01S1")
    original = (h.samples / "frames/01S1.jpg").read_bytes()
    # when
    assert h.uploader.accept_selected(item)
    h.pump()
    # then: one blob, written once, that opens to the original
    name = "digits/3/2026/01/05/dev-1/01S1.jpg.elenv"
    assert h.store.puts == [name]
    assert h.open_sample("01S1") == original
    blob = h.store.blobs[name]
    assert blob.content_type == "application/vnd.edgeloop.envelope"
    # and it carries what the sidecar used to, each fact once: the hashes, the selection and the
    # answer as metadata; the sample, device, model and key in the name, the tags or the envelope
    meta = blob.metadata
    assert meta == {
        "content_type": "image/jpeg",
        "plaintext_sha256": item.prediction.frame.sha256,
        "blob_sha256": hashlib.sha256(blob.data).hexdigest(),
        "strategy": "uncertainty",
        "label": "7",
        "confidence": "0.41",
        "reason": "margin 0.05 < 0.1",
        "selected_at": meta["selected_at"],
        "traceparent": TRACEPARENT,
    }
    assert meta["selected_at"].startswith("2026-01-05T12:30:02")
    header = read_header(io.BytesIO(blob.data))
    assert (header.key_id, header.context.sample_id, header.context.device_id) == (key_id(0), "01S1", "dev-1")
    # and index tags the cloud can query
    assert blob.tags == {
        "strategy": "uncertainty",
        "model": "digits",
        "model_version": "3",
        "device": "dev-1",
        "label_state": "unlabelled",
    }
    assert [
        b.name for b in h.store.find_by_tags("\"strategy\" = 'uncertainty' AND \"device\" = 'dev-1'")
    ] == [name]
    # and the notice carries the trace context
    (notice,) = h.notices
    assert (notice.sample_id, notice.blob_name, notice.traceparent) == ("01S1", name, TRACEPARENT)
    assert notice.bytes == len(h.store.blobs[name].data)
    # and the outbox keeps no file of it
    assert list((h.outbox / "sealed").iterdir()) == []
    assert list((h.outbox / "claims").iterdir()) == []


def test_the_cloud_finds_opens_and_describes_a_sample_from_what_the_blob_carries(h: Harness) -> None:
    # given: a sample uploaded with the trimmed metadata (no sample id, device or key id in it)
    original = b"\xff\xd8 a frame" * 100
    assert h.uploader.accept_selected(selected(h.samples, "01S1", original))
    h.pump()
    # when: the cloud lists, queries by tags and opens it
    (listed,) = find_samples(h.store)
    (tagged,) = find_samples_by_tags(h.store, {"device": "dev-1", "label_state": "unlabelled"})
    # then: the name gives the sample and device, the metadata the rest, the envelope opens
    assert (listed.sample_id, listed.device, listed.model, listed.model_version) == (
        "01S1",
        "dev-1",
        "digits",
        "3",
    )
    assert tagged.blob_name == listed.blob_name
    assert fetch_plaintext(h.store, listed, EnvelopeOpener(keyring(0))) == original
    assert not listed.is_audit
    assert {k: listed.describe()[k] for k in ("strategy", "label", "confidence")} == {
        "strategy": "uncertainty",
        "label": "7",
        "confidence": "0.41",
    }


def test_the_sidecar_is_opt_in_and_follows_its_sample(tmp_path: Path) -> None:
    # given
    h = Harness(tmp_path, config={"storage": {"sidecar": True}})
    item = selected(h.samples, "01S1")
    # when
    h.uploader.accept_selected(item)
    h.pump()
    # then: the sample first, its sidecar last (a sidecar present means its sample is complete)
    name, sidecar_name = "digits/3/2026/01/05/dev-1/01S1.jpg.elenv", "digits/3/2026/01/05/dev-1/01S1.json"
    assert h.store.puts == [name, sidecar_name]
    sidecar = json.loads(h.store.blobs[sidecar_name].data)
    assert sidecar["reason"] == "margin 0.05 < 0.1"
    assert sidecar["prediction"]["label"] == "7"
    assert sidecar["plaintext_sha256"] == item.prediction.frame.sha256
    assert h.store.blobs[name].tags["strategy"] == "uncertainty"
    assert [n.sample_id for n in h.notices] == ["01S1"]


def test_the_claim_survives_the_capture_janitor(h: Harness) -> None:
    # given
    h.uploader.accept_selected(selected(h.samples, "01S1", b"pixels" * 100))
    # when: capture's janitor deletes its copy before the upload
    (h.samples / "frames/01S1.jpg").unlink()
    h.pump()
    # then
    assert h.open_sample("01S1") == b"pixels" * 100


def test_vector_samples_are_sealed_as_json(h: Harness) -> None:
    # given
    item = selected(h.samples, "01V", write=False)
    vector_item = item.model_copy(
        update={"prediction": item.prediction.model_copy(update={"frame": item.prediction.frame.model_copy(
            update={"file_ref": None, "kind": "vector", "vector": [1.0, 2.0], "bytes": None, "sha256": None}
        )})}
    )  # fmt: skip
    # when
    h.uploader.accept_selected(vector_item)
    h.pump()
    # then
    assert json.loads(h.open_sample("01V"))["vector"] == [1.0, 2.0]


def test_a_redelivered_sample_is_taken_once(h: Harness) -> None:
    item = selected(h.samples, "01S1")
    assert h.uploader.accept_selected(item)
    assert not h.uploader.accept_selected(item)
    h.pump()
    assert h.uploader.counters["duplicates"] == 1
    assert len(h.notices) == 1


@pytest.mark.parametrize(
    ("prepare", "category", "reason"),
    [
        (lambda p: p.unlink(), "missing", "missing"),
        (lambda p: p.write_bytes(p.read_bytes()[:10]), "truncated", "truncated"),
    ],
    ids=["missing", "truncated"],
)
def test_missing_or_truncated_files_are_refused_with_the_reason(
    h: Harness, prepare: Callable[[Path], object], category: str, reason: str
) -> None:
    # given
    item = selected(h.samples, "01S1")
    prepare(h.samples / "frames/01S1.jpg")
    # when
    taken = h.uploader.accept_selected(item)
    # then
    assert not taken
    assert h.uploader.counters[f"rejected_{category}"] == 1
    assert reason in h.uploader.stats()["recent_rejections"][0]["reason"]
    assert h.uploader.queue_info()["depth"] == 0


def test_an_outage_backs_off_without_spending_attempts_and_delivers_later(h: Harness) -> None:
    # given
    for i in range(3):
        h.uploader.accept_selected(selected(h.samples, f"01S{i}"))
    h.store.outage = True
    # when: many tries during the outage
    for _ in range(20):
        h.pump(limit=1)
        h.clock.advance(5)
    # then: nothing lost, nothing quarantined
    assert h.uploader.queue_info()["depth"] == 3
    assert h.uploader.db.counts()[QUARANTINED] == 0
    assert "unreachable" in (h.uploader.storage_status()["error"] or "")
    # when the storage is back
    h.store.outage = False
    h.clock.advance(10)
    h.pump()
    # then: each delivered once
    assert sorted(n.sample_id for n in h.notices) == ["01S0", "01S1", "01S2"]
    assert len(h.store.puts) == 3


def test_store_backoff_grows_between_tries(h: Harness) -> None:
    # given
    h.uploader.accept_selected(selected(h.samples, "01S1"))
    h.store.auth_failure = True
    # when
    assert h.pump(limit=1) == 1
    # then: no retry before the backoff elapses
    assert h.pump(limit=1) == 0
    h.clock.advance(8)
    assert h.pump(limit=1) == 1


def test_a_poison_sample_is_quarantined_after_max_attempts_and_can_be_retried(h: Harness) -> None:
    # given: the store refuses this one blob for a reason of its own
    def refuse(operation: str, name: str) -> None:
        if "01BAD" in name:
            raise BlobStoreError(f"{operation} {name!r}: 400 InvalidHeaderValue")

    h.store.fail_hook = refuse
    h.uploader.accept_selected(selected(h.samples, "01BAD"))
    h.uploader.accept_selected(selected(h.samples, "01OK"))
    # when
    for _ in range(10):
        h.pump()
        h.clock.advance(10)
    # then
    entry = h.uploader.db.get("01BAD")
    assert entry is not None
    assert entry.state == QUARANTINED
    assert entry.attempts == 3
    assert "400 InvalidHeaderValue" in (entry.last_error or "")
    assert [n.sample_id for n in h.notices] == ["01OK"]
    # when the cause is fixed and the quarantine retried
    h.store.fail_hook = None
    assert h.uploader.retry_quarantined(None) == 1
    h.pump()
    # then
    assert [n.sample_id for n in h.notices] == ["01OK", "01BAD"]


def test_a_retry_that_finds_its_own_blob_counts_as_success(h: Harness) -> None:
    # given: the first try wrote the blob, then the process died before recording it
    h.uploader.accept_selected(selected(h.samples, "01S1"))
    entry = h.uploader.db.claim_next(h.uploader.now())
    assert entry is not None
    h.uploader.shipper.ship(h.store, entry)
    h.restart()
    # when
    h.pump()
    # then
    assert h.uploader.db.get("01S1").state == DONE  # type: ignore[union-attr]
    assert h.uploader.counters["already_present"] == 1
    assert len(h.store.blobs) == 1


def test_a_different_blob_at_the_name_is_never_overwritten(h: Harness) -> None:
    # given
    h.uploader.accept_selected(selected(h.samples, "01S1"))
    name = "digits/3/2026/01/05/dev-1/01S1.jpg.elenv"
    h.store.write(name, b"someone else's", metadata={"blob_sha256": "0" * 64}, if_none_match=ANY)
    # when
    h.pump()
    # then
    assert h.store.blobs[name].data == b"someone else's"
    entry = h.uploader.db.get("01S1")
    assert entry is not None
    assert entry.state == QUARANTINED
    assert "not overwritten" in (entry.last_error or "")


@pytest.mark.parametrize("size", [5_000, 1_200_000], ids=["in-database", "in-file"])
def test_a_damaged_sealed_entry_is_quarantined(h: Harness, size: int) -> None:
    # given: small envelopes live in the outbox database, large ones in files
    h.uploader.accept_selected(selected(h.samples, "01S1", b"q" * size))
    files = list((h.outbox / "sealed").iterdir())
    if files:
        files[0].write_bytes(files[0].read_bytes()[:-1] + b"\x00")
    else:
        with h.uploader.db.transaction() as conn:
            (data,) = conn.execute("SELECT data FROM sealed_data").fetchone()
            conn.execute("UPDATE sealed_data SET data = ?", (bytes(data[:-1]) + b"\x00",))
    # when: read back from disk (after a restart nothing is held in memory)
    h.restart()
    h.pump()
    # then
    entry = h.uploader.db.get("01S1")
    assert entry is not None
    assert entry.state == QUARANTINED
    assert "damaged" in (entry.last_error or "")
    assert h.store.blobs == {}


def test_after_a_crash_mid_upload_entries_resume_and_stray_files_go(h: Harness) -> None:
    # given: one entry cut off while uploading, and a stray half-written file
    h.uploader.accept_selected(selected(h.samples, "01S1"))
    assert h.uploader.db.claim_next(h.uploader.now()) is not None
    (h.outbox / "sealed" / ".01X.elenv.tmp").write_bytes(b"partial")
    # when
    h.restart()
    # then
    assert h.uploader.db.get("01S1").state == QUEUED  # type: ignore[union-attr]
    assert list((h.outbox / "sealed").iterdir()) == []
    h.pump()
    assert [n.sample_id for n in h.notices] == ["01S1"]


def test_a_done_entrys_file_left_by_a_crash_is_removed_at_restart(h: Harness) -> None:
    # given: a large sample (sealed to a file) recorded as done, but killed before its file went
    h.uploader.accept_selected(selected(h.samples, "01S1", b"q" * 1_200_000))
    [sealed_file] = list((h.outbox / "sealed").iterdir())
    with h.uploader.db.transaction() as conn:
        conn.execute("UPDATE entries SET state = ? WHERE id = ?", (DONE, "01S1"))
    # when
    h.restart()
    # then
    assert not sealed_file.exists()
    assert list((h.outbox / "sealed").iterdir()) == []


def test_samples_wait_unsealed_until_a_key_arrives(tmp_path: Path) -> None:
    # given
    h = Harness(tmp_path, key=None)
    h.uploader.accept_selected(selected(h.samples, "01S1"))
    h.pump()
    assert h.store.blobs == {}
    assert h.uploader.queue_info()["unsealed"] == 1
    # when
    h.reconfigure(encryption={"public_key_pem": public_pem(0)})
    h.uploader.upkeep()
    h.pump()
    # then
    assert h.open_sample("01S1")


def test_after_a_key_rotation_queued_samples_keep_their_key(h: Harness) -> None:
    # given: one sample sealed with key 0, still queued
    h.uploader.accept_selected(selected(h.samples, "01OLD"))
    # when: the twin rotates to key 1, a new sample arrives
    h.reconfigure(encryption={"public_key_pem": public_pem(1)})
    h.uploader.accept_selected(selected(h.samples, "01NEW"))
    h.pump()
    # then
    ids = {n.sample_id: n.key_id for n in h.notices}
    assert ids == {"01OLD": key_id(0), "01NEW": key_id(1)}
    name = "digits/3/2026/01/05/dev-1/01OLD.jpg.elenv"
    import io

    assert read_header(io.BytesIO(h.store.blobs[name].data)).key_id == key_id(0)
    assert h.open_sample("01OLD", ring=keyring(0, 1))
    assert h.open_sample("01NEW", ring=keyring(0, 1))


def test_uploading_order_is_priority_then_age(h: Harness) -> None:
    # given
    for sample_id, priority in (("01A", 0), ("01B", 5), ("01C", 0)):
        h.uploader.accept_selected(selected(h.samples, sample_id, priority=priority))
        h.clock.advance(1)
    # when
    h.pump()
    # then
    assert [n.sample_id for n in h.notices] == ["01B", "01A", "01C"]


def _sealed_size(tmp_path: Path) -> int:
    probe = Harness(tmp_path / "probe")
    probe.uploader.accept_selected(selected(probe.samples, "01P", b"x" * 1000))
    return probe.uploader.db.held_bytes()


def test_the_disk_budget_evicts_lowest_priority_then_oldest_and_counts_it(tmp_path: Path) -> None:
    # given: room for three sealed samples of 1000 bytes
    size = _sealed_size(tmp_path)
    h = Harness(tmp_path / "h", config={"outbox": {"max_bytes": 3 * size + 100}})
    h.store.outage = True
    for sample_id, priority in (("01A", 1), ("01B", 0), ("01C", 0)):
        h.uploader.accept_selected(selected(h.samples, sample_id, b"x" * 1000, priority=priority))
        h.clock.advance(1)
    # when: a fourth arrives, then one that ranks below everything
    assert h.uploader.accept_selected(selected(h.samples, "01D", b"x" * 1000, priority=0))
    assert not h.uploader.accept_selected(selected(h.samples, "01E", b"x" * 1000, priority=-1))
    # then: 01B (priority 0, oldest) went first; 01E was refused on arrival
    states = {e.id: e.state for e in h.uploader.db.by_state("queued", "evicted")}
    assert states == {"01A": "queued", "01B": "evicted", "01C": "queued", "01D": "queued"}
    assert h.uploader.counters["evicted"] == 2
    assert [e["id"] for e in h.uploader.stats()["recent_evictions"]] == ["01B", "01E"]
    assert h.uploader.db.held_bytes() <= 3 * size + 100
    with h.uploader.db.transaction() as conn:
        assert conn.execute("SELECT COUNT(*) FROM sealed_data").fetchone()[0] == 3


def test_the_prediction_log_is_sampled_batched_per_hour_and_sealed(tmp_path: Path) -> None:
    # given
    import gzip

    from tests.unit.uploader_support import prediction

    h = Harness(tmp_path, config={"prediction_log": {"sample_rate": 0.5}})
    h.uploader.accept_selected(selected(h.samples, "01P0003"))
    predictions = [prediction(f"01P{i:04d}") for i in range(200)]
    # when
    logged = h.uploader.accept_predictions(predictions)
    h.uploader.flush_prediction_log(force=True)
    h.pump()
    # then
    assert 60 < logged < 140
    (name,) = [n for n in h.store.blobs if n.startswith("predictions/")]
    assert name.startswith("predictions/dev-1/2026/01/05/12/")
    from edgeloop.envelope import EnvelopeContext, open_bytes

    batch_id = name.rsplit("/", 1)[1].split(".")[0]
    ctx = EnvelopeContext(sample_id=batch_id, device_id="dev-1", content_type="application/x-ndjson+gzip")
    lines = gzip.decompress(
        open_bytes(h.store.blobs[name].data, keyring=keyring(), expected=ctx)
    ).splitlines()
    records = [json.loads(line) for line in lines]
    assert len(records) == logged
    assert all("vector" not in r and r["schema"] == "edgeloop.prediction-log/1" for r in records)
    selected_flags = {r["sample_id"]: r["selected"] for r in records}
    assert selected_flags.get("01P0003", True) is True
    assert sum(selected_flags.values()) <= 1
    assert h.uploader.db.pending_count() == 0


def test_prediction_log_batches_are_cut_by_size_and_age(tmp_path: Path) -> None:
    from tests.unit.uploader_support import prediction

    h = Harness(tmp_path, config={"prediction_log": {"max_batch": 10, "max_age_s": 60}})
    h.uploader.accept_predictions([prediction(f"01P{i:04d}") for i in range(25)])
    # when: not old yet -> only full batches
    assert h.uploader.flush_prediction_log() == 2
    # when: old enough -> the rest
    h.clock.advance(61)
    assert h.uploader.flush_prediction_log() == 1
    assert h.uploader.db.pending_count() == 0


def test_set_credentials_replaces_the_store_and_a_twin_change_replaces_it_again(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    # given
    caplog.set_level(logging.DEBUG)
    sas = "https://acct.blob.core.windows.net/data?sv=2024&sig=TOPSECRET"
    # when
    described = h.uploader.set_credentials(sas)
    # then
    assert described == {"kind": "sas_url", "source": "method:setCredentials"}
    assert h.credentials[-1].secret == sas
    # when the twin's credentials change
    h.reconfigure(storage={"connection_string": "AccountName=x;AccountKey=TWINSECRET"})
    # then
    assert h.credentials[-1].source == "twin:storage.connection_string"
    # and no secret reached the logs, the stats or the queue report
    shown = caplog.text + json.dumps(h.uploader.stats()) + json.dumps(h.uploader.queue_info())
    shown += json.dumps(h.config.model_dump(mode="json"))
    assert "TOPSECRET" not in shown
    assert "TWINSECRET" not in shown


def test_notices_are_resent_when_the_hub_was_away(h: Harness) -> None:
    # given
    failing: list[int] = []

    def notify(notices: list[UploadedNotice]) -> None:
        failing.append(len(notices))
        if len(failing) == 1:
            raise ConnectionError("hub away")
        h.notices.extend(notices)

    h.uploader.notify = notify
    h.uploader.accept_selected(selected(h.samples, "01S1"))
    # when
    h.pump()
    assert h.notices == []
    h.uploader.upkeep()
    # then
    assert [n.sample_id for n in h.notices] == ["01S1"]


@pytest.mark.parametrize(
    ("attempt", "low", "high"), [(1, 0.5, 1.0), (2, 1.0, 2.0), (4, 4.0, 8.0), (30, 5.0, 10.0)]
)
def test_backoff_doubles_with_jitter_up_to_the_cap(attempt: int, low: float, high: float) -> None:
    config = RetryConfig(initial_backoff_s=1.0, max_backoff_s=10.0, jitter=0.5)
    rng = random.Random(1)
    delays = [backoff_delay(attempt, config, rng) for _ in range(200)]
    assert all(low <= d <= high for d in delays)
    assert max(delays) - min(delays) > (high - low) / 2


def test_queue_report_has_depth_age_and_bytes(h: Harness) -> None:
    # given
    h.uploader.accept_selected(selected(h.samples, "01S1"))
    h.clock.advance(42)
    # when
    queue = h.uploader.queue_info()
    # then
    assert queue["depth"] == 1
    assert queue["oldest_age_s"] == pytest.approx(42)
    assert queue["bytes"] > 0
    assert queue["states"][UPLOADING] == 0


def test_a_batch_is_accepted_in_one_commit_and_a_repeated_id_once(h: Harness) -> None:
    # given
    items = [selected(h.samples, "01B1"), selected(h.samples, "01B2")]
    # when
    taken = h.uploader.accept_selected_batch([*items, items[0]])
    h.pump()
    # then
    assert taken == 2
    assert h.uploader.counters["duplicates"] == 1
    assert sorted(n.sample_id for n in h.notices) == ["01B1", "01B2"]


def test_a_batch_the_database_cannot_record_is_refused_whole_naming_the_full_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the disk fills between sealing a message's samples and their commit
    h = Harness(tmp_path)
    real = h.uploader.db.transaction

    @contextmanager
    def full(*, durable: bool = False, size: int = 0) -> Iterator[Any]:
        with real(durable=durable, size=size) as conn:
            yield conn
            raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(h.uploader.db, "transaction", full)
    items = [selected(h.samples, f"01F{i:03d}", b"y" * 300_000) for i in range(3)]
    # when
    h.uploader.accept_selected_batch(items)
    monkeypatch.undo()
    # then: none is recorded or left on disk, each refusal names the full disk
    assert sum(h.uploader.db.counts().values()) == 0
    assert list((h.outbox / "sealed").iterdir()) == []
    stats = h.uploader.stats()
    assert stats["counters"]["rejected_disk_full"] == 3
    assert all("disk is full" in r["reason"] for r in stats["recent_rejections"])
    # and the next message, with room again, is accepted
    assert h.uploader.accept_selected(selected(h.samples, "01F999", b"z" * 1000))


def test_samples_committed_whose_log_sync_failed_stay_and_are_uploaded_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the log's fsync after the commit fails (an I/O error of the volume)
    h = Harness(tmp_path)

    def broken() -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(h.uploader.db, "_sync_log", broken)
    items = [selected(h.samples, f"01G{i:03d}") for i in range(3)]
    # when
    h.uploader.accept_selected_batch(items)
    monkeypatch.undo()
    h.pump()
    # then: the rows the database holds are not refused, and each is uploaded once
    assert h.uploader.counters["rejected"] == 0
    assert sorted(n.sample_id for n in h.notices) == ["01G000", "01G001", "01G002"]
    assert len(h.store.puts) == 3


def test_notices_say_what_each_entry_recorded_done_holds_read_without_parsing_its_info(h: Harness) -> None:
    # given: one sample with a trace context and strategy, one without a trace context
    with_trace = selected(h.samples, "01N1")
    without = selected(h.samples, "01N2").model_copy(update={"traceparent": None, "strategy": "drift"})
    assert h.uploader.accept_selected_batch([with_trace, without]) == 2
    # when: both are uploaded and their notices sent
    h.pump()
    # then: each notice carries that entry's strategy, trace context, name, size and key
    entries = {e.id: e for e in h.uploader.db.by_state(DONE)}
    got = {n.sample_id: n for n in h.notices}
    assert (got["01N1"].strategy, got["01N1"].traceparent) == ("uncertainty", TRACEPARENT)
    assert (got["01N2"].strategy, got["01N2"].traceparent) == ("drift", None)
    for sample_id, notice in got.items():
        entry = entries[sample_id]
        assert (notice.blob_name, notice.bytes, notice.key_id) == (entry.blob_name, entry.size, key_id(0))
        assert (
            notice.plaintext_sha256
            == entry.plaintext_sha256
            == hashlib.sha256((h.samples / f"frames/{sample_id}.jpg").read_bytes()).hexdigest()
        )
    assert h.uploader.db.unnotified_records() == []


def test_the_disk_reserve_counts_the_database_free_pages_only_when_the_volume_is_short(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: the database holds freed pages (two envelopes uploaded and deleted)
    for sample_id in ("01R1", "01R2"):
        assert h.uploader.accept_selected(selected(h.samples, sample_id, bytes(range(256)) * 800))
    h.pump()
    db = h.uploader.db
    reusable = db.reusable_bytes()
    assert reusable > 300_000
    asked: list[int] = []
    real_reusable = db.reusable_bytes
    monkeypatch.setattr(db, "reusable_bytes", lambda: asked.append(1) or real_reusable())
    reserve = 64 * 1024 * 1024
    block = 4096

    def volume(free: int) -> Callable[[Any], Any]:
        blocks = 100 * reserve // block  # a tenth of the volume is over the reserve
        stat = {"f_bavail": free // block, "f_frsize": block, "f_blocks": blocks}
        return lambda _path: type("Volume", (), stat)()

    # when: the volume alone has room: the free pages are not asked for
    monkeypatch.setattr("edgeloop_uploader.budget.os.statvfs", volume(reserve + 1_000_000))
    assert h.uploader.accept_selected(selected(h.samples, "01R3", b"a" * 10_000))
    assert asked == []
    # when: the volume is short of the reserve by less than the free pages hold: accepted
    monkeypatch.setattr("edgeloop_uploader.budget.os.statvfs", volume(reserve - 100_000))
    assert h.uploader.accept_selected(selected(h.samples, "01R4", b"b" * 10_000))
    assert asked == [1]
    # when: short by more than the free pages hold: refused as a full disk
    monkeypatch.setattr("edgeloop_uploader.budget.os.statvfs", volume(reserve - reusable - 100_000))
    assert not h.uploader.accept_selected(selected(h.samples, "01R5", b"c" * 10_000))
    assert h.uploader.counters["rejected_disk_full"] == 1


@pytest.mark.parametrize(("spare", "taken"), [(0, True), (-1, False)])
def test_a_small_sample_is_budgeted_at_its_envelope_size_and_a_refused_one_leaves_nothing(
    tmp_path: Path, spare: int, taken: bool
) -> None:
    # given: a budget of exactly the envelope's size (or a byte less): the plaintext fits both
    data = b"\xff\xd8 a frame" * 1000
    context = EnvelopeContext(sample_id="01E1", device_id="dev-1", content_type="image/jpeg")
    envelope = sealed_size(
        len(data), public_key=PublicKey.from_pem(public_pem(0)), context=context, chunk_size=65536
    )
    assert envelope > len(data) + 100
    h = Harness(tmp_path, config={"outbox": {"max_bytes": envelope + spare}})
    # when
    accepted = h.uploader.accept_selected(selected(h.samples, "01E1", data))
    # then: taken at its envelope's size, or refused with nothing kept nor counted as claimed
    assert accepted is taken
    counters = h.uploader.counters
    assert counters["claimed_by_seal"] == counters["accepted"] == int(taken)
    assert counters["evicted"] == int(not taken)
    if taken:
        assert h.uploader.db.get("01E1").size == envelope  # type: ignore[union-attr]
    else:
        assert sum(h.uploader.db.counts().values()) == 0
        assert h.uploader.core.sealed_cache.pop("01E1") is None
        assert list((h.outbox / "sealed").iterdir()) == []


def test_a_message_s_entries_are_inserted_in_order_whatever_their_columns(tmp_path: Path) -> None:
    # given: rows whose columns differ (one without a key id nor info) between rows alike
    from edgeloop_uploader.outbox import OutboxDB

    db = OutboxDB(str(tmp_path / "outbox.db"))
    common = {"kind": "sample", "state": QUEUED, "priority": 0, "created_at": 1.0, "updated_at": 1.0}
    names = {"blob_name": "b", "sidecar_name": None, "content_type": "image/png"}
    sealed = {"sealed_path": ":outbox.db:", "plain_path": None, "size": 3,
              "plaintext_sha256": "p", "ciphertext_sha256": "c"}  # fmt: skip
    rows = [
        {"id": "a", **common, **names, **sealed, "key_id": "k", "info": {"strategy": "s"}},
        {"id": "b", **common, **names, **sealed},
        {"id": "c", **common, **names, **sealed, "key_id": "k", "info": {}},
        {"id": "d", **common, **names, **sealed, "key_id": "k", "info": {"n": 1}},
    ]
    # when
    with db.transaction() as conn:
        db.store_sealed_all(conn, [("a", b"A"), ("c", b"C")])
        db.insert_all(conn, rows)
    # then: one entry each, claimed in the order given (same priority and time: by insertion)
    claimed = db.claim_ready(2.0, limit=10)
    assert [e.id for e in claimed] == ["a", "b", "c", "d"]
    assert [e.info for e in claimed] == [{"strategy": "s"}, {}, {}, {"n": 1}]
    assert [e.key_id for e in claimed] == ["k", None, "k", "k"]
    assert (db.sealed_bytes("a"), db.sealed_bytes("c"), db.sealed_bytes("d")) == (b"A", b"C", None)
    db.close()
