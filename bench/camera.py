"""A camera-class pipeline: 640x480 video and a MobileNet-class model, four modules under the dev
hub next to a bare single-process loop, at saturation and paced like a camera.

    python -m bench.camera [--frames 600] [--paced 15,30] [--paced-seconds 20]
                           [--frames-store jpeg|raw|both] [--profile DIR] [--address 127.0.0.42]

Made on the spot, nothing downloaded: a 640x480 MJPG video written with OpenCV (a moving bar
on a shifting gradient, ``edgeloop_capture.testing.pattern``) and a MobileNet v1 classifier
(width 0.5, 160x160 RGB input, 10 classes, random weights with a fixed seed) built with
``onnx.helper`` and carrying EdgeLoop's model metadata (``bench/camera_model.py``), signed as
``edgeloop dev up`` signs its initial model.

- bare loop: one process reads each frame from the video (OpenCV decodes it), hashes it
  (dHash), pre-processes it with the inference module's own pre-processor, scores batches of 8
  with the module's loader and scoring code, decides with the filter's ``Engine`` under the
  demo's policy (15% budget) and JPEG-encodes and seals the selected frames. No hub, no files.
- pipeline: the dev hub and the four modules as processes (``bench.pipeline``'s set-up: the
  demo's manifest, Azurite, the real SDK), capture reading the same video as a ``video``
  source: as fast as it can (``realtime: false``, saturation), then replayed at the file's own
  rate (``realtime: true``) for each paced rate, on a video written at that rate.

Printed side by side: frames/s of each and the ratio (paced: against what the bare loop does
at that pace, the pace itself or its saturated rate if lower); CPU ms per frame of each process
(user + system over the run / frames) and its RSS; capture -> filter decision p50/p95 of the
selected frames and capture -> scored of every frame. With ``--frames-store`` both (the
default) each run is made once with capture storing JPEG files and once with the raw
shared-memory frames, when capture's configuration has ``frames.store`` (otherwise the raw runs
are skipped with a note); the raw runs keep ``frames/`` in memory (``/dev/shm``, as a device
mounts a tmpfs there) with a ring budget that holds the run. ``--profile DIR`` records each
process of the saturated runs with ``py-spy`` (one flame graph SVG per process, attached once
the process is up). Writes ``bench/results/camera.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench.camera_model import build_model
from bench.pipeline import demo_policy, manifest
from bench.rig import ROOT, Profiler, RunSpec, latency_line, measure, messages_line, per_process, rss_kib

RESULTS = ROOT / "bench" / "results" / "camera.json"
SOURCE_ID = "camera"
VIDEO = Path("input") / "camera.avi"
WIDTH, HEIGHT = 640, 480
BATCH = 8
QUALITY = 90
STORES = ("jpeg", "raw")
#: Where the raw runs keep capture's frames/ (a tmpfs on Linux), as a device keeps them in memory.
MEMORY = Path("/dev/shm")


# -- assets --------------------------------------------------------------------------------
def write_camera_video(path: Path, frames: int, fps: float) -> Path:
    """A 640x480 MJPG video of ``frames`` moving-pattern frames at ``fps``."""
    from edgeloop_capture.testing import write_video

    return write_video(path, frames, width=WIDTH, height=HEIGHT, fps=fps)


def frames_store_supported() -> bool:
    """Whether capture's configuration takes ``frames.store`` (the raw shared-memory path)."""
    from edgeloop_capture.config import CaptureConfig
    from pydantic import ValidationError

    try:
        CaptureConfig.model_validate({"frames": {"store": "raw"}})
    except ValidationError:
        return False
    return True


@dataclass
class Assets:
    """Keys and the signed model, as ``edgeloop dev up`` lays them out in a state folder."""

    model: bytes
    envelope_pem: str
    signing_pem: str
    env: dict[str, str]


def prepare(state: Path, model: bytes) -> Assets:
    """Keys in ``state/keys``; ``model`` signed as the initial model on the models volume."""
    from edgeloop_demo.assets import INITIAL_MODEL

    from edgeloop.devhub.paths import StatePaths
    from edgeloop.keys import ENVELOPE_PUBLIC, SIGNING_PRIVATE, SIGNING_PUBLIC, init_keys
    from edgeloop.signing import read_key_file, sign

    keys = state / "keys"
    init_keys(keys)
    path = StatePaths.of(state).volumes / INITIAL_MODEL
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(model)
    signature = sign(read_key_file(keys / SIGNING_PRIVATE), model)
    path.with_name(path.name + ".sig").write_text(signature, encoding="utf-8")
    return Assets(
        model=model,
        envelope_pem=(keys / ENVELOPE_PUBLIC).read_text(encoding="utf-8"),
        signing_pem=(keys / SIGNING_PUBLIC).read_text(encoding="utf-8"),
        env={
            "EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE": str((keys / ENVELOPE_PUBLIC).resolve()),
            "EDGELOOP_MODEL_PUBLIC_KEY_FILE": str((keys / SIGNING_PUBLIC).resolve()),
        },
    )


