"""Learning efficiency: what each way of choosing uploads buys, over seeds, drift kinds and severities.

    python -m bench.learning                       # 5 seeds x 4 drift kinds x 3 severities
    python -m bench.learning --seeds 2 --drifts mixed --severities medium --jobs 2

Offline, no hub: the digits drift scenario (800 stream frames, clean for a quarter, then
drifted; a drifted test set of 400), the cloud's built-in trainer (continuing from the previous
model each round, as the cloud continues from its champion) and the filter's engine on the
inference module's predictions. Every cell runs the device policies, random at the same number
of uploads, the oracle (the frames the current model gets wrong: the trainer's ceiling for any
selection) and uploading everything, in rounds (see ``bench.learning_cell``).

Printed per cell (mean and spread over seeds): accuracy before; each policy's share of the
upload-everything gain; the first policy's points of share over random at the same uploads; the
oracle's share. The trainer's learning curve (random and oracle picks, one retrain) is measured on
``--curve-seeds`` seeds. Writes ``bench/results/learning.json`` and a plot of accuracy against
labels (``--plot``, default ``bench/results/learning.png``). Each cell is appended to
``learning.partial.jsonl`` as it ends; ``--resume`` goes on from there after an interruption.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeloop_demo.scenario import DRIFT_KINDS, ScenarioConfig, build

from bench.learning_cell import POLICIES, chunks, run_cell

ROOT = Path(__file__).resolve().parents[1]
SEVERITIES = ("mild", "medium", "severe")
__all__ = ["chunks", "gain_per_100", "main", "share_of_gain"]


def gain_per_100(before: float, after: float, samples: int) -> float:
    """Accuracy points (0..100 scale) gained per 100 samples uploaded."""
    if samples <= 0:
        return 0.0
    return (after - before) * 100.0 * 100.0 / samples


def share_of_gain(before: float, after: float, after_everything: float) -> float:
    """The gain as a share of the gain from uploading everything (0 when that gained nothing)."""
    full = after_everything - before
    return (after - before) / full if full > 0 else 0.0


@dataclass(frozen=True)
class Job:
    seed: int
    drift: str
    severity: str
    budget_share: float
    policies: tuple[str, ...]
    curve: bool


_INITIAL: dict[int, bytes] = {}


def _initial(seed: int, scenario: Any) -> bytes:
    """The model every cell of a seed starts from (the base split does not depend on the drift)."""
    from bench.cloud import train_model

    if seed not in _INITIAL:
        _INITIAL[seed] = train_model(scenario, [], seed)
    return _INITIAL[seed]


def run_job(job: Job) -> dict[str, Any]:
    scenario = build(ScenarioConfig(seed=job.seed, drift=job.drift, severity=job.severity))  # type: ignore[arg-type]
    cell = run_cell(
        scenario=scenario,
        initial=_initial(job.seed, scenario),
        seed=job.seed,
        budget_share=job.budget_share,
        policies=job.policies,
        curve=job.curve,
    )
    everything = cell["policies"]["everything"]["after"]
    for r in cell["policies"].values():
        r["share_of_everything"] = share_of_gain(cell["before"], r["after"], everything)
        r["gain_per_100"] = gain_per_100(cell["before"], r["after"], r["uploaded"])
    return {"seed": job.seed, "drift": job.drift, "severity": job.severity, **cell}


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.mean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


#: Below this gain from uploading everything (accuracy, 0-1) a cell has no room to learn: the
#: initial model already copes with the drift, and shares of a near-zero gain are noise.
MIN_ROOM = 0.02


def summarise(runs: list[dict[str, Any]], policies: tuple[str, ...]) -> list[dict[str, Any]]:
    """Per drift kind and severity, over seeds: accuracies (mean and spread), each policy's share
    of the upload-everything gain (of the means, so one seed's tiny gain does not swing it), and
    the lead policy's accuracy points over random at the same uploads."""
    out = []
    for drift in dict.fromkeys(r["drift"] for r in runs):
        for severity in dict.fromkeys(r["severity"] for r in runs):
            group = [r for r in runs if r["drift"] == drift and r["severity"] == severity]
            if not group:
                continue
            names = list(group[0]["policies"])
            after = {p: _stats([r["policies"][p]["after"] for r in group]) for p in names}
            before = _stats([r["before"] for r in group])
            room = after["everything"]["mean"] - before["mean"]
            entry: dict[str, Any] = {
                "drift": drift,
                "severity": severity,
                "seeds": len(group),
                "before": before,
                "after": after,
                "room": room,
                "has_room": room >= MIN_ROOM,
                "share": {p: (after[p]["mean"] - before["mean"]) / room if room > 0 else 0.0 for p in names},
                "uploaded": {p: statistics.mean(r["policies"][p]["uploaded"] for r in group) for p in names},
            }
            if policies:
                lead = policies[0]
                entry["points_over_random"] = _stats(
                    [100 * (r["policies"][lead]["after"] - r["policies"]["random"]["after"]) for r in group]
                )
            out.append(entry)
    return out


def table(summary: list[dict[str, Any]], policies: tuple[str, ...]) -> str:
    shown = [*policies, "random", "oracle"]
    head = f"{'drift':8s} {'severity':8s} {'before':>13s} {'everything':>13s} " + " ".join(
        f"{p[:16]:>20s}" for p in shown
    )
    if policies:
        head += f" {policies[0][:8] + ' - random':>17s}"
    lines = [head]
    for e in summary:
        cells = " ".join(
            f"{e['after'][p]['mean']:6.3f} {e['share'][p]:>5.0%} {e['uploaded'][p]:>4.0f}u"
            if e["has_room"]
            else f"{e['after'][p]['mean']:6.3f}   n/a {e['uploaded'][p]:>4.0f}u"
            for p in shown
        )
        b, a = e["before"], e["after"]["everything"]
        line = (
            f"{e['drift']:8s} {e['severity']:8s} {b['mean']:6.3f}+-{b['sd']:.3f} "
            f"{a['mean']:6.3f}+-{a['sd']:.3f} {cells}"
        )
        if policies:
            pr = e["points_over_random"]
            line += f" {pr['mean']:>+8.1f} +-{pr['sd']:<4.1f}"
        lines.append(line)
    lines.append(
        "accuracy on the drifted test set (mean over seeds), share of the upload-everything gain, "
        f"uploads (u); n/a: uploading everything gains under {MIN_ROOM:.0%}, the initial model copes"
    )
    return "\n".join(lines)


def headline(summary: list[dict[str, Any]], policies: tuple[str, ...]) -> dict[str, float]:
    """Over the cells with room to learn: the lead policy's mean and worst share, its mean
    accuracy points over random, random's and the oracle's mean share."""
    lead = policies[0] if policies else "random"
    cells = [e for e in summary if e["has_room"]] or summary
    doc = {
        "cells_with_room": float(len(cells)),
        "policy_share_mean": statistics.mean(e["share"][lead] for e in cells),
        "policy_share_worst_cell": min(e["share"][lead] for e in cells),
        "random_share_mean": statistics.mean(e["share"]["random"] for e in cells),
        "oracle_share_mean": statistics.mean(e["share"]["oracle"] for e in cells),
    }
    if policies:
        doc["points_over_random_mean"] = statistics.mean(e["points_over_random"]["mean"] for e in cells)
    return doc


def plot(runs: list[dict[str, Any]], policies: tuple[str, ...], path: Path) -> Path | None:
    """Accuracy against labels: the trainer's curve (random, oracle) and each policy's result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drifts = list(dict.fromkeys(r["drift"] for r in runs))
    severities = list(dict.fromkeys(r["severity"] for r in runs))
    fig, axes = plt.subplots(
        len(severities), len(drifts), figsize=(3.2 * len(drifts), 2.8 * len(severities)), squeeze=False
    )
    for row, severity in enumerate(severities):
        for col, drift in enumerate(drifts):
            ax = axes[row][col]
            group = [r for r in runs if r["drift"] == drift and r["severity"] == severity]
            curves = [r["curve"] for r in group if "curve" in r]
            if curves:
                xs = curves[0]["labels"]
                for name, style in (("random", "--"), ("oracle", ":")):
                    ys = [statistics.mean(c[name][k] for c in curves) for k in range(len(xs))]
                    ax.plot(xs, ys, style, label=f"trainer, {name} picks")
            for p in [*policies, "random", "everything"]:
                ax.scatter(
                    [statistics.mean(r["policies"][p]["uploaded"] for r in group)],
                    [statistics.mean(r["policies"][p]["after"] for r in group)],
                    label=f"{p} (rounds)",
                    s=18,
                )
            ax.axhline(statistics.mean(r["before"] for r in group), color="grey", lw=0.8)
            ax.set_xscale("log")
            ax.set_xticks([20, 80, 320, 800], ["20", "80", "320", "800"])
            ax.minorticks_off()
            ax.set_title(f"{drift}, {severity}", fontsize=9)
            ax.tick_params(labelsize=7)
    axes[0][0].legend(fontsize=6)
    fig.supxlabel("labelled uploads")
    fig.supylabel("accuracy on the drifted test set")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _jobs(args: argparse.Namespace, policies: tuple[str, ...]) -> list[Job]:
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    return [
        Job(seed, drift, severity, args.budget, policies, seed < args.first_seed + args.curve_seeds)
        for seed in seeds
        for drift in args.drifts.split(",")
        for severity in args.severities.split(",")
    ]


def _resumed(out: Path, jobs: list[Job]) -> list[dict[str, Any]]:
    """Cells measured by an earlier, interrupted run with the same settings."""
    partial = out.with_suffix(".partial.jsonl")
    if not partial.exists():
        return []
    wanted = {(j.seed, j.drift, j.severity): j for j in jobs}
    runs = []
    for line in partial.read_text(encoding="utf-8").splitlines():
        run = json.loads(line)
        job = wanted.get((run["seed"], run["drift"], run["severity"]))
        if job and set(job.policies) <= set(run["policies"]) and job.curve <= ("curve" in run):
            runs.append(run)
    return runs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.learning",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=5, help="seeds per cell (from --first-seed on)")
    parser.add_argument("--first-seed", type=int, default=101, help="first seed (the tests use others)")
    parser.add_argument("--drifts", default=",".join(DRIFT_KINDS), help="comma-separated drift kinds")
    parser.add_argument("--severities", default=",".join(SEVERITIES), help="comma-separated severities")
    parser.add_argument("--budget", type=float, default=0.1, help="upload budget, as a share of the stream")
    parser.add_argument(
        "--policies", default="margin", help=f"device policies, first one leads: {sorted(POLICIES)}"
    )
    parser.add_argument("--curve-seeds", type=int, default=1, help="seeds whose cells also measure the curve")
    parser.add_argument("--jobs", type=int, default=2, help="cells measured in parallel (one core each)")
    parser.add_argument(
        "--resume", action="store_true", help="keep the cells already in the .partial.jsonl beside --out"
    )
    parser.add_argument(
        "--summary-only",
        action="store_true",
        help="summarise the cells in the .partial.jsonl, measure nothing",
    )
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "learning.json"))
    parser.add_argument("--plot", default=str(ROOT / "bench" / "results" / "learning.png"))
    args = parser.parse_args(argv)
    policies = tuple(p for p in args.policies.split(",") if p)
    unknown = [p for p in policies if p not in POLICIES]
    if unknown:
        parser.error(f"unknown policies {unknown}; choose from {sorted(POLICIES)}")
    jobs = _jobs(args, policies)
    out = Path(args.out)
    runs = _resumed(out, jobs) if args.resume or args.summary_only else []
    done = {(r["seed"], r["drift"], r["severity"]) for r in runs}
    todo = [] if args.summary_only else [j for j in jobs if (j.seed, j.drift, j.severity) not in done]
    partial = out.with_suffix(".partial.jsonl")
    partial.parent.mkdir(parents=True, exist_ok=True)
    if not (args.resume or args.summary_only):
        partial.write_text("", encoding="utf-8")
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for run in pool.map(run_job, todo):
            runs.append(run)
            with partial.open("a", encoding="utf-8") as f:
                f.write(json.dumps(run) + "\n")
            print(
                f"  [{len(runs)}/{len(jobs)}] seed {run['seed']} {run['drift']} {run['severity']} "
                f"({time.perf_counter() - started:.0f} s)",
                flush=True,
            )
    summary = summarise(runs, policies)
    head = headline(summary, policies)
    print(
        f"\nshare of the upload-everything gain at a {args.budget:.0%} budget, "
        "mean +- sd over seeds, in rounds"
    )
    print(table(summary, policies))
    print("\n" + ", ".join(f"{k} {v:.3f}" for k, v in head.items()))
    picture = plot(runs, policies, Path(args.plot))
    doc = {
        "budget_share": args.budget,
        "policies": policies,
        "summary": summary,
        "headline": head,
        "runs": runs,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out} and {picture}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
