"""Learning efficiency: accuracy gained per sample uploaded, for four ways of choosing uploads.

    python -m bench.learning [--seeds 2] [--severities mild,severe] [--drift mixed] [--budget 0.1]

Offline, no hub: the digits drift scenario (a stream of 800 frames, clean for its first quarter,
then drifted; a drifted test set of 400), the cloud's own training (``train``: clean base frames
plus the uploaded stream frames, labelled from the scenario's ground truth) and the gate's
``evaluate`` for accuracy on the drifted test set. The device's choice runs through the filter's
``Engine`` on predictions built by the inference module's scoring code:

- margin: the uncertainty policy the demo ships (margin below 0.2), capped at the budget
  (10% of the stream: 80 uploads);
- random: the same number of uploads as margin got, drawn uniformly from the same frames;
- fixed rule: confidence < 0.9, no cap (the old rule: it uploads what it selects);
- everything: every stream frame.

One shot: the initial model scores the whole stream, the selection is retrained on once.
Rounds: the stream in 3 chunks; after each chunk the model is retrained on everything
uploaded so far, and the next chunk is scored by that model (a third of the budget per
chunk, what a chunk left unused carrying over). Printed per drift severity (means over
seeds): accuracy before and after, samples uploaded, gain per 100 samples (accuracy points),
and the share of the upload-everything gain.
Writes ``bench/results/learning.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.cloud import accuracy, probabilities, test_items, train_model
from edgeloop.demo.scenario import Scenario, ScenarioConfig, build

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 3
POLICIES = ("margin", "random", "fixed_rule", "everything")
MARGIN_BELOW = 0.2
FIXED_BELOW = 0.9


# -- pure helpers --------------------------------------------------------------------------
def gain_per_100(before: float, after: float, samples: int) -> float:
    """Accuracy points (0..100 scale) gained per 100 samples uploaded."""
    if samples <= 0:
        return 0.0
    return (after - before) * 100.0 * 100.0 / samples


def share_of_gain(before: float, after: float, after_everything: float) -> float:
    """The gain as a share of the gain from uploading everything (0 when that gained nothing)."""
    full = after_everything - before
    return (after - before) / full if full > 0 else 0.0


def chunks(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` consecutive pieces of (nearly) equal length."""
    cuts = [round(n * k / parts) for k in range(parts + 1)]
    return [range(cuts[k], cuts[k + 1]) for k in range(parts)]


# -- the device's choice -------------------------------------------------------------------
def _policy(rule: dict[str, Any], budget: int | None) -> Any:
    from edgeloop_filter.policy import parse_policy

    limits = {"per_day": budget} if budget is not None else {}
    return parse_policy(
        {
            "version": "bench",
            "strategies": [{"name": "pick", "rules": [rule], "limits": limits}],
            "dedup": {"enabled": False},
            "drift": {"enabled": False},
        }
    )


def select(
    model: bytes, scenario: Scenario, indices: Sequence[int], rule: dict[str, Any], budget: int | None
) -> list[int]:
    """Stream frames ``indices`` in order through the filter's engine with one strategy."""
    from edgeloop_filter.engine import Engine
    from edgeloop_inference.scoring import predictions

    from edgeloop.contracts import FrameRef

    when = datetime(2026, 1, 5, tzinfo=UTC)
    frames = [
        FrameRef(sample_id=f"s{i:05d}", source_id="cam", seq=i, kind="image", captured_at=when)
        for i in indices
    ]
    probs = probabilities(model, [scenario.stream.frames[i] for i in indices])
    scored = predictions(
        frames, probs, labels=scenario.class_names, top_k=3, include_scores=False,
        model_name="digits", model_version="bench", latency_ms=0.0, scored_at=when,
    )  # fmt: skip
    engine = Engine(_policy(rule, budget), rng=random.Random(0))
    return [i for i, p in zip(indices, scored, strict=True) if engine.decide(p, when, 0.0).selected]


MARGIN_RULE = {"type": "margin", "below": MARGIN_BELOW}
FIXED_RULE = {"type": "confidence_band", "bands": [[0.0, FIXED_BELOW]]}


