"""Soak: the demo stream through every module for a long while, with each module's memory watched.

Runs ``edgeloop demo`` (the dev hub, Azurite and the four modules as processes, the drifted
digits stream, the cloud loop) for ``--minutes`` and samples the resident set size (RSS) of each
module process every ``--interval-s`` seconds. Reports, per module, the RSS at the first and the
last sample, the peak, the least-squares slope in MB per hour, and restarts seen (a new pid).
A slope that stays positive over a long run is a leak; early growth (imports, caches, the first
model) levels off.

    python -m bench.soak                    # 30 minutes, a sample a minute (not for CI)
    python -m bench.soak --minutes 3 --interval-s 15

Writes ``bench/results/soak.json``. Linux only (reads /proc).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("capture", "inference", "filter", "uploader")
RESULTS = ROOT / "bench" / "results" / "soak.json"


@dataclass
class Series:
    """RSS samples of one module: (seconds since start, MB)."""

    points: list[tuple[float, float]] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)

    def add(self, t: float, pid: int, rss_mb: float) -> None:
        self.points.append((t, rss_mb))
        if not self.pids or self.pids[-1] != pid:
            self.pids.append(pid)

    def slope_mb_per_hour(self) -> float | None:
        if len(self.points) < 2:
            return None
        n = len(self.points)
        mean_t = sum(t for t, _ in self.points) / n
        mean_r = sum(r for _, r in self.points) / n
        var = sum((t - mean_t) ** 2 for t, _ in self.points)
        if var == 0:
            return None
        cov = sum((t - mean_t) * (r - mean_r) for t, r in self.points)
        return cov / var * 3600.0

    def summary(self) -> dict[str, Any]:
        rss = [r for _, r in self.points]
        slope = self.slope_mb_per_hour()
        return {
            "samples": len(rss),
            "first_mb": round(rss[0], 1) if rss else None,
            "last_mb": round(rss[-1], 1) if rss else None,
            "peak_mb": round(max(rss), 1) if rss else None,
            "last_over_first": round(rss[-1] / rss[0], 3) if rss and rss[0] else None,
            "slope_mb_per_hour": round(slope, 2) if slope is not None else None,
            "restarts": max(0, len(self.pids) - 1),
        }


def descendants(root: int) -> set[int]:
    """``root`` and every process below it (other EdgeLoop processes on the machine are not ours)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, stack = set(), [root]
    while stack:
        pid = stack.pop()
        found.add(pid)
        stack.extend(children.get(pid, []))
    return found


def module_processes(root: int) -> dict[str, tuple[int, float]]:
    """module -> (pid, RSS in MB) of the processes under ``root`` running ``python -m edgeloop_<module>``."""
    found: dict[str, tuple[int, float]] = {}
    for pid in descendants(root):
        entry = Path("/proc") / str(pid)
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        for module in MODULES:
            if f"edgeloop_{module}".encode() in argv:
                rss_kb = next(
                    (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0
                )
                found[module] = (int(entry.name), rss_kb / 1024.0)
    return found


def run(minutes: float, interval_s: float, state_dir: Path, fps: float | None) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        str(ROOT / p)
        for p in (
            "src",
            "modules/capture",
            "modules/inference",
            "modules/filter",
            "modules/uploader",
            "cloud",
            "demo",
        )
    )
    if fps is None:  # spread the demo's finite stream over the whole run
        from edgeloop_demo.run import DemoOptions

        frames = DemoOptions(state_dir=state_dir, repo_root=ROOT).stream_size
        fps = round(max(0.2, frames / (minutes * 60)), 3)
    command = [
        sys.executable,
        "-m",
        "edgeloop",
        "demo",
        "--state-dir",
        str(state_dir),
        "--timeout",
        str(minutes * 60),
    ]
    if fps is not None:
        command += ["--fps", str(fps)]
    log_path = state_dir.parent / f"{state_dir.name}-soak.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    series = {m: Series() for m in MODULES}
    print(f"soak: {' '.join(command[1:])} (log {log_path})", flush=True)
    with open(log_path, "wb") as log:
        demo = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    start = time.monotonic()
    deadline = start + minutes * 60
    try:
        while time.monotonic() < deadline and demo.poll() is None:
            now = time.monotonic() - start
            seen = module_processes(demo.pid)
            for module, (pid, rss) in seen.items():
                series[module].add(now, pid, rss)
            line = "  ".join(f"{m} {seen[m][1]:6.1f} MB" if m in seen else f"{m}      -" for m in MODULES)
            print(f"[{now / 60:5.1f} min] {line}", flush=True)
            time.sleep(max(0.0, min(interval_s, deadline - time.monotonic())))
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGTERM)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
    return {
        "minutes": minutes,
        "interval_s": interval_s,
        "ran_s": round(time.monotonic() - start, 1),
        "demo_exit": demo.returncode,
        "modules": {m: s.summary() for m, s in series.items()},
        "series": {m: [(round(t, 1), round(r, 2)) for t, r in s.points] for m, s in series.items()},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="how long to run (default 30)")
    parser.add_argument(
        "--interval-s", type=float, default=60.0, help="seconds between RSS samples (default 60)"
    )
    parser.add_argument(
        "--fps", type=float, help="capture rate (default: the demo's 800 frames spread over the run)"
    )
    parser.add_argument("--state-dir", help="work folder (default: a fresh temporary one)")
    args = parser.parse_args(argv)
    state_dir = (
        Path(args.state_dir) if args.state_dir else Path(tempfile.mkdtemp(prefix="edgeloop-soak-")) / "demo"
    )
    result = run(args.minutes, args.interval_s, state_dir, args.fps)
    print("\nmodule      first MB  last MB  peak MB  last/first  slope MB/h  restarts")
    for module, s in result["modules"].items():
        if not s["samples"]:
            print(f"{module:<10}  (never seen)")
            continue
        slope = "-" if s["slope_mb_per_hour"] is None else f"{s['slope_mb_per_hour']:+.1f}"
        print(
            f"{module:<10}  {s['first_mb']:8.1f} {s['last_mb']:8.1f} {s['peak_mb']:8.1f}  "
            f"{s['last_over_first']:10.3f}  {slope:>10}  {s['restarts']:8d}"
        )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"written to {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