# -- the bare loop -------------------------------------------------------------------------
@dataclass
class BareResult:
    frames: int
    seconds: float
    cpu_s: float
    selected: int
    rss_mib: float

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds

    @property
    def cpu_ms_per_frame(self) -> float:
        return self.cpu_s * 1000 / max(self.frames, 1)


def bare_loop(video: Path, model: bytes, policy_doc: dict[str, Any], public_pem: bytes) -> BareResult:
    """Read (decode), hash, pre-process, score in batches of 8, decide, encode and seal the
    selected: one process, no hub, no files."""
    import random

    from edgeloop_capture.dhash import dhash
    from edgeloop_filter.engine import Engine
    from edgeloop_filter.policy import parse_policy
    from edgeloop_inference.providers import available_providers, choose_providers
    from edgeloop_inference.scoring import predictions
    from edgeloop_inference.session import ModelIdentity, load_model

    from edgeloop.clock import SystemClock
    from edgeloop.contracts import FrameRef
    from edgeloop.envelope import EnvelopeContext, PublicKey, seal_bytes

    clock = SystemClock()
    loaded = load_model(
        model,
        identity=ModelIdentity(name="camera", version="v0", sha256="-", source="bench"),
        choice=choose_providers(["cpu"], available_providers()),
        loaded_at=clock.now(),
    )
    engine = Engine(parse_policy(policy_doc), rng=random.Random(0))
    key = PublicKey.from_pem(public_pem)
    prep = loaded.preprocessor
    selected, seq = 0, 0
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    cpu0, start = time.process_time(), time.perf_counter()
    ended = False
    while not ended:
        refs: list[FrameRef] = []
        inputs: list[np.ndarray] = []
        images: list[np.ndarray] = []
        while len(refs) < BATCH:
            ok, image = cap.read()
            if not ok:
                ended = True
                break
            refs.append(
                FrameRef(
                    sample_id=f"bare-{seq:06d}", source_id=SOURCE_ID, seq=seq, kind="image",
                    captured_at=clock.now(), file_ref=f"{seq:06d}.jpg", dhash=dhash(image),
                )
            )  # fmt: skip
            inputs.append(prep.decode_array(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), display=str(seq)))
            images.append(image)
            seq += 1
        if not refs:
            break
        probs = loaded.run(prep.to_tensor(inputs))
        scored = predictions(
            refs, probs, labels=loaded.labels, top_k=3, include_scores=True, model_name="camera",
            model_version="v0", latency_ms=0.0, scored_at=clock.now(),
        )  # fmt: skip
        for prediction, image in zip(scored, images, strict=True):
            decision = engine.decide(prediction, clock.now(), clock.monotonic())
            if decision.selected is not None:
                ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
                context = EnvelopeContext(prediction.sample_id, "bench", "image/jpeg")
                seal_bytes(buf.tobytes(), public_key=key, context=context)
                selected += 1
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu0
    cap.release()
    rss = (rss_kib(os.getpid()) or 0) / 1024
    return BareResult(frames=seq, seconds=seconds, cpu_s=cpu, selected=selected, rss_mib=round(rss, 1))


# -- the pipeline --------------------------------------------------------------------------
@dataclass
class Run:
    """One pipeline run: saturated (``pace`` None) or replayed at ``pace`` frames/s."""

    label: str
    frames: int
    pace: float | None
    store: str
    profile: Path | None = None
    result: dict[str, Any] = field(default_factory=dict)


def camera_manifest(state: Path, run: Run, budget: int, assets: Assets, storage: str) -> Any:
    """``bench.pipeline``'s manifest (the demo's settings, upstream routes) with the video as
    capture's only source."""
    doc = manifest(state, 1.0, budget, assets.envelope_pem, assets.signing_pem, storage)
    capture = doc["modulesContent"]["capture"]["properties.desired"]
    capture["sources"] = [
        {
            "id": SOURCE_ID,
            "kind": "video",
            "path": str(VIDEO),
            "realtime": run.pace is not None,
            "format": "jpeg",
            "jpeg_quality": QUALITY,
        }
    ]
    if run.store != "jpeg":
        capture["frames"] = {"store": run.store, "max_bytes": ring_budget(run.frames)}
    return doc


