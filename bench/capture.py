"""Capture throughput for one video source next to bare OpenCV loops doing the same work.

All read the same generated 640x480 MJPG video, in alternating rounds in one run. The capture
side is the whole module (source worker, resize check, dHash, SHA-256, atomic write,
references batched and sent) under the runtime with the in-memory hub client; an unchanged MJPG
frame is stored as read (its own JPEG), so the headline baseline is a bare loop that reads each
frame's JPEG packet and decodes it once, and nothing else. Capture itself decodes such a packet
only grey at 1/8 of its size (for the dHash), so the same loop with that decode instead is
printed beside it: the like-for-like figure, all of whose difference is capture's plumbing. A
bare ``read`` +
``imencode`` loop at the same quality is printed beside it (the work capture does when it must
encode: resized, grey or another format). A further loop adds one file per frame (temp +
rename) to the bare decode+encode loop, to show how much of the
difference is the file system's. A fourth runs the module again with a state folder, so that it
writes where the source got to after each sent batch (temp, fsync, rename): the cost of keeping
progress across restarts.

    python -m bench.capture [--frames 300] [--rounds 3]

``--source folder`` measures instead a folder source over the digits pipeline's frames (64x64
PNG files, stored as read), keeping progress in a state folder as a deployment does, against a
bare loop that reads each file, decodes it and takes its dHash: the work the pipeline's bare
loop does for capture's part, so all of the difference is capture's plumbing (the file on the
volume, its reference, the hand-offs, batching, progress). It writes
``bench/results/capture_folder.json``.

    python -m bench.capture --source folder [--frames 1600] [--rounds 3]

``--workdir DIR`` puts the input, the volume and the state folder under ``DIR`` instead of the
system's temporary folder: on a memory-backed one (``/dev/shm``) the file system's share of the
figures (creating a file costs from 0.01 to 0.8 ms of CPU on a disk, with what else it holds and
deleted lately) stops drowning capture's own.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from edgeloop_capture import CaptureModule
from edgeloop_capture.dhash import dhash
from edgeloop_capture.progress_book import ProgressBook
from edgeloop_capture.testing import write_video

from bench import workdir
from edgeloop.contracts import FrameRef
from edgeloop.runtime import ModuleRuntime, OutboundMessage
from edgeloop.runtime.fake import FakeHubClient

QUALITY = 90


def bare_loop(video: Path, folder: Path | None = None) -> tuple[int, float]:
    """Frames decoded and JPEG-encoded by a plain OpenCV loop, and the seconds it took. With
    ``folder``, also what any capture must do on a volume: one file per frame, written to a temp
    name and renamed (the file system's share of the cost, for reference)."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    frames = 0
    while True:
        ok, image = cap.read()
        if not ok:
            break
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
        if folder is not None:
            temp = folder / f"{frames:06d}.jpg.tmp"
            with open(temp, "xb") as fh:
                fh.write(buf.tobytes())
            os.replace(temp, folder / f"{frames:06d}.jpg")
        frames += ok
    cap.release()
    return frames, time.perf_counter() - start


def bare_as_read_loop(
    video: Path, folder: Path | None = None, *, decode: int = cv2.IMREAD_COLOR
) -> tuple[int, float]:
    """Frames read as their JPEG packets and decoded once by a plain OpenCV loop (what any
    capture storing MJPG frames as read must do), and the seconds it took. With ``folder``,
    each packet is also written to a file of its own (temp + rename); ``decode`` is the
    ``imdecode`` flag (``IMREAD_REDUCED_GRAYSCALE_8``: the preview capture decodes)."""
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    if not cap.set(cv2.CAP_PROP_FORMAT, -1):
        raise SystemExit(f"{video}: OpenCV cannot hand out its frames as packets")
    frames = 0
    while cap.grab():
        ok, packet = cap.retrieve()
        if not ok or cv2.imdecode(packet, decode) is None:
            raise SystemExit(f"{video}: frame {frames} is not a decodable JPEG packet")
        if folder is not None:
            temp = folder / f"{frames:06d}.jpg.tmp"
            with open(temp, "xb") as fh:
                fh.write(packet.tobytes())
            os.replace(temp, folder / f"{frames:06d}.jpg")
        frames += 1
    cap.release()
    return frames, time.perf_counter() - start


class CountingHub(FakeHubClient):
    """The in-memory hub, announcing when ``expected`` references have been sent."""

    def __init__(self, desired: dict[str, Any], expected: int) -> None:
        super().__init__(desired)
        self.expected = expected
        self.count = 0
        self.done = threading.Event()

    def send(self, message: OutboundMessage) -> None:
        super().send(message)
        self.count += int(message.properties.get("batch_size", "1"))
        if self.count >= self.expected:
            self.done.set()


def capture_module(
    video: Path, volume: Path, expected: int, state: Path | None = None
) -> tuple[int, float, int]:
    """Frames written and references sent by the capture module, the seconds it took, and the
    progress writes (with ``state``)."""
    hub = CountingHub(
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
        },
        expected,
    )
    stored, elapsed, module = run_capture(hub, volume, state)
    return stored, elapsed, module.progress.writes


