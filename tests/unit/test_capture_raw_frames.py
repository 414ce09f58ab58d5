"""The raw frame path on capture's side: raw frame files and references, the byte-budgeted ring
(eviction counted and named), and the janitor's TTL and release of claimed frames."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeloop_capture.config import CaptureConfig
from edgeloop_capture.ids import SampleIds
from edgeloop_capture.janitor import Janitor
from edgeloop_capture.pipeline import FramePipeline
from edgeloop_capture.ring import RawRing
from edgeloop_capture.sources.base import Captured
from edgeloop_capture.testing import write_images
from edgeloop_capture.writer import FRAMES_DIR, SampleWriter

from edgeloop import rawframe
from edgeloop.clock import FakeClock
from edgeloop.contracts import FrameRef
from tests.support import wait_for
from tests.unit.capture_support import Capture
from tests.unit.test_capture_module import folder_settings

AT = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
FRAME = rawframe.HEADER_SIZE + 48 * 64 * 3


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


def pipeline(root: Path, *, max_bytes: int = 10**9, store: str = "raw") -> FramePipeline:
    p = FramePipeline(
        SampleWriter(root),
        SampleIds(),
        raw_writer=SampleWriter(root, subdir=FRAMES_DIR),
        ring=RawRing(max_bytes=max_bytes),
    )
    p.store_kind = store
    return p


def capture_one(p: FramePipeline, seed: int, **settings: object) -> FrameRef:
    return p.process(folder_settings(**settings), Captured(image=image(seed)), seq=seed, captured_at=AT)


def test_a_raw_frame_is_the_pixels_and_its_reference_says_how_to_read_and_encode_it(tmp_path: Path) -> None:
    # when
    ref = capture_one(pipeline(tmp_path), 1, format="png", png_compression=4)
    # then: the file is under frames/, the pixels exactly, no encoding
    assert ref.file_ref is not None
    assert ref.file_ref.startswith("frames/")
    assert ref.file_ref.endswith(".raw")
    assert np.array_equal(rawframe.read(tmp_path / ref.file_ref, display="x"), image(1))
    assert ref.raw is not None
    assert (ref.raw.channels, ref.raw.dtype, ref.raw.quality) == (3, "uint8", 4)
    assert (ref.content_type, ref.width, ref.height, ref.bytes) == ("image/png", 64, 48, FRAME)
    assert ref.sha256 is None
    assert ref.dhash is not None
    assert not (tmp_path / "capture").exists()


def test_the_jpeg_path_is_unchanged_by_default(tmp_path: Path) -> None:
    ref = capture_one(pipeline(tmp_path, store="jpeg"), 1)
    assert ref.raw is None
    assert ref.file_ref is not None
    assert ref.file_ref.startswith("capture/")
    assert ref.file_ref.endswith(".jpg")
    assert cv2.imread(str(tmp_path / ref.file_ref)) is not None


def test_a_gray_frame_is_one_channel(tmp_path: Path) -> None:
    ref = capture_one(pipeline(tmp_path), 2, grayscale=True)
    assert ref.raw is not None
    assert ref.raw.channels == 1
    assert rawframe.read(tmp_path / str(ref.file_ref), display="x").shape == (48, 64)


def test_the_ring_evicts_the_oldest_unclaimed_first_and_names_them(tmp_path: Path) -> None:
    # given: room for two frames
    p = pipeline(tmp_path, max_bytes=2 * FRAME)
    refs = [capture_one(p, i) for i in range(2)]
    # and the oldest was claimed by the uploader
    first = tmp_path / str(refs[0].file_ref)
    first.rename(rawframe.claimed_path(first))
    # when: three more frames come
    refs += [capture_one(p, i) for i in range(2, 5)]
    # then: the claimed one was released; the next oldest two were evicted and named
    assert p.ring is not None
    stats = p.ring.stats()
    assert stats["evictedUnclaimed"] == 2
    assert stats["evictedUnclaimedRecent"] == [refs[1].sample_id, refs[2].sample_id]
    assert stats["evictedUnclaimedBytes"] == 2 * FRAME
    assert stats["released"] == 1
    assert stats["bytes"] <= 2 * FRAME
    assert [(tmp_path / str(r.file_ref)).exists() for r in refs] == [False, False, False, True, True]
    assert not rawframe.claimed_path(first).exists()


def test_frames_left_by_an_earlier_life_count_against_the_budget_and_go_first(tmp_path: Path) -> None:
    # given: an earlier life wrote three frames
    earlier = pipeline(tmp_path)
    old = [capture_one(earlier, i) for i in range(3)]
    # when: a new life takes them in, with room for three frames, and writes two
    p = pipeline(tmp_path, max_bytes=3 * FRAME)
    assert p.ring is not None
    assert p.ring.adopt(tmp_path / FRAMES_DIR) == 3
    new = [capture_one(p, i) for i in range(3, 5)]
    # then: the two oldest of the earlier life were evicted, by name
    assert p.ring.stats()["evictedUnclaimedRecent"] == [old[0].sample_id, old[1].sample_id]
    assert [(tmp_path / str(r.file_ref)).exists() for r in [*old, *new]] == [False, False, True, True, True]


def test_a_frame_larger_than_the_budget_is_still_written_and_the_older_ones_go(tmp_path: Path) -> None:
    p = pipeline(tmp_path, max_bytes=1)
    refs = [capture_one(p, i) for i in range(3)]
    assert [(tmp_path / str(r.file_ref)).exists() for r in refs] == [False, False, True]
    assert p.ring is not None
    assert p.ring.evicted == 2


def test_the_janitor_releases_claimed_raw_frames_and_drops_expired_ones_by_id(tmp_path: Path) -> None:
    # given: two raw frames, one claimed
    p = pipeline(tmp_path)
    claimed, unclaimed = capture_one(p, 1), capture_one(p, 2)
    path = tmp_path / str(claimed.file_ref)
    path.rename(rawframe.claimed_path(path))
    clock = FakeClock(start=AT)
    janitor = Janitor(
        tmp_path, clock=clock, ttl_s=60, max_bytes=0, stale_temp_s=300, subdir=FRAMES_DIR, volume="frames"
    )
    # when: past the TTL
    clock.advance(timedelta(minutes=5).total_seconds())
    result = janitor.run_once()
    # then
    assert result.released == 1
    assert result.dropped == {"ttl": 1}
    assert janitor.stats()["droppedRecent"] == [unclaimed.sample_id]
    assert list((tmp_path / FRAMES_DIR).rglob("*.raw*")) == []


def test_frames_config_defaults_to_jpeg_and_names_a_bad_store() -> None:
    assert CaptureConfig().frames.store == "jpeg"
    assert CaptureConfig.model_validate({"frames": {"store": "raw"}}).frames.store == "raw"
    with pytest.raises(ValueError, match="store"):
        CaptureConfig.model_validate({"frames": {"store": "npy"}})
    with pytest.raises(ValueError, match=r"frames\.ring"):
        CaptureConfig.model_validate({"frames": {"ring": 1}})


def test_the_module_sends_raw_references_and_reports_the_ring(tmp_path: Path) -> None:
    # given
    write_images(tmp_path / "in", 3)
    desired = {"sources": [folder_settings().model_dump(mode="json")], "frames": {"store": "raw"}}
    # when
    with Capture(tmp_path, desired) as capture:
        wait_for(lambda: len(capture.frames()) == 3)
        stats = capture.module.stats()["frames"]
        wait_for(lambda: "frames" in capture.hub.reported)
        reported = capture.hub.reported["frames"]
    # then
    assert all(f.raw is not None for f in capture.frames())
    for f in capture.frames():
        pixels = rawframe.read(tmp_path / str(f.file_ref), display="x")
        original = cv2.imread(str(tmp_path / "in" / f.attributes["file_name"]))
        assert np.array_equal(pixels, original)
    assert stats["store"] == "raw"
    assert stats["ring"]["frames"] == 3
    assert reported["store"] == "raw"
    assert os.listdir(tmp_path / FRAMES_DIR)