def ring_budget(frames: int) -> int:
    """The raw frame ring's byte budget for a run: capture's default (256 MiB), or all the run's
    frames if more. Replaying a file as fast as it can, capture may run further ahead of
    inference than 256 MiB of 640x480 frames (about 290); the oldest would then be evicted
    before they are scored (answered with status error, counted), which is the ring doing its
    job, not the throughput this measures."""
    return max(256 * 1024**2, frames * (WIDTH * HEIGHT * 3 + 32))


@contextlib.contextmanager
def frames_in_memory(samples: Path) -> Iterator[str]:
    """``samples/frames`` (the raw frame ring) on a memory-backed folder, ``/dev/shm``, as a
    device mounts the ``edgeloop-frames`` tmpfs volume there (docs/capture.md); on disk where
    there is none. Yields which, for the result."""
    if not (MEMORY.is_dir() and os.access(MEMORY, os.W_OK)):
        yield "disk"
        return
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-frames-", dir=MEMORY) as folder:
        link = samples / "frames"
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(folder, target_is_directory=True)
        try:
            yield f"memory ({MEMORY})"
        finally:
            link.unlink()


def run_pipeline(work: Path, run: Run, model: bytes, address: str, idle_s: float = 0.0) -> dict[str, Any]:
    """The four modules under the dev hub over the video, saturated or paced."""
    from edgeloop.devhub.paths import StatePaths

    state = work / run.label
    assets = prepare(state, model)
    samples = StatePaths.of(state).volumes / "samples"
    write_camera_video(samples / VIDEO, run.frames, run.pace or 30.0)
    budget = max(1, int(run.frames * 0.15))
    with frames_in_memory(samples) as frames_on:
        spec = RunSpec(
            state=state,
            make_manifest=lambda storage: camera_manifest(state, run, budget, assets, storage),
            env=assets.env,
            frames=run.frames,
            pace=run.pace or 1000.0,
            address=address,
            idle_s=idle_s,
            profiler=None if run.profile is None else Profiler(run.profile),
            extra={
                "frames": run.frames,
                "pace": run.pace,
                "store": run.store,
                "budget": budget,
                "raw_frames_on": frames_on if run.store == "raw" else None,
            },
        )
        return measure(work, spec)


# -- the report ----------------------------------------------------------------------------
def paced_reference(pace: float, bare_fps: float) -> float:
    """What the bare loop delivers when frames come at ``pace``: the pace, or its own rate if lower."""
    return min(pace, bare_fps)


