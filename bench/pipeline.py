"""The four modules under the dev hub next to a bare single-process loop on the same frames.

    python -m bench.pipeline [--frames 2400] [--fps 200] [--address 127.0.0.41]

Both sides take the same PNG frames of the digits drift scenario (the stream cycled to
``--frames``) and the same initial model:

- pipeline: the repository's manifest with the demo's settings (``demo_manifest``: capture
  reads the frame folder at ``--fps``, the filter's demo policy with a 15% budget, the
  uploader sealing to Azurite), the dev hub as a process, the four modules as processes
  (``python -m edgeloop_<name>``, the real SDK), Azurite. Capture decodes each frame, hashes
  it, stores it on the samples volume and announces it; inference reads, decodes,
  pre-processes and scores it; the filter decides; the uploader seals and uploads the
  selected and logs every prediction.
- bare loop: one process reads each PNG, decodes it, hashes it (dHash), pre-processes and
  scores it with the inference module's own loader and scoring code (batches of 8, as the
  module), decides with the filter's ``Engine`` under the same policy, and seals the selected
  with ``edgeloop.envelope``. No hub, no files written, no upload.

Reported: frames/s of each and their ratio; for the pipeline, latency from capture's
``captured_at`` to the filter's decision for the selected frames (``selected_at``), and from
``captured_at`` to inference's ``scored_at`` for every frame (the filter's decision on a
frame that is not selected leaves no record; it follows ``scored_at`` by one hub hop). Both
are read from two extra routes to ``$upstream`` (recorded by the hub itself, so no extra
module process receives them). RSS of each process at the end of the run (VmRSS). Pipeline
frames/s = frames / (first ``captured_at`` -> the filter having seen every frame). Writes
``bench/results/pipeline.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from bench import workdir
from bench.rig import (
    FRAMES_ROUTE,
    ROOT,
    UPSTREAM_ROUTES,
    Profiler,
    RunSpec,
    latency_line,
    measure,
    messages_line,
    per_process,
)

SOURCE_ID = "demo"
BATCH = 8


# -- the frames ----------------------------------------------------------------------------
def write_frames(folder: Path, count: int, seed: int) -> list[Path]:
    """The scenario's stream as PNG files, cycled to ``count`` frames."""
    from edgeloop_demo.scenario import ScenarioConfig, build, frame_name

    scenario = build(ScenarioConfig(seed=seed, stream_size=800, clean_share=0.2))
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / frame_name(i)
        cv2.imwrite(str(path), scenario.stream.frames[i % len(scenario.stream)])
        paths.append(path)
    past = time.time() - 60  # settled long ago: capture takes them at once
    for path in paths:
        os.utime(path, (past, past))
    return paths


# -- the bare loop -------------------------------------------------------------------------
@dataclass
class BareResult:
    frames: int
    seconds: float
    selected: int
    cpu_s: float = 0.0

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.seconds

    @property
    def cpu_ms_per_frame(self) -> float:
        return self.cpu_s * 1000.0 / self.frames


def bare_loop(paths: list[Path], model: bytes, policy_doc: dict[str, Any], public_pem: bytes) -> BareResult:
    """Read, decode, hash, pre-process, score, decide, seal: one process, no hub."""
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
        identity=ModelIdentity(name="digits", version="v0", sha256="-", source="bench"),
        choice=choose_providers(["cpu"], available_providers()),
        loaded_at=clock.now(),
    )
    engine = Engine(parse_policy(policy_doc), rng=random.Random(0))
    key = PublicKey.from_pem(public_pem)
    prep = loaded.preprocessor
    selected = 0
    start, cpu_start = time.perf_counter(), time.process_time()
    for first in range(0, len(paths), BATCH):
        refs, inputs, blobs = [], [], []
        for seq, path in enumerate(paths[first : first + BATCH], start=first):
            data = path.read_bytes()
            image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            assert image is not None, path
            refs.append(
                FrameRef(
                    sample_id=f"bare-{seq:06d}",
                    source_id=SOURCE_ID,
                    seq=seq,
                    kind="image",
                    captured_at=clock.now(),
                    file_ref=path.name,
                    bytes=len(data),
                    dhash=dhash(image),
                )
            )
            inputs.append(prep.decode_bytes(data, display=path.name))
            blobs.append(data)
        probs = loaded.run(prep.to_tensor(inputs))
        scored = predictions(
            refs, probs, labels=loaded.labels, top_k=3, include_scores=True, model_name="digits",
            model_version="v0", latency_ms=0.0, scored_at=clock.now(),
        )  # fmt: skip
        for prediction, data in zip(scored, blobs, strict=True):
            decision = engine.decide(prediction, clock.now(), clock.monotonic())
            if decision.selected is not None:
                context = EnvelopeContext(prediction.sample_id, "bench", "image/png")
                seal_bytes(data, public_key=key, context=context)
                selected += 1
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
    return BareResult(len(paths), elapsed, selected, cpu)


