"""Each source kind driven through its worker and the real pipeline, on generated media."""

from __future__ import annotations

import functools
import hashlib
import http.server
import shutil
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from edgeloop_capture.config import parse_source
from edgeloop_capture.ids import SampleIds
from edgeloop_capture.pipeline import FramePipeline
from edgeloop_capture.sources import KINDS, Captured, SourceError
from edgeloop_capture.sources.folder import FolderSettings, FolderSource
from edgeloop_capture.testing import (
    write_corrupt_jpeg,
    write_images,
    write_sensor_csv,
    write_sensor_jsonl,
    write_video,
)
from edgeloop_capture.worker import SourceWorker
from edgeloop_capture.writer import SampleWriter

from edgeloop.clock import Clock, FakeClock, SystemClock
from edgeloop.contracts import FrameRef
from edgeloop.errors import MethodError
from tests.support import wait_for


class Run:
    """One source on its worker thread, collecting the references it emits."""

    def __init__(self, root: Path, definition: dict[str, Any], clock: Clock | None = None) -> None:
        self.root = root
        self.refs: list[FrameRef] = []
        self.module_paused = False
        settings = parse_source(definition, 0)
        self.worker = SourceWorker(
            settings,
            KINDS[settings.kind].build(settings),
            pipeline=FramePipeline(SampleWriter(root), SampleIds()),
            emit=self._emit,
            clock=clock or SystemClock(),
            root=root,
            module_paused=lambda: self.module_paused,
            retry_initial_s=0.05,
            retry_max_s=0.2,
        )

    def _emit(self, ref: FrameRef, receipt: Any) -> bool:
        self.refs.append(ref)
        return True

    def __enter__(self) -> Run:
        self.worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()

    @property
    def state(self) -> str:
        return str(self.worker.health()["state"])

    def attr(self, name: str) -> list[str]:
        return [ref.attributes[name] for ref in self.refs]


@pytest.fixture
def video(tmp_path: Path) -> Path:
    return write_video(tmp_path / "input" / "clip.avi", 20)


def video_source(**extra: Any) -> dict[str, Any]:
    return {"id": "cam", "kind": "video", "path": "input/clip.avi", "realtime": False, **extra}


# -- video ----------------------------------------------------------------------------------


def test_video_frames_land_on_the_volume_with_their_facts(tmp_path: Path, video: Path) -> None:
    # when
    with Run(tmp_path, video_source()) as run:
        wait_for(lambda: run.state == "finished")
    # then
    assert run.attr("frame_index") == [str(i) for i in range(20)]
    assert [ref.seq for ref in run.refs] == list(range(20))
    first = run.refs[0]
    data = (tmp_path / str(first.file_ref)).read_bytes()
    assert first.sha256 == hashlib.sha256(data).hexdigest()
    assert first.bytes == len(data)
    assert (first.width, first.height, first.content_type) == (64, 48, "image/jpeg")
    assert first.dhash is not None
    assert len(first.dhash) == 16
    assert first.source_id == "cam"
    assert first.attributes["file_name"] == "clip.avi"
    assert first.captured_at.utcoffset() is not None
    assert [r.sample_id for r in run.refs] == sorted(r.sample_id for r in run.refs)
    assert run.worker.health()["frames"] == 20


@pytest.mark.parametrize(
    ("extra", "indexes"),
    [
        ({"every_n": 4}, [0, 4, 8, 12, 16]),
        ({"fps": 5}, [0, 5, 10, 15]),  # the clip is 25 frames/s
        ({"fps": 5, "every_n": 2}, [0, 6, 10, 16]),
    ],
)
def test_video_rate_settings_pick_frames_by_media_time(
    tmp_path: Path, video: Path, extra: dict[str, Any], indexes: list[int]
) -> None:
    # when
    with Run(tmp_path, video_source(**extra)) as run:
        wait_for(lambda: run.state == "finished")
    # then
    assert run.attr("frame_index") == [str(i) for i in indexes]


def test_a_looping_video_starts_again(tmp_path: Path, video: Path) -> None:
    # when
    with Run(tmp_path, video_source(loop=True)) as run:
        wait_for(lambda: len(run.refs) >= 45)
    # then
    assert run.attr("frame_index")[18:22] == ["18", "19", "0", "1"]
    assert run.attr("loop_pass")[41] == "2"
    assert run.refs[44].seq == 44


def test_realtime_replay_paces_by_the_injected_clock(tmp_path: Path, video: Path) -> None:
    # given
    clock = FakeClock()
    start = clock.monotonic()
    # when: 20 frames at 25 frames/s replayed in real time
    with Run(tmp_path, video_source(realtime=True), clock=clock) as run:
        wait_for(lambda: run.state == "finished")
    # then: the fake clock moved by the clip's duration, not a second of it was waited
    assert clock.monotonic() - start == pytest.approx(19 / 25, abs=0.06)
    assert len(run.refs) == 20


