"""The performance targets side by side: each target, the measured figure, met or not.

Read from the JSON each benchmark writes (``bench/results/<name>.json``); a benchmark that did
not run, or a result without the key, shows ``n/a`` and counts as neither met nor missed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Results = Mapping[str, Any]


@dataclass(frozen=True)
class Target:
    """One target: what it asks, which result file, the figure's path in it (or several, the
    first present wins), the test (None: reported, no threshold)."""

    text: str
    bench: str
    path: tuple[str | int, ...] | tuple[tuple[str | int, ...], ...]
    check: Callable[[float], bool] | None
    unit: str = "x"

    def paths(self) -> tuple[tuple[str | int, ...], ...]:
        if self.path and all(isinstance(p, tuple) for p in self.path):
            return tuple(p for p in self.path if isinstance(p, tuple))
        return (tuple(p for p in self.path if not isinstance(p, tuple)),)


@dataclass(frozen=True)
class Row:
    text: str
    figure: str
    status: str


def _at_least(bound: float) -> Callable[[float], bool]:
    return lambda value: value >= bound


def _at_most(bound: float) -> Callable[[float], bool]:
    return lambda value: value <= bound


TARGETS = (
    Target(
        "camera pipeline >= 0.9x bare loop, saturated",
        "camera",
        ("ratios", "jpeg-saturated"),
        _at_least(0.9),
    ),
    Target(
        "camera pipeline >= 0.9x bare loop, paced 15/s", "camera", ("ratios", "jpeg-15fps"), _at_least(0.9)
    ),
    Target(
        "camera pipeline >= 0.9x bare loop, paced 30/s", "camera", ("ratios", "jpeg-30fps"), _at_least(0.9)
    ),
    Target(
        "camera pipeline, raw frames, >= 0.9x bare loop, saturated",
        "camera",
        ("ratios", "raw-saturated"),
        _at_least(0.9),
    ),
    Target("capture >= 0.9x its bare loop (frames stored as read)", "capture", ("ratio",), _at_least(0.9)),
    Target(
        "capture / a bare loop taking the same 1/8 grey preview (reported: like for like)",
        "capture",
        ("ratio_to_as_read_preview",),
        None,
    ),
    Target(
        "inference >= 0.9x bare ONNX Runtime at batch 8", "inference", ("module_over_bare",), _at_least(0.9)
    ),
    Target(
        "pipeline (64x64 digits) >= 1.0x bare loop", "pipeline", ("ratio_pipeline_to_bare",), _at_least(1.0)
    ),
    Target(
        "pipeline plumbing CPU a frame <= 1 ms, saturated (all processes less the bare loop)",
        "pipeline",
        ("plumbing_cpu_ms_per_frame",),
        _at_most(1.0),
        unit=" ms",
    ),
    Target("uploader >= 0.9x plain uploads", "uploader", ("ratio",), _at_least(0.9)),
    Target(
        "hub CPU per routed message <= 0.5x the sender's",
        "devhub",
        ("throughput", 0, "hub_to_sender_cpu"),
        _at_most(0.5),
    ),
    Target(
        "filter >= 100,000 decisions/s per core fed in batches (fixed rule)",
        "filter",
        ("decisions_per_s", "fixed_rule_batched"),
        _at_least(100_000),
        unit="/s",
    ),
    Target(
        "filter decisions/s per core fed in batches, five strategies (reported)",
        "filter",
        ("decisions_per_s", "five_strategies_batched"),
        None,
        unit="/s",
    ),
    Target(
        "capture -> decision p50 <= 20 ms, paced at 100/s",
        "pipeline",
        ("paced", "latency_ms", "capture_to_decision_selected", "p50"),
        _at_most(20.0),
        unit=" ms",
    ),
    Target(
        "raw frame path CPU a frame, capture + inference + uploader (reported; jpeg path beside it)",
        "frames",
        ("raw", "total_ms"),
        None,
        unit=" ms",
    ),
)


def lookup(result: Any, path: tuple[str | int, ...]) -> float | None:
    """The number at ``path`` in a result, or None when any step is missing or not a number."""
    value = result
    for step in path:
        in_list = isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value)
        in_map = isinstance(step, str) and isinstance(value, Mapping) and step in value
        if not (in_list or in_map):
            return None
        value = value[step]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _figure(value: float, unit: str) -> str:
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "/s":
        return f"{value:,.0f}/s"
    if abs(value) < 10:
        return f"{value:.2f}{unit}"
    return f"{value:.0f}{unit}"


def rows(results: Mapping[str, Any], targets: tuple[Target, ...] = TARGETS) -> list[Row]:
    """Each target with its measured figure and ``met`` / ``not met`` / ``reported`` / ``n/a``."""
    out = []
    for target in targets:
        found = (lookup(results.get(target.bench), path) for path in target.paths())
        value = next((v for v in found if v is not None), None)
        if value is None:
            out.append(Row(target.text, "n/a", "n/a"))
            continue
        status = "reported" if target.check is None else ("met" if target.check(value) else "not met")
        out.append(Row(target.text, _figure(value, target.unit), status))
    return out


def load_results(folder: Path, names: set[str]) -> dict[str, Any]:
    """``<name>.json`` of each benchmark in ``folder`` that has a readable one."""
    results: dict[str, Any] = {}
    for name in sorted(names):
        try:
            results[name] = json.loads((folder / f"{name}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return results


def table(found: list[Row]) -> str:
    width = max(len(r.text) for r in found)
    lines = [f"{'target':{width}s}  {'measured':>10s}  status"]
    lines += [f"{r.text:{width}s}  {r.figure:>10s}  {r.status}" for r in found]
    return "\n".join(lines)