# -- the pipeline --------------------------------------------------------------------------
def manifest(
    state: Path,
    fps: float,
    budget: int,
    envelope_pem: str,
    signing_pem: str,
    storage: str,
    *,
    hops: bool = False,
) -> Any:
    """The demo's manifest, with two routes that record predictions and selections upstream
    (and with ``hops`` a third, capture's frame references, for the latency of each hop)."""
    from edgeloop_demo.run import DemoOptions, demo_manifest

    opts = DemoOptions(state_dir=state, repo_root=ROOT, fps=fps, budget=budget)
    doc = demo_manifest(
        ROOT, opts=opts, envelope_public=envelope_pem, signing_public=signing_pem, storage=storage
    )
    routes = doc["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    routes.update(UPSTREAM_ROUTES)
    if hops:
        routes.update(FRAMES_ROUTE)
    return doc


def demo_policy(frames: int) -> dict[str, Any]:
    """The filter policy the demo's manifest sets for a stream of ``frames`` (15% budget)."""
    doc = manifest(ROOT, 1.0, max(1, int(frames * 0.15)), "", "", "")
    policy: dict[str, Any] = doc["modulesContent"]["filter"]["properties.desired"]["policy"]
    return policy


@dataclass
class Assets:
    """What both loops share: the frames, the initial model, the policy and the keys."""

    frames: list[Path]
    model: bytes
    envelope_pem: str
    signing_pem: str
    env: dict[str, str]


def prepare(state: Path, frames: int, seed: int, reuse: Path | None = None) -> Assets:
    """Frames on the samples volume; keys and the signed initial model as ``dev up`` makes them
    (copied from ``reuse``, an earlier state folder, when given)."""
    import shutil

    from edgeloop_demo.assets import INITIAL_MODEL, ensure_dev_assets

    from edgeloop.devhub.paths import StatePaths
    from edgeloop.keys import ENVELOPE_PUBLIC, SIGNING_PUBLIC

    volumes = StatePaths.of(state).volumes
    paths = write_frames(volumes / "samples" / "input" / "stream", frames, seed)
    if reuse is not None:
        shutil.copytree(reuse / "keys", state / "keys")
        shutil.copytree(StatePaths.of(reuse).volumes / "models", volumes / "models")
    env = ensure_dev_assets(state, say=lambda _line: None, seed=seed)
    keys = state / "keys"
    return Assets(
        frames=paths,
        model=(volumes / INITIAL_MODEL).read_bytes(),
        envelope_pem=(keys / ENVELOPE_PUBLIC).read_text(encoding="utf-8"),
        signing_pem=(keys / SIGNING_PUBLIC).read_text(encoding="utf-8"),
        env=env,
    )


def run_pipeline(
    work: Path,
    state: Path,
    assets: Assets,
    fps: float,
    address: str,
    profile: Path | None = None,
    idle_s: float = 0.0,
    hops: bool = False,
) -> dict[str, Any]:
    """One run of the four modules under the dev hub over ``assets.frames`` at ``fps``; with
    ``profile``, a py-spy flame graph of each process of the run in that folder; with ``hops``,
    capture's messages recorded upstream too, for the latency of each hop."""
    frames = len(assets.frames)
    budget = max(1, int(frames * 0.15))
    policies: list[Any] = []

    def make_manifest(storage: str) -> Any:
        doc = manifest(state, fps, budget, assets.envelope_pem, assets.signing_pem, storage, hops=hops)
        policies.append(doc["modulesContent"]["filter"]["properties.desired"]["policy"])
        return doc

    spec = RunSpec(
        state=state,
        make_manifest=make_manifest,
        env=assets.env,
        frames=frames,
        pace=fps,
        address=address,
        idle_s=idle_s,
        profiler=None if profile is None else Profiler(profile, nonblocking=True),
        extra={"frames": frames, "fps_asked": fps, "budget": budget},
    )
    result = measure(work, spec)
    result["policy"] = policies[0]
    assert result["policy"] == demo_policy(frames)
    return result


def plumbing_cpu(per_process: dict[str, float], bare_ms: float) -> dict[str, float]:
    """CPU a frame of every process of the pipeline together, and what the plumbing costs:
    that sum less the bare loop's CPU a frame for the same work."""
    total = sum(per_process.values())
    return {"all": round(total, 2), "plumbing": round(total - bare_ms, 2)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pipeline",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--frames", type=int, default=2400, help="frames of the throughput run")
    parser.add_argument("--fps", type=float, default=1000.0, help="capture's pace in the throughput run")
    parser.add_argument("--paced-frames", type=int, default=1000, help="frames of the paced run")
    parser.add_argument(
        "--paced-fps", type=float, default=100.0, help="capture's pace in the latency run (0: skip it)"
    )
    parser.add_argument("--address", default="127.0.0.41", help="loopback address for the bench hub")
    parser.add_argument(
        "--idle-seconds",
        type=float,
        default=3.0,
        help="seconds with nothing flowing before capture starts: each process's idle CPU (0: skip)",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "pipeline.json"))
    parser.add_argument(
        "--profile",
        default=None,
        help="folder for a py-spy flame graph of each process of the throughput run (py-spy on PATH)",
    )
    args = parser.parse_args(argv)
    disk = workdir.describe()
    print(workdir.line(disk), flush=True)
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-pipeline-") as tmp:
        work = Path(tmp)
        assets = prepare(work / "full", args.frames, args.seed)
        bare_runs = [
            bare_loop(
                assets.frames, assets.model, demo_policy(len(assets.frames)), assets.envelope_pem.encode()
            )
        ]
        profile = Path(args.profile).resolve() if args.profile else None
        full = run_pipeline(
            work, work / "full", assets, args.fps, args.address, profile=profile, idle_s=args.idle_seconds
        )
        bare_runs.append(bare_loop(assets.frames, assets.model, full["policy"], assets.envelope_pem.encode()))
        paced = None
        if args.paced_fps > 0:
            paced_assets = prepare(work / "paced", args.paced_frames, args.seed, reuse=work / "full")
            paced = run_pipeline(work, work / "paced", paced_assets, args.paced_fps, args.address, hops=True)
    bare_fps = statistics.mean(r.frames_per_s for r in bare_runs)
    bare_cpu = statistics.mean(r.cpu_ms_per_frame for r in bare_runs)
    ratio = full["frames_per_s"] / bare_fps
    plumbing = plumbing_cpu(full["cpu_ms_per_frame"], bare_cpu)
    print(f"{args.frames} digits frames (64x64 PNG), the demo's policy (15% budget) on both sides")
    print(
        f"bare single-process loop        {bare_fps:7.0f} frames/s  (selected {bare_runs[0].selected}; "
        f"{bare_cpu:.2f} CPU ms a frame)"
    )
    print(
        f"four modules + dev hub          {full['frames_per_s']:7.0f} frames/s  (capture asked "
        f"{args.fps:g}/s; filter saw {full['filter_seen']}, selected {full['selected']})"
    )
    print(f"pipeline / bare                 {ratio:7.2f}x")
    print(
        f"capture alone                   {len(assets.frames) / full['capture_seconds']:7.0f} frames/s  "
        "(first to last captured_at)"
    )
    for run, label in ((full, f"at {args.fps:g}/s asked"), (paced, f"paced at {args.paced_fps:g}/s")):
        if run is None:
            continue
        lat = run["latency_ms"]
        print(
            latency_line(
                f"capture -> filter decision, selected, {label}", lat["capture_to_decision_selected"]
            )
        )
        print(latency_line(f"capture -> inference scored, all, {label}", lat["capture_to_scored_all"]))
    if paced is not None:
        for name, hop in paced["hops_ms"].items():
            print(latency_line(f"  hop {name.replace('_', ' ')}, paced", hop))
        print("messages, paced:  " + messages_line(paced["messages"]))
        runs = paced["inference_batches"]
        print(f"inference runs, paced: sizes {runs['sizes']}, at once {runs['at_once']}")
    print("RSS at the end (MiB):     " + per_process(full["rss_mib"], ".0f"))
    print(
        "CPU ms per frame:         "
        + per_process(full["cpu_ms_per_frame"], ".2f")
        + f"  (every upload done, {full['uploaded']} of {full['selected']}, "
        f"{full['seconds_to_uploaded']:.1f} s after the first frame; capture's start-up apart: "
        f"{full.get('capture_startup_cpu_s', 0.0):.2f} s)"
    )
    print(
        "  at the last decision:   "
        + per_process(full["cpu_ms_per_frame_at_decision"], ".2f")
        + f"  ({full['uploaded_by_then']} uploads done by then)"
    )
    if "idle_cpu_ms_per_s" in full:
        idle = full["idle_cpu_ms_per_s"]
        print(f"idle CPU ms a second:     {per_process(idle, '.1f')} (all {sum(idle.values()):.1f})")
    print("messages in/out:          " + messages_line(full["messages"]))
    print(
        f"CPU ms per frame, all processes {plumbing['all']:.2f}, bare loop {bare_cpu:.2f}: "
        f"plumbing {plumbing['plumbing']:.2f} ms a frame"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "frames": args.frames,
        "bare": {
            "frames_per_s": bare_fps,
            "runs": [
                {"frames_per_s": r.frames_per_s, "selected": r.selected, "cpu_ms": r.cpu_ms_per_frame}
                for r in bare_runs
            ],
        },
        "pipeline": {k: v for k, v in full.items() if k != "policy"},
        "paced": None if paced is None else {k: v for k, v in paced.items() if k != "policy"},
        "ratio_pipeline_to_bare": ratio,
        "bare_cpu_ms_per_frame": bare_cpu,
        "plumbing_cpu_ms_per_frame": plumbing["plumbing"],
        "idle_cpu_ms_per_s": full.get("idle_cpu_ms_per_s"),
        "load_average": os.getloadavg(),
        "workdir": disk,
        "notes": "capture's CPU counts from its connection to the hub (its start-up apart, "
        "capture_startup_cpu_s); latency from the $upstream copies of "
        "predictions (scored_at) and selections (selected_at)",
    }
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print("load average (1, 5, 15 min) at the end: " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