def test_resize_grey_and_png_settings(tmp_path: Path, video: Path) -> None:
    # when
    with Run(tmp_path, video_source(max_width=32, grayscale=True, format="png")) as run:
        wait_for(lambda: run.state == "finished")
    # then
    ref = run.refs[0]
    image = cv2.imread(str(tmp_path / str(ref.file_ref)), cv2.IMREAD_UNCHANGED)
    assert (ref.width, ref.height, ref.content_type) == (32, 24, "image/png")
    assert str(ref.file_ref).endswith(".png")
    assert image.shape == (24, 32)


def test_a_missing_video_is_retried_until_it_appears(tmp_path: Path) -> None:
    # given
    with Run(tmp_path, video_source()) as run:
        wait_for(lambda: run.state == "retrying")
        health = run.worker.health()
        # when
        write_video(tmp_path / "input" / "clip.avi", 5)
        wait_for(lambda: run.state == "finished")
    # then
    assert "not found" in str(health["lastError"])
    assert health["errors"] >= 1
    assert len(run.refs) == 5


def test_a_file_that_is_not_a_video_is_an_error(tmp_path: Path) -> None:
    # given
    write_corrupt_jpeg(tmp_path / "input" / "clip.avi")
    # when
    with Run(tmp_path, video_source()) as run:
        wait_for(lambda: run.worker.errors >= 2)
        state = run.state
    # then
    assert state == "retrying"
    assert run.refs == []


# -- folder ---------------------------------------------------------------------------------


def folder_source(**extra: Any) -> dict[str, Any]:
    return {"id": "dir", "kind": "folder", "path": "in", "poll_s": 0.05, "settle_s": 0, **extra}


def test_folder_takes_existing_files_in_order_then_new_ones(tmp_path: Path) -> None:
    # given
    write_images(tmp_path / "in", 3)
    with Run(tmp_path, folder_source()) as run:
        wait_for(lambda: len(run.refs) == 3)
        # when
        write_images(tmp_path / "in", 2, start=3)
        wait_for(lambda: len(run.refs) == 5)
        state = run.state
    # then
    assert run.attr("file_name") == [f"img_{i:04d}.png" for i in range(5)]
    assert state == "running"


def test_folder_skips_and_counts_an_unreadable_image(tmp_path: Path) -> None:
    # given
    write_images(tmp_path / "in", 2)
    write_corrupt_jpeg(tmp_path / "in" / "img_0000_broken.jpg")
    (tmp_path / "in" / "readme.txt").write_text("not an image")
    # when
    with Run(tmp_path, folder_source()) as run:
        wait_for(lambda: run.worker.skipped["unreadable_file"] == 1 and len(run.refs) == 2)
    # then
    assert run.attr("file_name") == ["img_0000.png", "img_0001.png"]
    assert "img_0000_broken.jpg" in str(run.worker.health()["lastSkip"])
    assert run.worker.errors == 0


def test_folder_patterns_match_case_blind_and_each_pattern_counts(tmp_path: Path) -> None:
    # given: one expression stands for the patterns
    settings = parse_source(folder_source(patterns=["*.PNG", "frame_?.jpg"]), 0)
    assert isinstance(settings, FolderSettings)
    source = FolderSource(settings)
    names = ["a.png", "B.Png", "FRAME_1.JPG", "frame_x.jpg", "frame_10.jpg", "a.png.tmp", "a.jpg", "x.png\nb"]
    # when
    wanted = [name for name in names if source._wanted(name)]
    # then: each pattern matches as fnmatch would, whatever the case of name or pattern
    assert wanted == ["a.png", "B.Png", "FRAME_1.JPG", "frame_x.jpg"]


def test_a_folder_that_disappears_and_comes_back(tmp_path: Path) -> None:
    # given
    write_images(tmp_path / "in", 2)
    with Run(tmp_path, folder_source()) as run:
        wait_for(lambda: len(run.refs) == 2)
        # when: the folder goes away
        shutil.rmtree(tmp_path / "in")
        wait_for(lambda: run.state == "retrying")
        # and comes back with a new file
        write_images(tmp_path / "in", 1, start=7)
        wait_for(lambda: len(run.refs) == 3)
    # then
    assert "not found" in str(run.worker.last_error)
    assert run.attr("file_name")[-1] == "img_0007.png"
    assert run.refs[-1].seq == 2