def run_capture(hub: CountingHub, volume: Path, state: Path | None) -> tuple[int, float, CaptureModule]:
    """Run the capture module on ``hub`` until it has sent what the hub expects: the frames
    both stored and sent, the seconds it took, and the module."""
    module = CaptureModule(volume, progress=ProgressBook.in_folder(state))
    runtime = ModuleRuntime(module, client=hub, tick_interval=0.5)
    start = time.perf_counter()
    thread = threading.Thread(target=runtime.run)
    thread.start()
    hub.done.wait(120)
    elapsed = time.perf_counter() - start
    sent = hub.count
    runtime.request_stop("bench over")
    thread.join(30)
    refs = [item for item in hub.sent_items("frames") if isinstance(item, FrameRef)]
    files = sum(1 for ref in refs if ref.file_ref and (volume / ref.file_ref).is_file())
    return min(files, sent), elapsed, module


def bare_folder_loop(paths: list[Path]) -> tuple[int, float]:
    """Files read, decoded and dHashed by a plain loop, and the seconds it took."""
    start = time.perf_counter()
    for path in paths:
        image = cv2.imdecode(np.frombuffer(path.read_bytes(), np.uint8), cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f"{path}: not a decodable image")
        dhash(image)
    return len(paths), time.perf_counter() - start


def capture_folder(folder: Path, volume: Path, expected: int, state: Path) -> tuple[int, float, int, int]:
    """Capture on one folder source (PNG stored as read, progress kept in ``state``): frames
    stored and sent, seconds, messages and progress writes."""
    source = {"id": "bench", "kind": "folder", "path": str(folder), "settle_s": 0, "format": "png"}
    hub = CountingHub({"sources": [source], "janitor": {"interval_s": 3600}}, expected)
    stored, elapsed, module = run_capture(hub, volume, state)
    return stored, elapsed, len(hub.sent), module.progress.writes


