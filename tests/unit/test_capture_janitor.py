"""The janitor: TTL, byte budget oldest first, claims by move or hard link, stale temp files."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from edgeloop_capture.ids import SampleIds
from edgeloop_capture.janitor import Janitor
from edgeloop_capture.writer import SampleWriter

from edgeloop.clock import FakeClock

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


class Volume:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.clock = FakeClock(T0)
        self.writer = SampleWriter(root)
        self.ids = SampleIds()

    def sample(self, size: int = 100) -> Path:
        now = self.clock.now()
        written = self.writer.write(b"x" * size, sample_id=self.ids.new(now), captured_at=now, ext="jpg")
        return written.path

    def janitor(self, *, ttl_s: float = 3600, max_bytes: int = 0) -> Janitor:
        return Janitor(self.root, clock=self.clock, ttl_s=ttl_s, max_bytes=max_bytes, stale_temp_s=300)


@pytest.fixture
def volume(tmp_path: Path) -> Volume:
    return Volume(tmp_path)


def test_samples_older_than_the_ttl_are_dropped_and_counted(volume: Volume) -> None:
    # given: one sample every 10 minutes for an hour
    paths = []
    for _ in range(7):
        paths.append(volume.sample())
        volume.clock.advance(600)
    janitor = volume.janitor(ttl_s=1800)
    # when: now = T0 + 70 min, so samples from T0 .. T0+40 min are 30 min old or more
    result = janitor.run_once()
    # then
    assert result.dropped == {"ttl": 5}
    assert [p.exists() for p in paths] == [False] * 5 + [True] * 2
    assert janitor.stats()["dropped"] == {"ttl": 5}
    assert janitor.stats()["droppedBytes"] == 500
    assert result.files == 2


def test_the_ttl_is_checked_per_sample_inside_a_minute_bucket(volume: Volume) -> None:
    # given: two samples 30 s apart in one minute bucket
    first = volume.sample()
    volume.clock.advance(30)
    second = volume.sample()
    volume.clock.advance(100)
    # when: the TTL cut-off (now - 110 s) lies between them
    volume.janitor(ttl_s=110).run_once()
    # then
    assert not first.exists()
    assert second.exists()


def test_over_budget_the_oldest_unclaimed_go_first(volume: Volume) -> None:
    # given: 10 samples of 100 bytes, budget 450
    paths = []
    for _ in range(10):
        paths.append(volume.sample(100))
        volume.clock.advance(20)
    # when
    result = volume.janitor(max_bytes=450).run_once()
    # then
    assert result.dropped == {"budget": 6}
    assert [p.exists() for p in paths] == [False] * 6 + [True] * 4
    assert result.bytes == 400


def test_claimed_samples_are_not_drops(volume: Volume, tmp_path: Path) -> None:
    # given: one sample moved away, one hard-linked by the claimer, one unclaimed
    moved, linked, unclaimed = volume.sample(), volume.sample(), volume.sample()
    outbox = tmp_path / "outbox"
    outbox.mkdir()
    os.replace(moved, outbox / moved.name)
    os.link(linked, outbox / linked.name)
    volume.clock.advance(7200)
    janitor = volume.janitor(ttl_s=3600)
    # when
    result = janitor.run_once()
    # then: capture's link of the claimed sample is released, the claimer's copy stays
    assert result.dropped == {"ttl": 1}
    assert result.released == 1
    assert not linked.exists()
    assert (outbox / linked.name).exists()
    assert (outbox / moved.name).exists()
    assert not unclaimed.exists()


def test_a_claim_between_scan_and_delete_is_not_counted_as_a_drop(volume: Volume, tmp_path: Path) -> None:
    # given: the janitor has listed the bucket, then the claimer hard-links the sample
    path = volume.sample()
    janitor = volume.janitor(ttl_s=3600)
    janitor.run_once()
    os.link(path, tmp_path / "claimed.jpg")
    volume.clock.advance(7200)
    # when
    result = janitor.run_once()
    # then
    assert result.dropped == {}
    assert janitor.released == 1


def test_empty_past_buckets_and_stale_temp_files_are_removed(volume: Volume) -> None:
    # given
    volume.sample()
    incoming = volume.root / "capture" / ".incoming"
    stale = incoming / "dead.jpg.tmp"
    stale.write_bytes(b"half")
    os.utime(stale, (0, 0))
    volume.clock.advance(7200)
    # when
    result = volume.janitor(ttl_s=60).run_once()
    # then
    assert result.stale_temp == 1
    assert not stale.exists()
    assert [p.name for p in (volume.root / "capture").iterdir()] == [".incoming"]


def test_new_samples_in_a_listed_bucket_are_seen(volume: Volume) -> None:
    # given
    janitor = volume.janitor(max_bytes=250)
    volume.sample(100)
    janitor.run_once()
    # when: two more samples land in the same (cached) bucket
    volume.sample(100)
    volume.sample(100)
    result = janitor.run_once()
    # then
    assert result.dropped == {"budget": 1}
    assert result.files == 2


def test_an_empty_volume_is_fine(volume: Volume) -> None:
    # when
    result = volume.janitor().run_once()
    # then
    assert (result.files, result.bytes, result.dropped) == (0, 0, {})


def test_files_that_are_not_samples_use_their_modification_time(volume: Volume) -> None:
    # given: a foreign file in the bucket the TTL cut-off falls in, modified long ago
    volume.clock.advance(40)
    sample = volume.sample()
    foreign = sample.parent / "notes.txt"
    foreign.write_text("x")
    old = (T0 - timedelta(days=1)).timestamp()
    os.utime(foreign, (old, old))
    volume.clock.advance(3600 - 20)
    # when: cut-off = T0 + 20 s, inside the 12:00 bucket
    volume.janitor(ttl_s=3600).run_once()
    # then
    assert not foreign.exists()
    assert sample.exists()