def test_folder_fps_spaces_files_out_on_the_clock(tmp_path: Path) -> None:
    # given
    write_images(tmp_path / "in", 4)
    clock = FakeClock(datetime.now(UTC))  # files are settled by their real modification times
    start = clock.monotonic()
    # when
    with Run(tmp_path, folder_source(fps=2), clock=clock) as run:
        wait_for(lambda: len(run.refs) == 4)
        elapsed = run.refs[-1].captured_at - run.refs[0].captured_at
    # then: four files at 2 per second take 1.5 s of (fake) time
    assert elapsed.total_seconds() == pytest.approx(1.5, abs=0.06)
    assert clock.monotonic() - start >= 1.5


# -- sensor ---------------------------------------------------------------------------------


ROWS = [
    {"timestamp": 100.0, "temp": 20.5, "humidity": 40},
    {"timestamp": 100.5, "temp": "n/a", "humidity": 41},
    {"timestamp": 101.0, "temp": 21.0, "humidity": 42},
]


def test_sensor_csv_replays_vectors_at_recorded_times(tmp_path: Path) -> None:
    # given
    write_sensor_csv(tmp_path / "logs" / "env.csv", ROWS)
    clock = FakeClock()
    start = clock.monotonic()
    definition = {"id": "env", "kind": "sensor", "path": "logs/env.csv", "fields": ["temp", "humidity"]}
    # when
    with Run(tmp_path, {**definition, "speed": 2}, clock=clock) as run:
        wait_for(lambda: run.state == "finished")
    # then
    assert [ref.vector for ref in run.refs] == [[20.5, 40.0], [21.0, 42.0]]
    assert all(ref.kind == "vector" and ref.file_ref is None for ref in run.refs)
    assert run.attr("recorded_at") == ["100.0", "101.0"]
    assert run.worker.skipped["bad_reading"] == 1
    assert "line 3: temp = 'n/a' is not a number" in str(run.worker.last_skip)
    assert clock.monotonic() - start == pytest.approx(0.5, abs=0.06)


def test_sensor_jsonl_skips_bad_lines_and_takes_numeric_fields(tmp_path: Path) -> None:
    # given
    write_sensor_jsonl(
        tmp_path / "v.jsonl",
        [{"x": 1, "y": 2, "unit": "g"}, "{not json", [1, 2], {"x": 3, "y": 4, "unit": "g"}],
    )
    definition = {"id": "vib", "kind": "sensor", "path": "v.jsonl", "realtime": False}
    # when
    with Run(tmp_path, definition) as run:
        wait_for(lambda: run.state == "finished")
    # then
    assert [ref.vector for ref in run.refs] == [[1.0, 2.0], [3.0, 4.0]]
    assert run.attr("fields") == ["x,y", "x,y"]
    assert run.worker.skipped["bad_reading"] == 2


# -- live sources ---------------------------------------------------------------------------