def report(runs: list[Run], bare: list[BareResult]) -> dict[str, Any]:
    """Print the figures side by side; the JSON result."""
    bare_fps = statistics.mean(b.frames_per_s for b in bare)
    bare_cpu = statistics.mean(b.cpu_ms_per_frame for b in bare)
    print(
        f"bare single-process loop           {bare_fps:7.1f} frames/s  CPU {bare_cpu:.2f} ms/frame  "
        f"RSS {bare[-1].rss_mib:.0f} MiB  (runs: {', '.join(f'{b.frames_per_s:.1f}' for b in bare)})"
    )
    out: dict[str, Any] = {
        "bare": {
            "frames_per_s": bare_fps,
            "cpu_ms_per_frame": bare_cpu,
            "rss_mib": bare[-1].rss_mib,
            "runs": [{"frames_per_s": b.frames_per_s, "selected": b.selected} for b in bare],
        },
        "runs": {},
        "ratios": {},
    }
    for run in runs:
        r = run.result
        reference = bare_fps if run.pace is None else paced_reference(run.pace, bare_fps)
        ratio = r["frames_per_s"] / reference
        r["ratio_to_bare"] = ratio
        out["runs"][run.label] = r
        out["ratios"][run.label] = ratio
        asked = "saturated" if run.pace is None else f"paced {run.pace:g}/s"
        print(
            f"pipeline, {run.store:4s}, {asked:12s}       {r['frames_per_s']:7.1f} frames/s  "
            f"= {ratio:.2f}x bare ({reference:.1f}/s)  selected {r['selected']}"
        )
        total = sum(r["cpu_ms_per_frame"].values())
        r["cpu_ms_per_frame_all"] = round(total, 2)
        # busy while deciding at that rate: the CPU until the last decision (uploads after it apart)
        at_decision = sum(r.get("cpu_ms_per_frame_at_decision", r["cpu_ms_per_frame"]).values())
        r["cores_busy"] = round(at_decision * r["frames_per_s"] / 1000, 2)
        print(
            "    CPU ms/frame: " + per_process(r["cpu_ms_per_frame"], ".2f") + f"; all {total:.1f} "
            f"(bare {bare_cpu:.1f}), {r['cores_busy']:.2f} cores busy (bare at this rate "
            f"{bare_cpu * r['frames_per_s'] / 1000:.2f})"
        )
        print(
            "    RSS MiB:      "
            + per_process(r["rss_mib"], ".0f")
            + f"; capture's start-up apart: {r.get('capture_startup_cpu_s', 0.0):.2f} CPU s"
        )
        print("    messages in/out: " + messages_line(r["messages"]))
        if run.store == "raw":
            ring = r.get("capture_frames", {}).get("ring", {})
            print(
                f"    raw frames on {r.get('raw_frames_on')}: inference sample errors (frames gone "
                f"before it read them) {r.get('inference_sample_errors', 'n/a')}; ring evicted "
                f"unclaimed {ring.get('evictedUnclaimed', 'n/a')} (frames nobody selected count too)"
            )
        if "idle_cpu_ms_per_s" in r:
            idle = r["idle_cpu_ms_per_s"]
            print(f"    idle CPU ms/s:   {per_process(idle, '.1f')} (all {sum(idle.values()):.1f})")
        lat = r["latency_ms"]
        print(
            "    " + latency_line("capture -> filter decision, selected", lat["capture_to_decision_selected"])
        )
        print("    " + latency_line("capture -> inference scored, all", lat["capture_to_scored_all"]))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.camera",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=600, help="frames of the saturated run")
    parser.add_argument("--paced", default="15,30", help="comma-separated paces in frames/s ('' skips)")
    parser.add_argument(
        "--paced-seconds", type=float, default=20.0, help="seconds of video of each paced run"
    )
    parser.add_argument(
        "--frames-store",
        choices=[*STORES, "both"],
        default="both",
        help="capture's frames.store: jpeg files, raw shared memory, or both in turn",
    )
    parser.add_argument(
        "--profile", type=Path, default=None, help="py-spy flame graphs of the saturated runs here"
    )
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=3.0,
        help="seconds with nothing flowing before the first run's capture starts: each process's idle CPU",
    )
    parser.add_argument("--address", default="127.0.0.42", help="loopback address for the bench hub")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    try:
        paces = [float(p) for p in args.paced.split(",") if p.strip()]
    except ValueError:
        parser.error(f"--paced {args.paced!r}: comma-separated numbers of frames/s, e.g. 15,30")
    if any(p <= 0 or p > 1000 for p in paces):
        parser.error(f"--paced {args.paced!r}: each pace must be in (0, 1000] frames/s")
    if args.profile is not None and Profiler(args.profile).py_spy_missing():
        parser.error("--profile needs py-spy on the PATH or beside this Python (the dev extra)")
    stores = list(STORES) if args.frames_store == "both" else [args.frames_store]
    if "raw" in stores and not frames_store_supported():
        print("note: capture's configuration has no frames.store here; the raw runs are skipped")
        stores.remove("raw")
    if not stores:
        return 0
    started = time.perf_counter()
    model = build_model()
    runs = [
        Run(
            label=f"{store}-saturated",
            frames=args.frames,
            pace=None,
            store=store,
            profile=None if args.profile is None else args.profile / store,
        )
        for store in stores
    ]
    runs += [
        Run(label=f"{store}-{p:g}fps", frames=max(BATCH, int(p * args.paced_seconds)), pace=p, store=store)
        for store in stores
        for p in paces
    ]
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-camera-") as tmp:
        work = Path(tmp)
        video = write_camera_video(work / "bare" / "camera.avi", args.frames, 30.0)
        keys = prepare(work / "bare", model)
        policy = demo_policy(args.frames)
        bare = [bare_loop(video, model, policy, keys.envelope_pem.encode())]
        for i, run in enumerate(runs):
            idle_s = args.idle_seconds if i == 0 else 0.0
            run.result = run_pipeline(work, run, model, args.address, idle_s=idle_s)
            print(f"{run.label}: {run.result['frames_per_s']:.1f} frames/s", flush=True)
        bare.append(bare_loop(video, model, policy, keys.envelope_pem.encode()))
    print(
        f"\n{args.frames} frames of 640x480 MJPG, MobileNet v1 0.5 at 160x160 (random weights), "
        f"batches of {BATCH}, the demo's policy (15% budget); load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine)"
    )
    result = report(runs, bare)
    result.update(
        {
            "frames": args.frames,
            "paces": paces,
            "stores": stores,
            "model": "mobilenet_v1 width 0.5, 160x160, 10 classes, random weights",
            "load_average": os.getloadavg(),
            "cpu_count": os.cpu_count(),
            "seconds": round(time.perf_counter() - started, 1),
            "profiles": None if args.profile is None else str(args.profile),
        }
    )
    saturated = [r for r in runs if r.pace is None and r.store == "jpeg"] or [
        r for r in runs if r.pace is None
    ]
    result["ratio_pipeline_to_bare"] = saturated[0].result["ratio_to_bare"] if saturated else None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
