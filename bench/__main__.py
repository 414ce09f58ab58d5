"""Every benchmark in sequence, each in its own process, then a summary of each one's headline.

    python -m bench [--only pipeline,learning] [--skip devhub] [--full] [--workdir DIR]

Short settings by default (a few minutes in all on 2 cores); ``--full`` runs each benchmark
with its own defaults. Each benchmark prints its own lines and writes
``bench/results/<name>.json``; this command reads those files back and writes
``bench/results/summary.json``, then prints the targets table (``bench/targets.py``): each
performance target, the figure measured, met or not. Exit status 1 when any benchmark failed.
``--workdir DIR`` puts the benchmarks' files under ``DIR`` (their ``TMPDIR``); the run starts
by measuring what creating a file costs there (``bench/workdir.py``), since capture writes one a
frame.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import targets, workdir

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Bench:
    name: str
    short: tuple[str, ...]
    headline: Callable[[dict[str, Any]], tuple[str, dict[str, float]]]


def _versus(
    what: str, rate: str, unit: str, ratio: str, baseline: str
) -> Callable[[dict[str, Any]], tuple[str, dict[str, float]]]:
    """A headline "<what> <rate> <unit> = <ratio>x <baseline>" from two keys of a result."""

    def headline(r: dict[str, Any]) -> tuple[str, dict[str, float]]:
        return f"{what} {r[rate]:,.0f} {unit} = {r[ratio]:.2f}x {baseline}", {
            "ratio": r[ratio],
            rate: r[rate],
        }

    return headline


def _filter(r: dict[str, Any]) -> tuple[str, dict[str, float]]:
    five = r["decisions_per_s"]["five_strategies"]
    return (
        f"filter, five strategies {five:,.0f} decisions/s per core = "
        f"{r['ratio_five_to_fixed']:.2f}x the fixed rule alone",
        {"ratio": r["ratio_five_to_fixed"], "five_strategies_per_s": five},
    )


def _devhub(r: dict[str, Any]) -> tuple[str, dict[str, float]]:
    one = r["throughput"][0]
    rtt = r["round_trip"]
    return (
        f"dev hub {one['messages_per_s']:.0f} routed messages/s, hub CPU = "
        f"{one['hub_to_sender_cpu']:.2f}x the sender's; round trip p50 {rtt['rtt_p50_ms']:.1f} ms",
        {
            "ratio": one["hub_to_sender_cpu"],
            "messages_per_s": one["messages_per_s"],
            "rtt_p50_ms": rtt["rtt_p50_ms"],
        },
    )


def _cloud(r: dict[str, Any]) -> tuple[str, dict[str, float]]:
    share = r["share_of_gain"]
    return (
        f"cloud: 3 rounds of margin picks reach {share['rounds_margin']:.0%} of the label-everything "
        f"gain, one-shot random {share['one_shot_random']:.0%}; train+export "
        f"{r['timings']['train_and_export_s']:.1f} s",
        {
            "rounds_margin_share": share["rounds_margin"],
            "one_shot_random_share": share["one_shot_random"],
            "train_and_export_s": r["timings"]["train_and_export_s"],
        },
    )


def _pipeline(r: dict[str, Any]) -> tuple[str, dict[str, float]]:
    pipe = r["pipeline"]
    paced = r.get("paced") or pipe
    lat = paced["latency_ms"]["capture_to_decision_selected"]
    return (
        f"pipeline {pipe['frames_per_s']:.0f} frames/s = {r['ratio_pipeline_to_bare']:.2f}x a bare "
        f"single-process loop ({r['bare']['frames_per_s']:.0f}/s); capture->decision p50 "
        f"{lat.get('p50', float('nan')):.0f} ms, p95 {lat.get('p95', float('nan')):.0f} ms "
        f"at {paced['fps_asked']:g} frames/s",
        {
            "ratio": r["ratio_pipeline_to_bare"],
            "pipeline_frames_per_s": pipe["frames_per_s"],
            "bare_frames_per_s": r["bare"]["frames_per_s"],
            "latency_p50_ms": lat.get("p50", float("nan")),
            "latency_p95_ms": lat.get("p95", float("nan")),
        },
    )


def _camera(r: dict[str, Any]) -> tuple[str, dict[str, float]]:
    runs, bare = r["runs"], r["bare"]
    saturated = runs.get("jpeg-saturated") or next(v for k, v in runs.items() if k.endswith("saturated"))
    paced = ", ".join(
        f"{'' if v.get('store', 'jpeg') == 'jpeg' else v['store'] + ' '}{v['pace']:g}/s "
        f"{v['ratio_to_bare']:.2f}x"
        for v in runs.values()
        if v.get("pace") is not None
    )
    cpu = sum(saturated["cpu_ms_per_frame"].values())
    return (
        f"camera-class pipeline {saturated['frames_per_s']:.0f} frames/s = "
        f"{saturated['ratio_to_bare']:.2f}x a bare loop ({bare['frames_per_s']:.0f}/s); "
        f"paced {paced or 'n/a'}; "
        f"CPU {cpu:.1f} ms a frame in all processes (bare {bare['cpu_ms_per_frame']:.1f})",
        {
            "ratio": saturated["ratio_to_bare"],
            "pipeline_frames_per_s": saturated["frames_per_s"],
            "bare_frames_per_s": bare["frames_per_s"],
            "cpu_ms_per_frame_all": cpu,
        },
    )


def _frames(r: dict[str, Any]) -> tuple[str, dict[str, float]]:
    jpeg, raw = r["jpeg"]["total_ms"], r["raw"]["total_ms"]
    return (
        f"frame paths, 640x480: raw {raw:.2f} ms CPU a frame = {r['ratio_raw_to_jpeg']:.2f}x jpeg "
        f"({jpeg:.2f} ms), capture + inference + uploader",
        {"ratio": r["ratio_raw_to_jpeg"], "raw_ms": raw, "jpeg_ms": jpeg},
    )


def _learning(r: dict[str, Any]) -> tuple[str, dict[str, float]]:
    h = r["headline"]
    return (
        f"learning, in rounds at a 10% budget: margin reaches {h['policy_share_mean']:.0%} of the "
        f"upload-everything gain (worst cell {h['policy_share_worst_cell']:.0%}), "
        f"{h['points_over_random_mean']:+.1f} accuracy points over random, "
        f"oracle {h['oracle_share_mean']:.0%}",
        dict(h),
    )


BENCHES = (
    Bench(
        "capture",
        ("--frames", "600", "--rounds", "3"),  # shorter rounds (0.1 s) measured mostly the host's noise
        _versus(
            "capture module",
            "capture_fps_median",
            "frames/s",
            "ratio",
            "a bare loop storing the frames as read",
        ),
    ),
    Bench(
        "inference",
        ("--frames", "1000", "--rounds", "2", "--batch", "8"),
        _versus(
            "inference module",
            "module_samples_per_s",
            "samples/s",
            "module_over_bare",
            "a bare ONNX Runtime loop at batch 8",
        ),
    ),
    Bench("filter", ("--n", "10000", "--repeat", "2"), _filter),
    Bench(
        "uploader",
        ("--files", "200", "--rounds", "4"),
        _versus("uploader (sealed, durable)", "uploader_files_per_s", "files/s", "ratio", "plain uploads"),
    ),
    Bench("frames", ("--frames", "60", "--rounds", "2"), _frames),
    Bench("devhub", ("--messages", "1000", "--pings", "150"), _devhub),
    Bench("cloud", ("--seeds", "1"), _cloud),
    Bench("pipeline", ("--frames", "1600", "--paced-frames", "600"), _pipeline),
    Bench(
        "camera",
        ("--frames", "300", "--paced", "15,30", "--paced-seconds", "5", "--frames-store", "both"),
        _camera,
    ),
    Bench("learning", ("--seeds", "2", "--drifts", "mixed,blur", "--curve-seeds", "0"), _learning),
)


def run(bench: Bench, *, full: bool, timeout: float, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Run one benchmark in its own process; its headline from the JSON it wrote."""
    result_file = RESULTS / f"{bench.name}.json"
    result_file.unlink(missing_ok=True)
    command = [sys.executable, "-m", f"bench.{bench.name}", *([] if full else bench.short)]
    print(f"\n=== {' '.join(command[1:])}", flush=True)
    started = time.perf_counter()
    try:
        rc = subprocess.run(command, cwd=ROOT, timeout=timeout, check=False, env=env).returncode
    except subprocess.TimeoutExpired:
        rc = -1
    entry: dict[str, Any] = {
        "command": " ".join(["python", *command[1:]]),
        "returncode": rc,
        "seconds": round(time.perf_counter() - started, 1),
    }
    if rc != 0:
        entry["headline"] = "failed" if rc > 0 else f"timed out after {timeout:.0f} s"
        return entry
    try:
        text, figures = bench.headline(json.loads(result_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        entry["headline"] = f"no readable result in {result_file.name}: {exc!r}"
        return entry
    entry["headline"] = text
    entry["figures"] = figures
    return entry


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    names = [b.name for b in BENCHES]
    parser.add_argument("--only", default="", help=f"comma-separated subset of: {','.join(names)}")
    parser.add_argument("--skip", default="", help="comma-separated benchmarks to leave out")
    parser.add_argument("--full", action="store_true", help="each benchmark's own default settings")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds allowed to each benchmark")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=None,
        help="folder for the benchmarks' files (their TMPDIR; made if missing)",
    )
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    skip = {n for n in args.skip.split(",") if n}
    unknown = (only | skip) - set(names)
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(sorted(unknown))}; known: {', '.join(names)}")
    chosen = [b for b in BENCHES if (not only or b.name in only) and b.name not in skip]
    env = None
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(args.workdir.resolve())}
    disk = workdir.describe(args.workdir)
    print(workdir.line(disk), flush=True)
    started = time.perf_counter()
    summary = {b.name: run(b, full=args.full, timeout=args.timeout, env=env) for b in chosen}
    print(f"\n=== summary ({time.perf_counter() - started:.0f} s; shared machine, runs vary)")
    print(workdir.line(disk))
    for name, entry in summary.items():
        print(f"{name:10s} {entry['seconds']:5.0f} s  {entry['headline']}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "summary.json"
    out.write_text(
        json.dumps({"full": args.full, "workdir": disk, "benchmarks": summary}, indent=2) + "\n",
        encoding="utf-8",
    )
    print(f"wrote {out}")
    print("\n=== targets (from bench/results/*.json; n/a: not run or not in the result)")
    print(targets.table(targets.rows(targets.load_results(RESULTS, set(names)))))
    return 0 if all(e["returncode"] == 0 for e in summary.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
