"""The rig the pipeline benchmarks share: the dev hub, Azurite and the four modules as
processes, each process's CPU and RSS, latency from the hub's upstream log, py-spy.

``bench.pipeline`` (digits frames) and ``bench.camera`` (640x480 video) differ in their frames,
model and capture source; both run the modules with ``measure``:

1. Azurite and the dev hub start with the manifest the bench makes (``make_manifest``, given
   Azurite's connection string); uploader, filter and inference start and connect, and inference
   loads its model.
2. Idle: for ``idle_s`` seconds nothing flows; each process's CPU over that time is its fixed
   cost (``idle_cpu_ms_per_s``: CPU milliseconds a second).
3. Capture starts; the run ends when the filter has seen every frame (its ``getStats`` polled
   every 0.1 s from 90% of the time the frames take at the run's pace: the poll costs the filter
   and the hub CPU, which paced runs would otherwise count as the pipeline's); the throughput
   counts to there. The uploads lag behind the decisions (the outbox takes the selected in at
   once and ships them as fast as the storage takes them), so the CPU a frame of each process
   (``cpu_ms_per_frame``) is its user + system time until every selected sample is uploaded
   (``seconds_to_uploaded``), / frames; ``cpu_ms_per_frame_at_decision`` stops where the
   throughput does (``uploaded_by_then``: the uploads done by then). Capture's CPU counts from
   its connection to the hub, its start-up (imports, connecting) is ``capture_startup_cpu_s``
   apart. RSS is ``VmRSS`` at the end.
4. Latency comes from two extra routes to ``$upstream`` (``UPSTREAM_ROUTES``): predictions
   (``captured_at`` -> ``scored_at``, every frame) and selections (-> ``selected_at``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MODULES = ("capture", "inference", "filter", "uploader")
#: Records inference's predictions and the filter's selections upstream (kept by the hub itself).
UPSTREAM_ROUTES = {
    "benchPredictions": "FROM /messages/modules/inference/outputs/predictions INTO $upstream",
    "benchSelected": "FROM /messages/modules/filter/outputs/selected INTO $upstream",
}
#: Records capture's frame references upstream too (the paced run's hops; one more hub write a
#: capture message, so the throughput run goes without it).
FRAMES_ROUTE = {"benchFrames": "FROM /messages/modules/capture/outputs/frames INTO $upstream"}
#: The hops of one frame, in order: (name, from, to) over the stamps ``read_stamps`` gives.
HOPS = (
    ("capture_to_hub", "captured", "frames_at_hub"),
    ("hub_to_scored", "frames_at_hub", "scored"),
    ("scored_to_hub", "scored", "predictions_at_hub"),
    ("hub_to_decision", "predictions_at_hub", "selected"),
    ("decision_to_hub", "selected", "selection_at_hub"),
)


# -- figures -------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) with linear interpolation between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100.0
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: list[float]) -> dict[str, float]:
    """Count, p50, p95 and max of latencies in ms."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50), 1),
        "p95": round(percentile(values, 95), 1),
        "max": round(max(values), 1),
    }


def latency_line(text: str, s: dict[str, float]) -> str:
    if not s.get("n"):
        return f"{text:52s} (none)"
    return f"{text:52s} p50 {s['p50']:6.1f} ms  p95 {s['p95']:6.1f} ms  (n={s['n']:.0f})"


