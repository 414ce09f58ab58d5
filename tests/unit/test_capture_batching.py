"""Capture's cheaper per-frame path: files (and MJPG video frames) already in the stored format
are stored as read, and the sender waits a short window for fuller messages when references come
faster than it sends."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeloop_capture.encoded import stored_as_read
from edgeloop_capture.ids import SampleIds
from edgeloop_capture.pipeline import FramePipeline
from edgeloop_capture.sender import FrameSender
from edgeloop_capture.sources.base import Captured
from edgeloop_capture.sources.mjpeg import complete_jpeg
from edgeloop_capture.testing import write_video
from edgeloop_capture.writer import SampleWriter

from edgeloop.contracts import FrameRef
from tests.support import wait_for
from tests.unit.capture_support import Capture
from tests.unit.test_capture_module import folder_settings

AT = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def encoded(image: np.ndarray, ext: str) -> bytes:
    ok, buf = cv2.imencode(ext, image)
    assert ok
    return buf.tobytes()


def colour(seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(48, 64, 3), dtype=np.uint8)


def store(tmp_path: Path, data: bytes, **settings: object) -> tuple[FrameRef, bytes]:
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    ref = FramePipeline(SampleWriter(tmp_path), SampleIds()).process(
        folder_settings(**settings), Captured(image=image, encoded=data), seq=0, captured_at=AT
    )
    assert ref.file_ref is not None
    return ref, (tmp_path / ref.file_ref).read_bytes()


@pytest.mark.parametrize(("ext", "fmt"), [(".png", "png"), (".jpg", "jpeg")])
def test_a_file_in_the_stored_format_is_stored_as_read(tmp_path: Path, ext: str, fmt: str) -> None:
    # given: a file already in the format capture stores, not resized
    data = encoded(colour(), ext)
    # when
    ref, stored = store(tmp_path, data, format=fmt, png_compression=9, jpeg_quality=20)
    # then: its bytes, not an encode at the source's settings
    assert stored == data
    assert (ref.width, ref.height, ref.bytes) == (64, 48, len(data))


@pytest.mark.parametrize(
    "settings",
    [{"format": "jpeg"}, {"format": "png", "max_width": 32}, {"format": "png", "grayscale": True}],
    ids=["other format", "resized", "turned grey"],
)
def test_a_frame_changed_or_in_another_format_is_encoded(tmp_path: Path, settings: dict[str, object]) -> None:
    # given
    data = encoded(colour(), ".png")
    # when
    ref, stored = store(tmp_path, data, **settings)
    # then
    assert stored != data
    assert cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_UNCHANGED) is not None
    assert ref.bytes == len(stored)


def test_only_plain_8_bit_pngs_pass() -> None:
    grey = np.zeros((8, 8), np.uint8)
    assert stored_as_read(encoded(colour(), ".png"), "png")
    assert stored_as_read(encoded(grey, ".png"), "png")
    assert not stored_as_read(encoded(np.zeros((8, 8, 4), np.uint8), ".png"), "png")  # alpha
    assert not stored_as_read(encoded(np.zeros((8, 8), np.uint16), ".png"), "png")  # 16-bit
    assert not stored_as_read(encoded(colour(), ".png"), "jpeg")
    assert not stored_as_read(b"\x89PNG", "png")


def test_the_folder_source_stores_its_png_files_as_read(tmp_path: Path) -> None:
    # given: PNG files in the folder, the source storing PNG
    folder = tmp_path / "input" / "pngs"
    folder.mkdir(parents=True)
    files = [encoded(colour(seed), ".png") for seed in range(3)]
    for i, data in enumerate(files):
        (folder / f"f{i}.png").write_bytes(data)
    source = {"id": "pngs", "kind": "folder", "path": "input/pngs", "format": "png", "settle_s": 0}
    # when
    with Capture(tmp_path, {"sources": [source]}) as capture:
        wait_for(lambda: len(capture.frames()) == 3)
        refs = capture.frames()
    # then
    stored = sorted((tmp_path / r.file_ref).read_bytes() for r in refs if r.file_ref)
    assert stored == sorted(files)


class _Recorder:
    def __init__(self) -> None:
        self.batches: list[list[FrameRef]] = []
        self.sent = threading.Event()

    def send(self, refs: object) -> None:
        assert isinstance(refs, list)
        self.batches.append(list(refs))
        self.sent.set()


def _refs(n: int, first: int = 0) -> list[FrameRef]:
    return [
        FrameRef(sample_id=f"s{i}", source_id="t", seq=i, kind="vector", vector=[1.0], captured_at=AT)
        for i in range(first, first + n)
    ]


def test_references_that_queue_up_wait_a_window_for_a_fuller_message() -> None:
    # given: a sender with a 300 ms window, three references ready at once
    rec = _Recorder()
    sender = FrameSender(rec.send, batch_max=10, batch_window_s=0.3)
    for ref in _refs(3):
        sender.put(ref, lambda: False)
    # when: it starts, and two more come within the window
    sender.start()
    time.sleep(0.1)
    for ref in _refs(2, first=3):
        sender.put(ref, lambda: False)
    assert rec.sent.wait(2.0)
    sender.stop()
    # then: one message of five
    assert [len(b) for b in rec.batches] == [5]


def test_a_full_batch_goes_without_waiting_the_window() -> None:
    rec = _Recorder()
    sender = FrameSender(rec.send, batch_max=4, batch_window_s=5.0)
    for ref in _refs(4):
        sender.put(ref, lambda: False)
    started = time.monotonic()
    sender.start()
    assert rec.sent.wait(2.0)
    assert time.monotonic() - started < 1.0
    sender.stop()
    assert [len(b) for b in rec.batches] == [4]


def test_a_reference_that_comes_alone_goes_at_once() -> None:
    # given: a long window, one reference (a paced source keeping up)
    rec = _Recorder()
    sender = FrameSender(rec.send, batch_max=10, batch_window_s=5.0)
    sender.start()
    started = time.monotonic()
    sender.put(_refs(1)[0], lambda: False)
    # then: sent without waiting the window
    assert rec.sent.wait(2.0)
    assert time.monotonic() - started < 1.0
    sender.stop()


@pytest.mark.parametrize(
    ("settings", "as_read"),
    [({}, True), ({"max_width": 32}, False), ({"format": "png"}, False)],
    ids=["jpeg unchanged", "resized", "png"],
)
def test_an_mjpg_video_stores_each_frame_as_the_file_holds_it_when_unchanged(
    tmp_path: Path, settings: dict[str, object], as_read: bool
) -> None:
    # given: an MJPG video (its frames are JPEG images held whole in the file)
    video = write_video(tmp_path / "input" / "clip.avi", 6)
    held = video.read_bytes()
    source = {"id": "cam", "kind": "video", "path": "input/clip.avi", "realtime": False, **settings}
    # when
    with Capture(tmp_path, {"sources": [source]}) as capture:
        wait_for(lambda: len(capture.frames()) == 6)
        refs = capture.frames()
    # then: stored as the file holds them (no encode), or encoded when changed
    stored = [(tmp_path / r.file_ref).read_bytes() for r in refs if r.file_ref]
    assert len(stored) == 6
    assert all((data in held) is as_read for data in stored)
    assert [r.seq for r in refs] == list(range(6))
    assert all(cv2.imdecode(np.frombuffer(d, np.uint8), cv2.IMREAD_COLOR) is not None for d in stored)


def test_a_packet_that_is_not_a_whole_jpeg_is_not_stored_as_read() -> None:
    whole = np.frombuffer(encoded(colour(), ".jpg"), np.uint8).reshape(1, -1)
    assert complete_jpeg(whole) is not None
    without_tables = whole.tobytes().replace(b"\xff\xc4", b"\xff\xfe")
    assert complete_jpeg(np.frombuffer(without_tables, np.uint8).reshape(1, -1)) is None
    assert complete_jpeg(colour()) is None  # decoded pixels, not a packet


def test_references_coming_slower_than_half_the_window_go_without_it() -> None:
    # given: a 0.5 s window, and three references that came 0.3 s apart while the sender was
    # busy: the window would bring fewer than two more at this pace
    rec = _Recorder()
    sender = FrameSender(rec.send, batch_max=10, batch_window_s=0.5)
    for i, ref in enumerate(_refs(3)):
        if i:
            time.sleep(0.3)
        sender.put(ref, lambda: False)
    assert not sender.window_pays()
    # when: it starts
    started = time.monotonic()
    sender.start()
    # then: the three go at once, without waiting the window
    assert rec.sent.wait(2.0)
    assert time.monotonic() - started < 0.35
    sender.stop()
    assert [len(b) for b in rec.batches] == [3]
    assert sender.counters["window_skipped"] == 1


def test_references_coming_fast_wait_the_window_again_after_a_slow_spell() -> None:
    # given: references that came slowly, then a burst of them back to back
    rec = _Recorder()
    sender = FrameSender(rec.send, batch_max=10, batch_window_s=0.3)
    for i, ref in enumerate(_refs(2)):
        if i:
            time.sleep(0.3)
        sender.put(ref, lambda: False)
    for ref in _refs(10, first=2)[:6]:
        sender.put(ref, lambda: False)
    assert sender.window_pays()
    # when: it starts, and two more come within the window
    sender.start()
    time.sleep(0.1)
    for ref in _refs(2, first=8):
        sender.put(ref, lambda: False)
    assert rec.sent.wait(2.0)
    sender.stop()
    # then: it waited for them: one message of ten
    assert [len(b) for b in rec.batches] == [10]
