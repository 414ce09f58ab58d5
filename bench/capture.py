"""Capture throughput for one video source next to a bare OpenCV decode+encode loop.

Both read the same generated 640x480 MJPG video and encode JPEG at the same quality, in
alternating rounds in one run. The capture side is the whole module (source worker, resize
check, dHash, encode, SHA-256, atomic write, references batched and sent) under the runtime
with the in-memory hub client; the bare side is ``read`` + ``imencode`` and nothing else.

    python -m bench.capture [--frames 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
from edgeloop_capture import CaptureModule
from edgeloop_capture.testing import write_video

from edgeloop.contracts import FrameRef
from edgeloop.runtime import ModuleRuntime
from edgeloop.runtime.fake import FakeHubClient

QUALITY = 90


def bare_loop(video: Path) -> tuple[int, float]:
    """Frames decoded and JPEG-encoded per second by a plain OpenCV loop."""
    start = time.perf_counter()
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    frames = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        ok, _buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        frames += ok
    cap.release()
    return frames, time.perf_counter() - start


def capture_module(video: Path, volume: Path, expected: int) -> tuple[int, float]:
    """Frames written and references sent per second by the capture module."""
    hub = FakeHubClient(
        {
            "sources": [
                {
                    "id": "bench",
                    "kind": "video",
                    "path": str(video),
                    "realtime": False,
                    "jpeg_quality": QUALITY,
                }
            ],
            "janitor": {"interval_s": 3600},
        }
    )
    runtime = ModuleRuntime(CaptureModule(volume), client=hub, tick_interval=0.5)
    start = time.perf_counter()
    thread = threading.Thread(target=runtime.run)
    thread.start()
    deadline = start + 120
    sent = 0
    while time.perf_counter() < deadline:
        sent = sum(int(m.properties.get("batch_size", "1")) for m in list(hub.sent))
        if sent >= expected:
            break
        time.sleep(0.002)
    elapsed = time.perf_counter() - start
    runtime.request_stop("bench over")
    thread.join(30)
    refs = [item for item in hub.sent_items("frames") if isinstance(item, FrameRef)]
    files = sum(1 for ref in refs if ref.file_ref and (volume / ref.file_ref).is_file())
    return min(files, sent), elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300, help="frames in the generated video")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each side")
    args = parser.parse_args(argv)
    bare_fps: list[float] = []
    capture_fps: list[float] = []
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-") as tmp:
        video = write_video(Path(tmp) / "bench.avi", args.frames, width=640, height=480)
        for round_ in range(args.rounds):
            n, seconds = bare_loop(video)
            bare_fps.append(n / seconds)
            volume = Path(tmp) / f"volume{round_}"
            n, seconds = capture_module(video, volume, args.frames)
            if n != args.frames:
                raise SystemExit(f"capture delivered {n} of {args.frames} frames")
            capture_fps.append(n / seconds)
            print(f"round {round_ + 1}: bare {bare_fps[-1]:7.1f} frames/s, capture {capture_fps[-1]:7.1f}")
    result: dict[str, Any] = {
        "frames": args.frames,
        "size": "640x480",
        "jpeg_quality": QUALITY,
        "bare_fps_median": statistics.median(bare_fps),
        "capture_fps_median": statistics.median(capture_fps),
        "ratio": statistics.median(capture_fps) / statistics.median(bare_fps),
        "bare_fps": bare_fps,
        "capture_fps": capture_fps,
    }
    print(
        f"median: bare {result['bare_fps_median']:.1f} frames/s, capture {result['capture_fps_median']:.1f} "
        f"frames/s, ratio {result['ratio']:.2f} (target >= 0.9)"
    )
    out = Path(__file__).parent / "results" / "capture.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