# -- processes -----------------------------------------------------------------------------
def rss_kib(pid: int) -> int | None:
    """Resident set size of a process in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


def cpu_s(pid: int) -> float | None:
    """User + system CPU seconds a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children() -> dict[int, str]:
    """Child processes of this one: pid -> command line."""
    me, out = os.getpid(), {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(stat[1]) != me:
                continue
            out[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    return out


def module_pids() -> dict[str, int]:
    """The module processes among this process's children, by module name."""
    return {name: pid for pid, cmd in children().items() for name in MODULES if f"-m edgeloop_{name}" in cmd}


class Profiler:
    """``py-spy record`` attached to running processes, one flame graph ``<name>.svg`` each
    (50 samples/s; ``nonblocking``: without stopping the process at each sample). SIGINT ends
    a recording and makes py-spy write its file."""

    def __init__(self, folder: Path, *, nonblocking: bool = False) -> None:
        self.folder = folder
        self.nonblocking = nonblocking
        self.py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        self._procs: dict[str, subprocess.Popen[bytes]] = {}

    def py_spy_missing(self) -> bool:
        return not Path(self.py_spy).is_file()

    def attach(self, name: str, pid: int) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        command = [
            self.py_spy, "record", "--pid", str(pid), "--format", "flamegraph", "--rate", "50",
            "--output", str(self.folder / f"{name}.svg"), *(["--nonblocking"] if self.nonblocking else []),
        ]  # fmt: skip
        with open(self.folder / f"{name}.py-spy.log", "wb") as log:
            self._procs[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)

    def stop(self) -> None:
        for proc in self._procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for name, proc in self._procs.items():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                print(f"py-spy for {name} did not finish in 30 s", file=sys.stderr)
            if not (self.folder / f"{name}.svg").is_file():
                log = (self.folder / f"{name}.py-spy.log").read_text(errors="replace").strip()
                print(f"no profile of {name}: py-spy said: {log[-500:]}", file=sys.stderr)
        self._procs.clear()


# -- the hub's view ------------------------------------------------------------------------
def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.2)


def module_stats(hub: Any, module: str) -> dict[str, Any]:
    """The module's own part of its ``getStats`` answer."""
    answer = hub.invoke(module, "getStats", {}, timeout=10)
    payload = answer.get("payload") or {}
    stats: dict[str, Any] = payload.get("module", {}) if isinstance(payload, dict) else {}
    return stats


def messages(hub: Any, module: str) -> dict[str, int]:
    """A module's message and item counts in and out (its runtime's counters)."""
    answer = hub.invoke(module, "getStats", {}, timeout=10)
    payload = answer.get("payload") or {}
    runtime = payload.get("runtime", {}) if isinstance(payload, dict) else {}
    keys = ("messages_in", "items_in", "messages_out", "items_out")
    return {key: int(runtime.get(key, 0)) for key in keys}


def model_loaded(hub: Any) -> bool:
    model = hub.twin("inference").get("properties", {}).get("reported", {}).get("model", {})
    return isinstance(model, dict) and model.get("status") == "loaded"


def read_stamps(path: Path) -> dict[str, dict[str, float]]:
    """From the hub's upstream log: sample id -> its stamps, as epoch seconds: ``captured``
    (``captured_at``), ``frames_at_hub`` (the hub's receipt of capture's message, with
    ``FRAMES_ROUTE``), ``scored`` (``scored_at``: the run's start, after the batcher's wait),
    ``predictions_at_hub``, ``selected`` (``selected_at``) and ``selection_at_hub``. The hub
    stamps a message when it has read it (``time.time()``, the modules' clock too)."""
    from edgeloop.contracts import FrameRef, Prediction, SelectedSample
    from edgeloop.runtime.codec import decode

    stamps: dict[str, dict[str, float]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = json.loads(line)
        body, at = entry["body"], float(entry["ts"])
        for item in decode(body if isinstance(body, str) else json.dumps(body)):
            if isinstance(item, FrameRef):
                one = stamps.setdefault(item.sample_id, {"captured": item.captured_at.timestamp()})
                one["frames_at_hub"] = at
            elif isinstance(item, Prediction) and item.scored_at is not None:
                one = stamps.setdefault(item.sample_id, {"captured": item.frame.captured_at.timestamp()})
                one["scored"], one["predictions_at_hub"] = item.scored_at.timestamp(), at
            elif isinstance(item, SelectedSample):
                captured = item.prediction.frame.captured_at.timestamp()
                one = stamps.setdefault(item.sample_id, {"captured": captured})
                one["selected"], one["selection_at_hub"] = item.selected_at.timestamp(), at
    return stamps


def hop_latencies(stamps: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each hop's latency (``HOPS``) over the frames that have both its stamps, in ms."""
    return {
        name: summary([(s[b] - s[a]) * 1000 for s in stamps.values() if a in s and b in s])
        for name, a, b in HOPS
    }


# -- one run -------------------------------------------------------------------------------
@dataclass
class RunSpec:
    """What one run of the modules needs.

    ``make_manifest`` gets Azurite's connection string; ``env`` is added to each module's
    environment (the keys); ``pace`` is capture's rate (frames/s) for the run's time limit.
    """

    state: Path
    make_manifest: Callable[[str], Any]
    env: dict[str, str]
    frames: int
    pace: float
    address: str
    idle_s: float = 0.0
    profiler: Profiler | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def uploaded(hub: Any) -> int:
    """Samples the uploader has uploaded (its ``uploaded`` counter)."""
    return int(module_stats(hub, "uploader").get("counters", {}).get("uploaded", 0))


def _cpu_ms(pids: dict[str, int], since: dict[str, float], per: float) -> dict[str, float]:
    return {
        name: round(((cpu_s(pid) or 0.0) - since.get(name, 0.0)) * 1000 / per, 2)
        for name, pid in sorted(pids.items())
    }


def measure(work: Path, spec: RunSpec) -> dict[str, Any]:
    """One run of the four modules under the dev hub: idle, then until the filter has seen
    ``spec.frames``; the figures as a dict (see the module docstring)."""
    from edgeloop.devhub.paths import StatePaths
    from edgeloop.devhub.supervisor import process_env
    from edgeloop.devhub.testing import HubProcess, ModuleProcess
    from edgeloop.devtools.azurite import Azurite

    paths = StatePaths.of(spec.state)
    result: dict[str, Any] = dict(spec.extra)
    profiler = spec.profiler
    with Azurite(work / f"azurite-{spec.state.name}", host=spec.address) as azurite:
        doc = spec.make_manifest(azurite.connection_string)
        hub = HubProcess(
            address=spec.address, manifest=doc, state_dir=spec.state, extra_args=["--log-level", "WARNING"]
        )
        hub.start()
        modules: dict[str, ModuleProcess] = {}

        def start(name: str) -> None:
            env = process_env(hub.module_env(name), folder=ROOT, extra=spec.env, environ=os.environ)
            modules[name] = ModuleProcess.python_module(
                f"edgeloop_{name}", env=env, log_path=paths.log_file(name), cwd=ROOT
            ).start()

        try:
            for name in ("uploader", "filter", "inference"):
                start(name)
            for name in ("uploader", "filter", "inference"):
                hub.wait_connected(name, timeout=60, inputs=True)
            wait_until(lambda: model_loaded(hub), 60, "the inference module to load its model")
            pids = {**module_pids(), "hub": hub.pid}
            if spec.idle_s > 0:
                time.sleep(1.0)  # start-up work settles
                idle0 = {name: cpu_s(pid) or 0.0 for name, pid in pids.items()}
                time.sleep(spec.idle_s)
                result["idle_cpu_ms_per_s"] = _cpu_ms(pids, idle0, spec.idle_s)
            cpu0 = {name: cpu_s(pid) or 0.0 for name, pid in pids.items()}
            if profiler is not None:
                for name, pid in pids.items():
                    profiler.attach(name, pid)
            start("capture")
            pids.update(module_pids())
            if profiler is not None and "capture" in pids:
                profiler.attach("capture", pids["capture"])
            hub.wait_connected("capture", timeout=60)
            if "capture" in pids:
                cpu0["capture"] = cpu_s(pids["capture"]) or 0.0
                result["capture_startup_cpu_s"] = round(cpu0["capture"], 2)
            started = time.monotonic()
            deadline = started + max(120.0, 3 * spec.frames / spec.pace)
            # the poll goes through the hub to the filter and costs both CPU: none before 90% of
            # the time the frames take at the pace (a paced run's), then every 0.1 s
            time.sleep(max(0.0, started + 0.9 * spec.frames / spec.pace - time.monotonic()))
            seen, done_at = 0, time.time()
            while seen < spec.frames and time.monotonic() < deadline:
                seen = int(module_stats(hub, "filter").get("seen", 0))
                done_at = time.time()
                time.sleep(0.1)
            cpu_at_decision = _cpu_ms(pids, cpu0, max(seen, 1))
            result["filter_seen"] = seen
            if seen < spec.frames:
                tails = {name: m.log()[-1500:] for name, m in modules.items()}
                raise RuntimeError(
                    f"the filter saw {seen} of {spec.frames} frames in time; module logs:\n"
                    + "\n".join(f"--- {name}\n{tail}" for name, tail in tails.items())
                    + f"\n--- hub\n{hub.log_tail()}"
                )
            result["uploaded_by_then"] = uploaded(hub)
            # The uploads lag behind the decisions (the outbox takes them in at once and ships
            # them as fast as the storage takes them): the CPU a frame counts them all done.
            result["filter_stats"] = module_stats(hub, "filter")
            chosen_total = sum(result["filter_stats"].get("selected_by_strategy", {}).values())
            while uploaded(hub) < chosen_total and time.monotonic() < deadline:
                time.sleep(0.1)
            result["uploaded"] = uploaded(hub)
            uploads_done_at = time.time()
            if profiler is not None:
                profiler.stop()
                profiler = None
            result["rss_mib"] = {
                name: round((rss_kib(pid) or 0) / 1024, 1) for name, pid in sorted(pids.items())
            }
            result["cpu_ms_per_frame"] = _cpu_ms(pids, cpu0, max(seen, 1))
            result["cpu_ms_per_frame_at_decision"] = cpu_at_decision
            result["messages"] = {name: messages(hub, name) for name in MODULES}
            inference = module_stats(hub, "inference")
            result["inference_sample_errors"] = int(inference.get("sample_errors", 0))
            result["capture_frames"] = module_stats(hub, "capture").get("frames", {})
            result["inference_batches"] = {
                "sizes": inference.get("batchSizes", {}),
                "at_once": inference.get("eagerBatches"),
            }
        finally:
            if profiler is not None:
                profiler.stop()
            for name in MODULES:
                if name in modules:
                    modules[name].stop()
            hub.close()
    stamps = read_stamps(paths.upstream_log)
    scored = {k: (v["captured"], v["scored"]) for k, v in stamps.items() if "scored" in v}
    chosen = {k: (v["captured"], v["selected"]) for k, v in stamps.items() if "selected" in v}
    first = min(c for c, _ in scored.values())
    result["seconds"] = done_at - first
    result["seconds_to_uploaded"] = uploads_done_at - first
    # capture's own pace: first to last captured_at (the rest of ``seconds`` is the later hops)
    result["capture_seconds"] = max(c for c, _ in scored.values()) - first
    result["frames_per_s"] = seen / result["seconds"]
    result["selected"] = len(chosen)
    result["latency_ms"] = {
        "capture_to_decision_selected": summary([(s - c) * 1000 for c, s in chosen.values()]),
        "capture_to_scored_all": summary([(s - c) * 1000 for c, s in scored.values()]),
    }
    result["hops_ms"] = hop_latencies(stamps)
    return result


def per_process(values: dict[str, float], fmt: str) -> str:
    return ", ".join(f"{k} {v:{fmt}}" for k, v in values.items())


def messages_line(counts: dict[str, dict[str, int]]) -> str:
    return ", ".join(f"{k} {v['messages_in']}/{v['messages_out']}" for k, v in counts.items())
