"""The capture module under the runtime, through the in-memory hub client."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgeloop_capture.config import parse_source
from edgeloop_capture.testing import write_images, write_video

from edgeloop.contracts import FrameRef
from edgeloop.errors import HubError
from edgeloop.runtime import OutboundMessage
from edgeloop.runtime.fake import FakeHubClient
from tests.support import wait_for
from tests.unit.capture_support import Capture


def video(sid: str = "cam", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "kind": "video", "path": "input/clip.avi", "realtime": False, **extra}


def folder(sid: str = "dir", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "kind": "folder", "path": "in", "poll_s": 0.05, "settle_s": 0, **extra}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    write_video(tmp_path / "input" / "clip.avi", 12)
    write_images(tmp_path / "in", 3)
    return tmp_path


@pytest.fixture
def capture(root: Path) -> Iterator[Capture]:
    with Capture(root, {"sources": [video(), folder()]}) as c:
        yield c


def test_frame_references_go_out_on_frames_and_files_on_the_volume(capture: Capture) -> None:
    # when
    wait_for(lambda: len(capture.frames()) == 15)
    # then
    cam = capture.by_source("cam")
    assert [f.attributes["frame_index"] for f in cam] == [str(i) for i in range(12)]
    assert [f.attributes["file_name"] for f in capture.by_source("dir")] == [
        "img_0000.png",
        "img_0001.png",
        "img_0002.png",
    ]
    assert all((capture.root / str(f.file_ref)).is_file() for f in capture.frames())
    message = capture.hub.sent[0]
    assert message.output == "frames"
    assert message.properties["schema"] == "edgeloop.frame/1"
    assert message.content_type == "application/json"
    assert all(f.traceparent and f.traceparent.startswith("00-") for f in cam)


def test_health_is_reported_per_source(capture: Capture) -> None:
    # when
    wait_for(lambda: capture.reported_source("cam").get("state") == "finished")
    wait_for(lambda: capture.reported_source("dir").get("frames") == 3)
    status, stats = capture.call("getStats")
    # then
    assert status == 200
    module = stats["module"]
    assert module["sources"]["cam"]["frames"] == 12
    assert module["sources"]["dir"]["state"] == "running"
    assert module["sender"]["sent"] == 15
    assert "janitor" in capture.hub.reported


def test_a_bad_source_is_rejected_by_name_and_the_others_run(root: Path) -> None:
    # given
    desired = {"sources": [video(), folder(), {"id": "bad", "kind": "stream", "url": "rtsp://x", "fps": 0}]}
    # when
    with Capture(root, desired) as capture:
        wait_for(lambda: len(capture.frames()) == 15)
        wait_for(lambda: "configError" in capture.reported_source("bad"))
        bad = capture.reported_source("bad")
        status, payload = capture.call("snapshot", {"source": "bad"})
    # then
    assert bad["state"] == "invalid"
    assert "'sources.bad.fps' = 0" in bad["configError"]
    assert capture.hub.reported.get("configError") is None
    assert status == 409
    assert "invalid definition" in payload["error"]


def test_a_bad_patch_of_a_running_source_keeps_its_last_good_definition(capture: Capture) -> None:
    # given
    wait_for(lambda: len(capture.by_source("dir")) == 3)
    # when: the folder's patch is bad
    capture.hub.patch_desired({"sources": [video(), folder(poll_s=-1)]})
    wait_for(lambda: "configError" in capture.reported_source("dir"))
    write_images(capture.root / "in", 1, start=3)
    # then: it still runs on the last good definition
    wait_for(lambda: len(capture.by_source("dir")) == 4)
    assert "sources.dir.poll_s" in capture.reported_source("dir")["configError"]
    assert capture.reported_source("dir")["state"] == "running"


def test_a_source_on_another_input_starts_afresh_and_a_removed_one_stops(capture: Capture) -> None:
    # given
    wait_for(lambda: len(capture.by_source("cam")) == 12)
    write_video(capture.root / "input" / "other.avi", 12)
    # when
    capture.hub.patch_desired({"sources": [video(path="input/other.avi", every_n=6)]})
    wait_for(lambda: len(capture.by_source("cam")) == 14)
    wait_for(lambda: "dir" not in capture.hub.reported["sources"])
    # then
    assert [f.attributes["frame_index"] for f in capture.by_source("cam")[12:]] == ["0", "6"]
    assert {f.attributes["file_name"] for f in capture.by_source("cam")[12:]} == {"other.avi"}
    assert set(capture.module.workers) == {"cam"}


def folder_settings(**extra: Any) -> Any:
    return parse_source(folder(**extra), 0)


def test_a_changed_setting_on_the_same_input_goes_on_where_it_was(capture: Capture) -> None:
    # given: the video read to its end, the folder's three files taken
    wait_for(lambda: len(capture.frames()) == 15)
    # when: both get new settings but keep their input
    capture.hub.patch_desired({"sources": [video(every_n=6), folder(fps=50)]})
    wait_for(lambda: getattr(capture.module.workers.get("dir"), "settings", None) == folder_settings(fps=50))
    write_images(capture.root / "in", 1, start=3)
    wait_for(lambda: len(capture.by_source("dir")) == 4)
    wait_for(lambda: capture.reported_source("cam").get("state") == "finished")
    time.sleep(0.3)
    # then: nothing was taken again
    taken = [f.attributes["file_name"] for f in capture.by_source("dir")]
    assert taken == [f"img_{i:04d}.png" for i in range(4)]
    assert len(capture.by_source("cam")) == 12


def test_pause_stops_capturing_until_resume(root: Path) -> None:
    # given
    with Capture(root, {"sources": [folder()]}) as capture:
        wait_for(lambda: len(capture.frames()) == 3)
        # when
        assert capture.call("pause")[0] == 200
        write_images(root / "in", 2, start=3)
        time.sleep(0.3)
        during = len(capture.frames())
        wait_for(lambda: capture.reported_source("dir").get("state") == "paused")
        capture.call("resume")
        wait_for(lambda: len(capture.frames()) == 5)
    # then
    assert during == 3


def test_pause_and_resume_one_source(root: Path) -> None:
    # given
    with Capture(root, {"sources": [folder("a"), folder("b")]}) as capture:
        wait_for(lambda: len(capture.frames()) == 6)
        # when
        status, payload = capture.call("pauseSource", {"source": "a"})
        write_images(root / "in", 1, start=3)
        wait_for(lambda: len(capture.by_source("b")) == 4)
        time.sleep(0.2)
        paused_count = len(capture.by_source("a"))
        capture.call("resumeSource", {"source": "a"})
        wait_for(lambda: len(capture.by_source("a")) == 4)
    # then
    assert (status, payload) == (200, {"source": "a", "paused": True})
    assert paused_count == 3


@pytest.mark.parametrize(
    ("method", "payload", "status"),
    [
        ("pauseSource", {"source": "nope"}, 404),
        ("pauseSource", {}, 400),
        ("resumeSource", {"source": "dir", "extra": 1}, 400),
        ("snapshot", {"source": "nope"}, 404),
        ("snapshot", {"source": "dir", "timeout_s": 0}, 400),
    ],
)
def test_bad_method_calls_are_answered_with_a_reason(
    capture: Capture, method: str, payload: dict[str, Any], status: int
) -> None:
    # when
    got, body = capture.call(method, payload)
    # then
    assert got == status
    assert body["error"]


def test_snapshot_returns_the_reference_of_a_new_frame(root: Path) -> None:
    # given: a folder source with everything taken
    with Capture(root, {"sources": [folder()]}) as capture:
        wait_for(lambda: len(capture.frames()) == 3)
        capture.call("pauseSource", {"source": "dir"})
        write_images(root / "in", 1, start=9)
        # when
        status, payload = capture.call("snapshot", {"source": "dir"})
        wait_for(lambda: len(capture.frames()) == 4)
    # then
    assert status == 200
    ref = FrameRef.model_validate({k: v for k, v in payload.items() if k != "schema"})
    assert ref.attributes == {"file_name": "img_0009.png", "trigger": "snapshot"}
    assert (root / str(ref.file_ref)).is_file()
    assert capture.frames()[-1] == ref


class SlowHub(FakeHubClient):
    """Each send takes a while, as when the hub or the next module falls behind."""

    def send(self, message: OutboundMessage) -> None:
        time.sleep(0.05)
        super().send(message)


def test_references_are_batched_not_dropped_when_the_hub_is_slow(root: Path) -> None:
    # given
    write_video(root / "input" / "clip.avi", 60)
    # when
    with Capture(root, {"sources": [video()], "queue_size": 8}, hub=SlowHub()) as capture:
        wait_for(lambda: len(capture.frames()) == 60)
        sender = capture.module.stats()["sender"]
    # then
    assert len(capture.hub.sent) < 30
    assert [f.seq for f in capture.frames()] == list(range(60))
    assert sender["backpressure_waits"] >= 1


class FlakyHub(FakeHubClient):
    """The first sends fail with an error the runtime does not retry itself (a connection
    error it retries for a while; one that outlasts that window reaches the module like this)."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def send(self, message: OutboundMessage) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise HubError("hub refused the message")
        super().send(message)


def test_failed_sends_are_retried_with_the_same_references(root: Path) -> None:
    # when
    with Capture(root, {"sources": [video()]}, hub=FlakyHub(failures=2)) as capture:
        wait_for(lambda: len(capture.frames()) == 12, timeout=20)
        sender = capture.module.stats()["sender"]
    # then
    assert [f.seq for f in capture.frames()] == list(range(12))
    assert sender["send_errors"] == 2


def test_the_janitor_drops_unclaimed_samples_and_reports_it(root: Path) -> None:
    # given: a short TTL and a frequent janitor
    desired = {"sources": [video()], "janitor": {"ttl_s": 0.5, "interval_s": 0.1}, "report_interval_s": 0.1}
    with Capture(root, desired) as capture:
        wait_for(lambda: len(capture.frames()) == 12)
        # when: nobody claims them
        wait_for(lambda: capture.hub.reported.get("janitor", {}).get("dropped", {}).get("ttl") == 12)
    # then
    assert not any((root / str(f.file_ref)).exists() for f in capture.frames())
    assert capture.module.stats()["janitor"]["droppedBytes"] == sum(f.bytes or 0 for f in capture.frames())
