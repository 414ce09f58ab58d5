"""The capture module as a process under the dev hub, with the real SDK."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from edgeloop_capture.testing import write_images, write_video

from edgeloop.devhub.testing import HubProcess
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import manifest

pytestmark = pytest.mark.integration


def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def upstream_frames(hub: HubProcess) -> list[dict[str, Any]]:
    """Frame references that reached $upstream, batches unpacked."""
    items: list[dict[str, Any]] = []
    for message in hub.upstream():
        body = message["body"]
        assert message["output"] == "frames"
        items.extend(body["items"] if body["schema"] == "edgeloop.batch/1" else [body])
    return items


def test_capture_sends_frame_references_through_the_hub(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given: a volume with a video and an image folder; a twin with both and one bad source
    volume = tmp_path / "samples"
    write_video(volume / "input" / "clip.avi", 12)
    write_images(volume / "input" / "drop", 2)
    desired = {
        "sources": [
            {"id": "cam", "kind": "video", "path": "input/clip.avi", "realtime": False},
            {"id": "drop", "kind": "folder", "path": "input/drop", "poll_s": 0.1, "settle_s": 0},
            {"id": "typo", "kind": "video", "path": "input/clip.avi", "jpeg_quality": 0},
        ]
    }
    doc = manifest(
        ["capture"],
        {"framesUp": "FROM /messages/modules/capture/outputs/frames INTO $upstream"},
        desired={"capture": desired},
        env={"capture": {"EDGELOOP_SAMPLES_DIR": str(volume)}},
    )
    hub = dev_hub(doc)

    # when
    proc = module_process(hub, "capture")
    hub.wait_connected("capture")

    # then: every frame's reference arrives, and the file it names is on the volume
    frames = wait_for(lambda: len(upstream_frames(hub)) >= 14 and upstream_frames(hub), what="14 frames")
    cam = [f for f in frames if f["source_id"] == "cam"]
    assert [f["attributes"]["frame_index"] for f in cam] == [str(i) for i in range(12)]
    assert {f["attributes"]["file_name"] for f in frames if f["source_id"] == "drop"} == {
        "img_0000.png",
        "img_0001.png",
    }
    assert all((volume / f["file_ref"]).is_file() for f in frames)
    reported = hub.wait_reported(
        "capture",
        lambda r: (
            r.get("sources", {}).get("cam", {}).get("state") == "finished"
            and "configError" in r.get("sources", {}).get("typo", {})
        ),
    )
    assert "sources.typo.jpeg_quality" in reported["sources"]["typo"]["configError"]
    assert reported["sources"]["drop"]["state"] == "running"

    # when: the folder is paused, a file arrives, and a snapshot is asked for
    assert hub.invoke("capture", "pauseSource", {"source": "drop"})["status"] == 200
    write_images(volume / "input" / "drop", 1, start=5)
    answer = hub.invoke("capture", "snapshot", {"source": "drop"})

    # then
    assert answer["status"] == 200, answer
    assert answer["payload"]["attributes"] == {"file_name": "img_0005.png", "trigger": "snapshot"}
    assert (volume / answer["payload"]["file_ref"]).is_file()
    assert hub.invoke("capture", "snapshot", {"source": "nope"})["status"] == 404
    assert proc.stop() == 0