def main_folder(frames: int, rounds: int, workdir: str | None = None) -> int:
    """Capture on a folder of the digits frames against the bare read + decode + dHash loop."""
    from bench.pipeline import write_frames

    fps: dict[str, list[float]] = {"bare": [], "capture": []}
    cpu_ms: dict[str, list[float]] = {"bare": [], "capture": []}
    messages: list[int] = []
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-", dir=workdir) as tmp:
        paths = write_frames(Path(tmp) / "frames", frames, seed=7)
        for round_ in range(rounds):
            cpu = time.process_time()
            n, seconds = bare_folder_loop(paths)
            cpu_ms["bare"].append((time.process_time() - cpu) / n * 1000)
            fps["bare"].append(n / seconds)
            cpu = time.process_time()
            n, seconds, sent, _ = capture_folder(
                Path(tmp) / "frames", Path(tmp) / f"volume{round_}", frames, Path(tmp) / f"state{round_}"
            )
            cpu_ms["capture"].append((time.process_time() - cpu) / max(n, 1) * 1000)
            if n != frames:
                raise SystemExit(f"capture delivered {n} of {frames} frames")
            fps["capture"].append(n / seconds)
            messages.append(sent)
            print(
                f"round {round_ + 1}: bare read+decode+dHash {fps['bare'][-1]:6.1f} frames/s "
                f"({cpu_ms['bare'][-1]:.3f} CPU ms a frame), capture {fps['capture'][-1]:6.1f} frames/s "
                f"({cpu_ms['capture'][-1]:.3f} CPU ms a frame, {sent} messages)"
            )
    median = {side: statistics.median(v) for side, v in fps.items()}
    cpu_median = {side: statistics.median(v) for side, v in cpu_ms.items()}
    result: dict[str, Any] = {
        "source": "folder",
        "frames": frames,
        "size": "64x64 PNG",
        "fps": fps,
        "fps_median": median,
        "ratio": median["capture"] / median["bare"],
        "cpu_ms_per_frame": cpu_ms,
        "cpu_ms_per_frame_median": cpu_median,
        "cpu_ratio": cpu_median["capture"] / cpu_median["bare"],
        "messages": messages,
        "workdir": describe_folder(workdir),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    print(
        f"median: bare {median['bare']:.1f} frames/s, capture {median['capture']:.1f} frames/s, "
        f"ratio {result['ratio']:.2f}; CPU a frame: bare {cpu_median['bare']:.3f} ms, capture "
        f"{cpu_median['capture']:.3f} ms (all threads), {result['cpu_ratio']:.2f}x; "
        f"load average {result['load_average'][0]:.1f} on {result['cpu_count']} cores"
    )
    return write_result(result, "capture_folder.json")


def describe_folder(folder: str | None) -> dict[str, Any]:
    """The work folder (``--workdir``, else the system's temporary folder) and what creating a
    file costs there, printed and kept with the result."""
    found = workdir.describe(None if folder is None else Path(folder))
    print(workdir.line(found))
    return found


def write_result(result: dict[str, Any], name: str) -> int:
    out = Path(__file__).parent / "results" / name
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written {out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=None, help="frames (video: 300, folder: 1600)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of each side")
    parser.add_argument(
        "--workdir",
        default=None,
        help="where the input, volume and state go (default: the system's temporary folder)",
    )
    parser.add_argument(
        "--source",
        choices=("video", "folder"),
        default="video",
        help="video: a 640x480 MJPG file; folder: the digits pipeline's 64x64 PNG frames",
    )
    args = parser.parse_args(argv)
    if args.source == "folder":
        return main_folder(args.frames or 1600, args.rounds, args.workdir)
    args.frames = args.frames or 300
    bare_fps: list[float] = []
    as_read_fps: list[float] = []
    preview_fps: list[float] = []
    as_read_files_fps: list[float] = []
    files_fps: list[float] = []
    capture_fps: list[float] = []
    kept_fps: list[float] = []
    writes: list[int] = []
    cpu_ms: dict[str, list[float]] = {
        "bare": [],
        "bare_as_read": [],
        "bare_as_read_preview": [],
        "bare_as_read_files": [],
        "bare_files": [],
        "capture": [],
        "capture_kept": [],
    }
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-", dir=args.workdir) as tmp:
        video = write_video(Path(tmp) / "bench.avi", args.frames, width=640, height=480)
        for round_ in range(args.rounds):
            cpu = time.process_time()
            n, seconds = bare_loop(video)
            cpu_ms["bare"].append((time.process_time() - cpu) / n * 1000)
            bare_fps.append(n / seconds)
            cpu = time.process_time()
            n, seconds = bare_as_read_loop(video)
            cpu_ms["bare_as_read"].append((time.process_time() - cpu) / n * 1000)
            as_read_fps.append(n / seconds)
            cpu = time.process_time()
            n, seconds = bare_as_read_loop(video, decode=cv2.IMREAD_REDUCED_GRAYSCALE_8)
            cpu_ms["bare_as_read_preview"].append((time.process_time() - cpu) / n * 1000)
            preview_fps.append(n / seconds)
            cpu = time.process_time()
            n, seconds = bare_as_read_loop(video, Path(tmp) / f"as_read{round_}")
            cpu_ms["bare_as_read_files"].append((time.process_time() - cpu) / n * 1000)
            as_read_files_fps.append(n / seconds)
            cpu = time.process_time()
            n, seconds = bare_loop(video, Path(tmp) / f"files{round_}")
            cpu_ms["bare_files"].append((time.process_time() - cpu) / n * 1000)
            files_fps.append(n / seconds)
            volume = Path(tmp) / f"volume{round_}"
            cpu = time.process_time()
            n, seconds, _ = capture_module(video, volume, args.frames)
            cpu_ms["capture"].append((time.process_time() - cpu) / max(n, 1) * 1000)
            if n != args.frames:
                raise SystemExit(f"capture delivered {n} of {args.frames} frames")
            capture_fps.append(n / seconds)
            cpu = time.process_time()
            n, seconds, written = capture_module(
                video, Path(tmp) / f"kept{round_}", args.frames, state=Path(tmp) / f"state{round_}"
            )
            cpu_ms["capture_kept"].append((time.process_time() - cpu) / max(n, 1) * 1000)
            if n != args.frames:
                raise SystemExit(f"capture with progress kept delivered {n} of {args.frames} frames")
            kept_fps.append(n / seconds)
            writes.append(written)
            print(
                f"round {round_ + 1}: bare as read {as_read_fps[-1]:6.1f} frames/s "
                f"(preview decode {preview_fps[-1]:6.1f}), "
                f"bare decode+encode {bare_fps[-1]:6.1f}, bare+files {files_fps[-1]:6.1f}, "
                f"capture {capture_fps[-1]:6.1f}, capture keeping progress {kept_fps[-1]:6.1f} "
                f"({written} progress writes)"
            )
    result: dict[str, Any] = {
        "frames": args.frames,
        "size": "640x480",
        "jpeg_quality": QUALITY,
        "bare_as_read_fps_median": statistics.median(as_read_fps),
        "bare_fps_median": statistics.median(bare_fps),
        "capture_fps_median": statistics.median(capture_fps),
        "ratio": statistics.median(capture_fps) / statistics.median(as_read_fps),
        "ratio_to_decode_encode": statistics.median(capture_fps) / statistics.median(bare_fps),
        "bare_as_read_preview_fps_median": statistics.median(preview_fps),
        "ratio_to_as_read_preview": statistics.median(capture_fps) / statistics.median(preview_fps),
        "bare_as_read_files_fps_median": statistics.median(as_read_files_fps),
        "ratio_to_as_read_files": statistics.median(capture_fps) / statistics.median(as_read_files_fps),
        "bare_files_fps_median": statistics.median(files_fps),
        "ratio_to_bare_files": statistics.median(capture_fps) / statistics.median(files_fps),
        "capture_kept_fps_median": statistics.median(kept_fps),
        "ratio_kept_to_capture": statistics.median(kept_fps) / statistics.median(capture_fps),
        "progress_writes": writes,
        "capture_kept_fps": kept_fps,
        "bare_files_fps": files_fps,
        "bare_fps": bare_fps,
        "bare_as_read_fps": as_read_fps,
        "bare_as_read_preview_fps": preview_fps,
        "capture_fps": capture_fps,
        "workdir": describe_folder(args.workdir),
        "cpu_ms_per_frame_median": {side: statistics.median(v) for side, v in cpu_ms.items()},
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
    }
    print(
        f"median: bare as read {result['bare_as_read_fps_median']:.1f} frames/s, capture "
        f"{result['capture_fps_median']:.1f} frames/s, ratio {result['ratio']:.2f} (target >= 0.9); "
        f"ratio to bare as read with capture's preview decode "
        f"({result['bare_as_read_preview_fps_median']:.1f}) {result['ratio_to_as_read_preview']:.2f}; "
        f"ratio to bare decode+encode ({result['bare_fps_median']:.1f}) "
        f"{result['ratio_to_decode_encode']:.2f}; ratio to bare as read + files "
        f"({result['bare_as_read_files_fps_median']:.1f}) {result['ratio_to_as_read_files']:.2f}; "
        f"ratio to bare+files ({result['bare_files_fps_median']:.1f}) {result['ratio_to_bare_files']:.2f}"
    )
    print(
        f"keeping progress: {result['capture_kept_fps_median']:.1f} frames/s, "
        f"ratio to capture without it {result['ratio_kept_to_capture']:.2f} "
        f"({statistics.median(writes):.0f} writes for {args.frames} frames)"
    )
    cpu = result["cpu_ms_per_frame_median"]
    print(
        f"CPU per frame: bare as read {cpu['bare_as_read']:.2f} ms "
        f"(preview decode {cpu['bare_as_read_preview']:.2f}) "
        f"(+ files {cpu['bare_as_read_files']:.2f}), bare decode+encode {cpu['bare']:.2f} ms, "
        f"bare+files {cpu['bare_files']:.2f} ms, "
        f"capture {cpu['capture']:.2f} ms, keeping progress {cpu['capture_kept']:.2f} ms "
        f"(all threads; the module's stages spread it over cores); "
        f"load average {result['load_average'][0]:.1f} on {result['cpu_count']} cores"
    )
    return write_result(result, "capture.json")


if __name__ == "__main__":
    raise SystemExit(main())
