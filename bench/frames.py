"""The two frame paths side by side for 640x480 camera frames: CPU per frame in capture and in
inference, and what the raw path moves to the uploader (encoding the selected frames).

    python -m bench.frames [--frames 200] [--rounds 3] [--selected 0.3]

``jpeg``: capture resizes, hashes (dHash), encodes JPEG, computes its SHA-256 and writes the file
(capture's ``FramePipeline``); inference reads it, checks the SHA-256, decodes and resizes it to
the model's 224x224 RGB input (``Preprocessor.decode_file``). ``raw``: capture hashes and writes
the pixels with their CRC-32 into the frame ring; inference reads and checks them and resizes
(``decode_raw``); the uploader encodes the selected share (``encode_raw_frame``). Raw frames go
to ``/dev/shm`` (memory, as the ``edgeloop-frames`` tmpfs volume on a device), JPEG files to a
temporary folder on disk. Rounds alternate between the paths; the median CPU time per frame of
each is printed with the load average, and written to ``bench/results/frames.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from edgeloop_capture.config import parse_source
from edgeloop_capture.ids import SampleIds
from edgeloop_capture.pipeline import FramePipeline
from edgeloop_capture.ring import RawRing
from edgeloop_capture.sources.base import Captured
from edgeloop_capture.writer import FRAMES_DIR, SampleWriter
from edgeloop_inference.preprocess import Preprocessor
from edgeloop_uploader.rawencode import encode_raw_frame

from edgeloop.contracts import FrameRef
from edgeloop.model_metadata import Preprocess

RESULTS = Path(__file__).resolve().parent / "results" / "frames.json"
WIDTH, HEIGHT = 640, 480


def camera_frames(count: int) -> list[np.ndarray]:
    """Frames with camera-like content (smooth shapes, texture and noise) so JPEG sizes are real."""
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, WIDTH, dtype=np.float32)
    y = np.linspace(0, 1, HEIGHT, dtype=np.float32)[:, None]
    frames = []
    for i in range(count):
        planes = [x * 200 + y * 40, np.roll(x, i * 7) * 180 + y * 0, (1 - x) * 120 + y * 90]
        base = np.stack(planes, axis=2)
        noise = cv2.GaussianBlur(rng.normal(0, 25, (HEIGHT, WIDTH, 3)).astype(np.float32), (5, 5), 0)
        image = np.clip(base + noise, 0, 255).astype(np.uint8)
        cv2.circle(image, (80 + i * 9 % 480, 240), 60, (30, 200, 90), -1)
        frames.append(image)
    return frames


def cpu_per_frame(fn: Callable[[int], None], count: int) -> float:
    """Milliseconds of this process's CPU time per call of ``fn(i)``, over ``count`` calls."""
    started = time.process_time()
    for i in range(count):
        fn(i)
    return (time.process_time() - started) * 1000.0 / count


def capture_round(
    store: str, root: Path, images: list[np.ndarray], count: int
) -> tuple[float, list[FrameRef]]:
    pipeline = FramePipeline(
        SampleWriter(root),
        SampleIds(),
        raw_writer=SampleWriter(root, subdir=FRAMES_DIR),
        ring=RawRing(max_bytes=10 * 1024**3),
    )
    pipeline.store_kind = store
    settings = parse_source({"id": "cam", "kind": "folder", "path": "in", "format": "jpeg"}, 0)
    refs: list[FrameRef] = []

    def one(i: int) -> None:
        captured = Captured(image=images[i % len(images)])
        refs.append(pipeline.process(settings, captured, seq=i, captured_at=datetime.now(UTC)))

    return cpu_per_frame(one, count), refs


def inference_round(root: Path, refs: list[FrameRef]) -> float:
    spec = Preprocess(width=224, height=224, color="rgb", layout="NHWC", scale=1.0)
    pre = Preprocessor.build(spec, ["N", 224, 224, 3])

    def one(i: int) -> None:
        ref = refs[i]
        path = root / str(ref.file_ref)
        if ref.raw is not None:
            pre.decode_raw(path, display=str(ref.file_ref))
        else:
            pre.decode_file(path, display=str(ref.file_ref), sha256=ref.sha256)

    return cpu_per_frame(one, len(refs))


def claim_round(root: Path, refs: list[FrameRef], share: float) -> float:
    """CPU per selected frame for the uploader to encode it (raw path only)."""
    chosen = refs[:: max(1, round(1 / share))] if share > 0 else []
    if not chosen:
        return 0.0

    def one(i: int) -> None:
        ref = chosen[i]
        assert ref.raw is not None
        encode_raw_frame(root / str(ref.file_ref), raw=ref.raw, content_type=ref.content_type, display="b")

    return cpu_per_frame(one, len(chosen))


def one_round(store: str, images: list[np.ndarray], count: int, share: float) -> dict[str, float]:
    memory = Path("/dev/shm")
    parent = memory if store == "raw" and memory.is_dir() else None
    root = Path(tempfile.mkdtemp(prefix=f"edgeloop-bench-{store}-", dir=parent))
    try:
        capture_ms, refs = capture_round(store, root, images, count)
        inference_ms = inference_round(root, refs)
        claim_ms = claim_round(root, refs, share) if store == "raw" else 0.0
        size = statistics.mean(r.bytes or 0 for r in refs)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {"capture_ms": capture_ms, "inference_ms": inference_ms, "claim_ms": claim_ms, "bytes": size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per path per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per path (alternating)")
    parser.add_argument("--selected", type=float, default=0.3, help="share of frames the filter selects")
    args = parser.parse_args(argv)
    images = camera_frames(20)
    runs: dict[str, list[dict[str, float]]] = {"jpeg": [], "raw": []}
    load_before = os.getloadavg()[0]
    for _ in range(args.rounds):
        for store in ("jpeg", "raw"):
            runs[store].append(one_round(store, images, args.frames, args.selected))
    load_after = os.getloadavg()[0]
    result: dict[str, Any] = {
        "frames": args.frames,
        "rounds": args.rounds,
        "selected": args.selected,
        "size": f"{WIDTH}x{HEIGHT}",
        "load_average": [round(load_before, 2), round(load_after, 2)],
    }
    for store, rounds in runs.items():
        med = {key: statistics.median(r[key] for r in rounds) for key in rounds[0]}
        per_frame = med["capture_ms"] + med["inference_ms"] + args.selected * med["claim_ms"]
        result[store] = {**{k: round(v, 3) for k, v in med.items()}, "total_ms": round(per_frame, 3)}
        print(
            f"{store:4s}: capture {med['capture_ms']:.2f} ms/frame, inference {med['inference_ms']:.2f} "
            f"ms/frame, encode on claim {med['claim_ms']:.2f} ms/selected frame, file {med['bytes']:,.0f} B; "
            f"pipeline {per_frame:.2f} ms CPU/frame at {args.selected:.0%} selected"
        )
    jpeg, raw = result["jpeg"], result["raw"]
    result["saved_ms_per_frame"] = round(jpeg["total_ms"] - raw["total_ms"], 3)
    result["ratio_raw_to_jpeg"] = round(raw["total_ms"] / jpeg["total_ms"], 3)
    print(
        f"raw saves {result['saved_ms_per_frame']:.2f} ms CPU per frame "
        f"({result['ratio_raw_to_jpeg']:.2f}x of jpeg); load average {load_before:.2f} -> {load_after:.2f}"
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