# -- one scenario --------------------------------------------------------------------------
def run_one(seed: int, drift: str, severity: str, budget_share: float) -> dict[str, Any]:
    """Accuracy before/after and uploads of each policy, one shot and in rounds."""
    scenario = build(ScenarioConfig(seed=seed, drift=drift, severity=severity))  # type: ignore[arg-type]
    test = test_items(scenario)
    n = len(scenario.stream)
    budget = max(ROUNDS, round(n * budget_share))
    rng = np.random.default_rng(seed)
    initial = train_model(scenario, [], seed)
    before = accuracy(initial, test)
    everything = list(range(n))
    after_everything = accuracy(train_model(scenario, everything, seed), test)

    def result(chosen: list[int], model: bytes | None = None) -> dict[str, Any]:
        trained = model if model is not None else train_model(scenario, chosen, seed)
        return {"after": accuracy(trained, test), "uploaded": len(chosen)}

    margin = select(initial, scenario, everything, MARGIN_RULE, budget)
    one_shot = {
        "margin": result(margin),
        "random": result(sorted(int(i) for i in rng.choice(n, len(margin), replace=False))),
        "fixed_rule": result(select(initial, scenario, everything, FIXED_RULE, None)),
        "everything": {"after": after_everything, "uploaded": n},
    }
    rounds: dict[str, dict[str, Any]] = {}
    picked: dict[str, list[int]] = {"margin": [], "random": [], "fixed_rule": []}
    models = {"margin": initial, "fixed_rule": initial}
    for k, piece in enumerate(chunks(n, ROUNDS)):
        share = round(budget * (k + 1) / ROUNDS) - len(picked["margin"])  # unused budget carries on
        got = select(models["margin"], scenario, piece, MARGIN_RULE, share)
        picked["margin"] += got
        picked["random"] += [int(i) for i in rng.choice(list(piece), len(got), replace=False)]
        picked["fixed_rule"] += select(models["fixed_rule"], scenario, piece, FIXED_RULE, None)
        for name in models:
            models[name] = train_model(scenario, picked[name], seed)
    rounds["margin"] = result(picked["margin"], models["margin"])
    rounds["random"] = result(picked["random"])
    rounds["fixed_rule"] = result(picked["fixed_rule"], models["fixed_rule"])
    rounds["everything"] = one_shot["everything"]
    for runs in (one_shot, rounds):
        for r in runs.values():
            r["gain_per_100"] = gain_per_100(before, r["after"], r["uploaded"])
            r["share_of_everything"] = share_of_gain(before, r["after"], after_everything)
    return {
        "seed": seed,
        "drift": drift,
        "severity": severity,
        "budget": budget,
        "before": before,
        "one_shot": one_shot,
        "rounds": rounds,
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Means over seeds, per severity and mode and policy."""
    out: dict[str, dict[str, Any]] = {}
    for severity in dict.fromkeys(r["severity"] for r in runs):
        group = [r for r in runs if r["severity"] == severity]
        entry: dict[str, Any] = {"before": statistics.mean(r["before"] for r in group)}
        for mode in ("one_shot", "rounds"):
            entry[mode] = {
                policy: {
                    key: statistics.mean(float(r[mode][policy][key]) for r in group)
                    for key in ("after", "uploaded", "gain_per_100", "share_of_everything")
                }
                for policy in POLICIES
            }
        out[severity] = entry
    return out


def table(summary: dict[str, dict[str, Any]]) -> str:
    lines = [
        f"{'drift':8s} {'mode':9s} {'policy':11s} {'acc before':>10s} {'after':>6s} "
        f"{'uploaded':>8s} {'gain/100':>8s} {'share of all':>12s}"
    ]
    for severity, entry in summary.items():
        for mode in ("one_shot", "rounds"):
            for policy in POLICIES:
                r = entry[mode][policy]
                lines.append(
                    f"{severity:8s} {mode:9s} {policy:11s} {entry['before']:10.3f} {r['after']:6.3f} "
                    f"{r['uploaded']:8.0f} {r['gain_per_100']:8.1f} {r['share_of_everything']:12.0%}"
                )
    return "\n".join(lines)


def headline(summary: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Gain per sample of margin over random, and over the fixed rule, in rounds (mean over
    severities)."""
    rounds = [entry["rounds"] for entry in summary.values()]

    def mean(policy: str) -> float:
        return statistics.mean(r[policy]["gain_per_100"] for r in rounds)

    margin, rand, fixed = mean("margin"), mean("random"), mean("fixed_rule")
    return {
        "margin_to_random_gain_per_sample": margin / rand if rand > 0 else float("nan"),
        "margin_to_fixed_rule_gain_per_sample": margin / fixed if fixed > 0 else float("nan"),
        "margin_to_everything_gain_per_sample": margin / mean("everything"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.learning",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--seeds", type=int, default=2, help="seeds per severity (7, 8, ...)")
    parser.add_argument("--severities", default="mild,severe", help="comma-separated: mild,medium,severe")
    parser.add_argument("--drift", default="mixed", choices=["rotate", "blur", "contrast", "mixed"])
    parser.add_argument("--budget", type=float, default=0.1, help="margin's cap, as a share of the stream")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "learning.json"))
    args = parser.parse_args(argv)
    started = time.perf_counter()
    runs = []
    for severity in args.severities.split(","):
        for seed in range(7, 7 + args.seeds):
            runs.append(run_one(seed, args.drift, severity.strip(), args.budget))
            print(f"  {severity} seed {seed} done ({time.perf_counter() - started:.0f} s)", flush=True)
    summary = summarise(runs)
    head = headline(summary)
    print(f"\ndrift {args.drift}, means of {args.seeds} seed(s); gain/100 = accuracy points per 100 uploads")
    print(table(summary))
    print(
        f"\nin rounds, gain per sample: margin / random {head['margin_to_random_gain_per_sample']:.2f}x, "
        f"margin / fixed rule {head['margin_to_fixed_rule_gain_per_sample']:.2f}x, "
        f"margin / everything {head['margin_to_everything_gain_per_sample']:.2f}x"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "drift": args.drift,
        "budget_share": args.budget,
        "summary": summary,
        "headline": head,
        "runs": runs,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
