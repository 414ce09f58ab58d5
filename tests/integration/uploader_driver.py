"""Run the uploader module as a process fed by an in-memory hub, for crash tests.

    python -m tests.integration.uploader_driver --samples DIR --outbox DIR --notices FILE

Every ``frames/*.jpg`` under the samples folder is pushed on ``selected`` at start (as edgeHub
redelivers unacknowledged messages after a restart); each ``uploaded`` notice is appended to the
notices file as a JSON line. Storage and key come from the environment, as in a container.
Exits 0 once the outbox is empty and every sample was announced, unless ``--stay``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

from edgeloop_uploader.module import UploaderModule

from edgeloop.contracts import FrameRef, Prediction, SelectedSample
from edgeloop.runtime import ModuleRuntime, OutboundMessage
from edgeloop.runtime.fake import FakeHubClient


class FileHub(FakeHubClient):
    def __init__(self, desired: dict[str, object], notices: Path) -> None:
        super().__init__(desired)
        self._out = open(notices, "a", encoding="utf-8")  # noqa: SIM115 - closed at exit
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> None:
        super().send(message)
        with self._lock:
            self._out.write(message.body.decode("utf-8") + "\n")
            self._out.flush()


def selected_for(path: Path, samples: Path) -> SelectedSample:
    data = path.read_bytes()
    sample_id = path.stem
    frame = FrameRef(
        sample_id=sample_id,
        source_id="cam0",
        seq=0,
        captured_at=datetime(2026, 1, 5, 12, tzinfo=UTC),
        kind="image",
        file_ref=str(path.relative_to(samples)),
        content_type="image/jpeg",
        bytes=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
    )
    prediction = Prediction(
        sample_id=sample_id, frame=frame, status="ok", model_name="digits", model_version="1", label="3"
    )
    return SelectedSample(
        sample_id=sample_id,
        prediction=prediction,
        strategy="random",
        reason="crash test",
        selected_at=datetime(2026, 1, 5, 12, tzinfo=UTC),
        traceparent=f"00-{hashlib.md5(sample_id.encode()).hexdigest()}-00f067aa0ba902b7-01",
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=Path, required=True)
    parser.add_argument("--outbox", type=Path, required=True)
    parser.add_argument("--notices", type=Path, required=True)
    parser.add_argument("--desired", default="{}", help="twin desired properties as JSON")
    parser.add_argument("--stay", action="store_true")
    args = parser.parse_args()
    hub = FileHub(json.loads(args.desired), args.notices)
    module = UploaderModule.from_environment(
        {**os.environ, "EDGELOOP_SAMPLES_DIR": str(args.samples), "EDGELOOP_OUTBOX_DIR": str(args.outbox)}
    )
    runtime = ModuleRuntime(module, client=hub, device_id="dev-crash", tick_interval=0.1)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    while module.uploader is None:
        time.sleep(0.01)
    files = sorted((args.samples / "frames").glob("*.jpg"))
    hub.push_input("selected", [selected_for(p, args.samples) for p in files], max_batch=16)
    print(f"fed {len(files)}", flush=True)
    while True:
        time.sleep(0.1)
        if args.stay:
            continue
        uploader = module.uploader
        seen = uploader.counters["accepted"] + uploader.counters["duplicates"] + uploader.counters["rejected"]
        drained = uploader.queue_info()["depth"] == 0 and not uploader.db.unnotified_records()
        if seen >= len(files) and drained:
            break
    runtime.request_stop("done")
    thread.join(30)
    return 0


if __name__ == "__main__":
    sys.exit(main())