@pytest.fixture
def http_video(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    served = tmp_path / "served"
    write_video(served / "live.avi", 10)
    handler = functools.partial(_QuietHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/live.avi", served
    server.shutdown()
    server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def test_a_stream_that_goes_away_is_retried_and_resumes(tmp_path: Path, http_video: tuple[str, Path]) -> None:
    # given: an HTTP stream; when it ends or fails the source reconnects
    url, served = http_video
    definition = {"id": "net", "kind": "stream", "url": url, "open_timeout_s": 2, "read_timeout_s": 2}
    with Run(tmp_path, definition) as run:
        wait_for(lambda: len(run.refs) >= 10)
        # when: the stream disappears
        (served / "live.avi").unlink()
        wait_for(lambda: run.worker.errors >= 2 and run.state == "retrying")
        seen = len(run.refs)
        # and comes back
        write_video(served / "live.avi", 10)
        wait_for(lambda: len(run.refs) >= seen + 10)
    # then
    assert run.refs[0].attributes["url"] == url
    assert [r.seq for r in run.refs] == list(range(len(run.refs)))


def test_a_missing_camera_is_reported_and_retried(tmp_path: Path) -> None:
    # when
    with Run(tmp_path, {"id": "usb", "kind": "usb", "device": "/dev/video-edgeloop-none"}) as run:
        wait_for(lambda: run.worker.errors >= 2)
        state = run.state
    # then
    assert state == "retrying"
    assert "camera /dev/video-edgeloop-none not present" in str(run.worker.last_error)


def test_live_fps_keeps_frames_by_wall_time(tmp_path: Path) -> None:
    # given: a worker (not started) on a fake clock, 10 frames/s wanted
    clock = FakeClock()
    run = Run(tmp_path, {"id": "s", "kind": "stream", "url": "rtsp://cam/x", "fps": 10}, clock=clock)
    kept = []
    # when: frames arrive every 40 ms for one second
    for i in range(25):
        kept.append(run.worker.keep(i, None))
        clock.advance(0.04)
    # then
    assert sum(kept) == 10
    assert kept[:4] == [True, False, False, True]


# -- pause and snapshot ---------------------------------------------------------------------


def test_a_paused_file_source_keeps_its_place(tmp_path: Path, video: Path) -> None:
    # given
    clock = FakeClock()
    run = Run(tmp_path, video_source(realtime=True, fps=5), clock=clock)
    run.worker.set_paused(True)  # before it starts: on a fake clock it could finish at once
    with run:
        time.sleep(0.2)
        before = len(run.refs)
        assert run.state in ("paused", "starting")
        # when
        run.worker.set_paused(False)
        wait_for(lambda: run.state == "finished")
    # then
    assert before <= 1
    assert run.attr("frame_index") == ["0", "5", "10", "15"]


def test_snapshot_reads_on_from_where_a_paused_source_stopped(tmp_path: Path) -> None:
    # given: a folder source paused after its first file, then two more files arrive
    write_images(tmp_path / "in", 1)
    with Run(tmp_path, folder_source()) as run:
        wait_for(lambda: len(run.refs) == 1)
        run.module_paused = True
        write_images(tmp_path / "in", 2, start=1)
        time.sleep(0.3)
        while_paused = len(run.refs)
        # when
        ref = run.worker.snapshot(timeout=5)
        time.sleep(0.2)
    # then
    assert while_paused == 1
    assert ref.attributes == {"file_name": "img_0001.png", "trigger": "snapshot"}
    assert (tmp_path / str(ref.file_ref)).exists()
    assert len(run.refs) == 2
    assert run.refs[1] == ref


def test_snapshot_of_a_source_paused_before_it_started_opens_it_once(tmp_path: Path, video: Path) -> None:
    # given
    run = Run(tmp_path, video_source())
    run.module_paused = True
    with run:
        wait_for(lambda: run.state == "paused")
        # when
        ref = run.worker.snapshot(timeout=5)
        time.sleep(0.1)
    # then
    assert ref.attributes["frame_index"] == "0"
    assert run.refs == [ref]


def test_snapshot_of_a_finished_source_is_a_conflict(tmp_path: Path, video: Path) -> None:
    # given
    with Run(tmp_path, video_source()) as run:
        wait_for(lambda: run.state == "finished")
        # when / then
        with pytest.raises(MethodError) as err:
            run.worker.snapshot(timeout=1)
    assert err.value.status == 409


def test_generated_media_are_what_they_claim(tmp_path: Path) -> None:
    # given
    path = write_video(tmp_path / "v.avi", 3, width=80, height=60)
    # when
    cap = cv2.VideoCapture(str(path))
    ok, frame = cap.read()
    cap.release()
    # then
    assert ok
    assert frame.shape == (60, 80, 3)
    corrupt = np.fromfile(write_corrupt_jpeg(tmp_path / "c.jpg"), np.uint8)
    assert cv2.imdecode(corrupt, cv2.IMREAD_COLOR) is None


class FlakySource:
    """An in-memory source: fails on the attempts listed, yields one vector otherwise."""

    live = False
    position = None

    def __init__(self, clock: FakeClock, fail_on: set[int], attempts: int) -> None:
        self.clock = clock
        self.fail_on = fail_on
        self.attempts = attempts
        self.started: list[float] = []

    def frames(self, ctl: Any) -> Iterator[Any]:
        attempt = len(self.started)
        self.started.append(self.clock.monotonic())
        if attempt >= self.attempts:
            return
        if attempt not in self.fail_on:
            yield Captured(vector=[float(attempt)])
        raise SourceError(f"attempt {attempt} failed")


def test_backoff_doubles_while_failing_and_starts_afresh_after_frames(tmp_path: Path) -> None:
    # given: attempts 0-3 and 5-6 fail at once, 4 yields a frame and then fails, 7 ends
    clock = FakeClock()
    source = FlakySource(clock, fail_on={0, 1, 2, 3, 5, 6}, attempts=7)
    settings = parse_source({"id": "s", "kind": "sensor", "path": "x.csv"}, 0)
    worker = SourceWorker(
        settings,
        source,
        pipeline=FramePipeline(SampleWriter(tmp_path), SampleIds()),
        emit=lambda ref, receipt: True,
        clock=clock,
        root=tmp_path,
        module_paused=lambda: False,
        retry_initial_s=1.0,
        retry_max_s=4.0,
    )
    # when
    worker.start()
    wait_for(lambda: worker.state == "finished")
    worker.stop()
    # then
    gaps = [round(b - a, 2) for a, b in zip(source.started, source.started[1:], strict=False)]
    assert gaps == [1.0, 2.0, 4.0, 4.0, 1.0, 2.0, 4.0]
    assert worker.errors == 7
    assert worker.frames == 1
