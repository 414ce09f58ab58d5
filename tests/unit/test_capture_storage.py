"""Sample ids, dHash and the atomic writer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeloop_capture.dhash import dhash, hamming
from edgeloop_capture.ids import SampleIds, id_time
from edgeloop_capture.testing import pattern
from edgeloop_capture.writer import SampleWriter

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def test_sample_ids_sort_by_time_and_stay_unique_within_a_millisecond() -> None:
    # given
    ids = SampleIds()
    times = [T0 + timedelta(milliseconds=ms) for ms in (0, 0, 0, 1, 5, 5, 1000)]
    # when
    made = [ids.new(t) for t in times]
    # then
    assert made == sorted(made)
    assert len(set(made)) == len(made)
    assert all(len(i) == 26 for i in made)
    assert id_time(made[-1]) == T0 + timedelta(seconds=1)


def test_id_time_refuses_what_is_not_an_id() -> None:
    with pytest.raises(ValueError, match="not a sample id"):
        id_time("img_0001")


def test_dhash_is_16_hex_digits_and_stable_under_small_changes() -> None:
    # given
    image = pattern(3, 320, 240)
    noisy = cv2.add(image, np.full_like(image, 3))
    other = pattern(20, 320, 240)
    # when
    h, h_noisy, h_other = dhash(image), dhash(noisy), dhash(other)
    # then
    assert len(h) == 16
    assert int(h, 16) >= 0
    assert hamming(h, h_noisy) <= 4
    assert hamming(h, h_other) > hamming(h, h_noisy)


def test_dhash_of_a_known_gradient() -> None:
    # given: brightness rises left to right, so every cell is darker than its right neighbour
    rising = np.tile(np.arange(0, 180, dtype=np.uint8), (90, 1))
    # then
    assert dhash(rising) == "ffffffffffffffff"
    assert dhash(rising[:, ::-1].copy()) == "0000000000000000"


def test_writer_puts_samples_in_minute_buckets_atomically(tmp_path: Path) -> None:
    # given
    writer = SampleWriter(tmp_path)
    # when
    written = writer.write(b"abc", sample_id="01ABC", captured_at=T0, ext="jpg")
    # then
    assert written.file_ref == "capture/20260105T1200/01ABC.jpg"
    assert (tmp_path / written.file_ref).read_bytes() == b"abc"
    assert written.sha256 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert written.size == 3
    assert list((tmp_path / "capture" / ".incoming").iterdir()) == []


def test_writer_buckets_follow_the_minute_of_each_sample(tmp_path: Path) -> None:
    # given: samples of two minutes, out of order (sources share the writer), one in another zone
    writer = SampleWriter(tmp_path)
    later = T0 + timedelta(seconds=60)
    times = [T0, T0 + timedelta(seconds=59.9), later, T0, later.astimezone(timezone(timedelta(hours=2)))]
    # when
    refs = [
        writer.write(b"x", sample_id=f"S{i}", captured_at=t, ext="png").file_ref for i, t in enumerate(times)
    ]
    # then: each in the bucket its own time names (as strftime gives it)
    assert refs == [f"capture/{t.strftime('%Y%m%dT%H%M')}/S{i}.png" for i, t in enumerate(times)]
    assert [ref.split("/")[1] for ref in refs[:4]] == [
        "20260105T1200",
        "20260105T1200",
        "20260105T1201",
        "20260105T1200",
    ]


def test_writer_leaves_no_temp_file_when_the_write_fails(tmp_path: Path) -> None:
    # given: the bucket path is taken by a file, so the rename fails
    writer = SampleWriter(tmp_path)
    writer.write(b"x", sample_id="A", captured_at=T0, ext="jpg")
    (tmp_path / "capture" / "20260105T1200" / "B.jpg").mkdir()
    # when
    with pytest.raises(OSError):
        writer.write(b"y", sample_id="B", captured_at=T0, ext="jpg")
    # then
    assert list((tmp_path / "capture" / ".incoming").iterdir()) == []
