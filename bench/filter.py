"""Decisions per second of the filter engine on one core.

A five-strategy policy (rare classes, confidence band per class, margin, entropy, random,
each with limits; global limits, a duty cycle, dHash dedup, drift statistics and boost) next to the
fixed rule alone ("confidence < 0.9", nothing else), measured in the same run on the same
predictions. Limits are set high enough never to be reached, so every sample walks the
strategies until one matches (the costlier path: an exhausted budget stops earlier).
``python -m bench.filter [--n 20000] [--repeat 3]``; writes
``bench/results/filter.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeloop_filter.engine import Engine
from edgeloop_filter.policy import Policy

from edgeloop.clock import SystemClock
from edgeloop.contracts import FrameRef, LabelScore, Prediction

LABELS = [f"class{i}" for i in range(10)]

FIXED_RULE: dict[str, Any] = {
    "version": "fixed",
    "strategies": [{"name": "low", "rules": [{"type": "confidence_band", "bands": [[0, 0.9]]}]}],
    "dedup": {"enabled": False},
    "drift": {"enabled": False},
}

FIVE_STRATEGIES: dict[str, Any] = {
    "version": "five",
    "strategies": [
        {"name": "rare", "rules": [{"type": "classes", "labels": ["class9"]}],
         "limits": {"per_minute": 10**6, "per_hour": 10**7}, "priority": 20},
        {"name": "band", "rules": [{"type": "confidence_band", "bands": [[0.3, 0.33]],
                                    "per_class": {"class1": [[0.4, 0.42]]}}],
         "limits": {"per_minute": 10**6}},
        {"name": "margin", "rules": [{"type": "margin", "below": 0.01}], "limits": {"per_hour": 10**7}},
        {"name": "entropy", "rules": [{"type": "entropy", "above": 2.0}],
         "limits": {"per_day": 10**8, "bytes_per_day": 10**14}},
        {"name": "random", "rules": [{"type": "random", "p": 0.01, "seed": 1}],
         "limits": {"per_hour": 10**7}},
    ],
    "limits": {"per_minute": 10**6, "per_day": 10**8},
    "schedule": {"duty_cycle": {"on_seconds": 3600, "period_seconds": 3600}},
    "dedup": {"max_distance": 4},
    "drift": {"window": 500, "reference_samples": 500, "boost": {"psi_above": 0.25, "factor": 2}},
}  # fmt: skip


def make_predictions(n: int, seed: int = 0) -> list[Prediction]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        raw = [rng.random() ** 3 for _ in LABELS]
        total = sum(raw)
        scores = [s / total for s in raw]
        order = sorted(range(len(scores)), key=scores.__getitem__, reverse=True)
        top, second = order[0], order[1]
        frame = FrameRef(
            sample_id=f"s{i:08d}", source_id=f"cam{i % 4}", seq=i, kind="image",
            captured_at=datetime(2026, 1, 5, tzinfo=UTC), file_ref=f"f/s{i:08d}.jpg", bytes=60_000,
            dhash=f"{rng.getrandbits(64):016x}",
        )  # fmt: skip
        out.append(
            Prediction(
                sample_id=frame.sample_id,
                frame=frame,
                status="ok",
                model_version="1",
                label=LABELS[top],
                confidence=scores[top],
                margin=scores[top] - scores[second],
                top_k=[LabelScore(label=LABELS[j], score=scores[j]) for j in (top, second)],
                scores=scores,
                labels=LABELS,
            )
        )
    return out


def rate(policy: dict[str, Any], predictions: Sequence[Prediction]) -> tuple[float, dict[str, int]]:
    """Decisions per CPU second of this (single-threaded) process over ``predictions``, so
    "per core" holds on a shared machine; the system clock is read per decision as the module
    does. Also the outcomes."""
    engine = Engine(Policy.model_validate(policy), rng=random.Random(0))
    clock = SystemClock()
    decide = engine.decide
    start = time.process_time()
    for p in predictions:
        decide(p, clock.now(), clock.monotonic())
    elapsed = time.process_time() - start
    return len(predictions) / elapsed, {**engine.selected, **engine.dropped}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.filter", description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="predictions per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each policy (median reported)")
    parser.add_argument("--out", default="bench/results/filter.json")
    args = parser.parse_args(argv)
    predictions = make_predictions(args.n)
    runs: dict[str, list[float]] = {"fixed_rule": [], "five_strategies": []}
    selected: dict[str, dict[str, int]] = {}
    for i in range(args.repeat):
        for name, policy in (("fixed_rule", FIXED_RULE), ("five_strategies", FIVE_STRATEGIES)):
            value, chosen = rate(policy, predictions)
            runs[name].append(value)
            selected[name] = chosen
            print(f"run {i + 1}/{args.repeat} {name:16s} {value:10,.0f} decisions/s")
    fixed, five = statistics.median(runs["fixed_rule"]), statistics.median(runs["five_strategies"])
    print(f"\nfixed rule alone      {fixed:10,.0f} decisions/s per core (median of {args.repeat})")
    print(f"five strategies       {five:10,.0f} decisions/s per core (target >= 20,000)")
    print(f"five / fixed          {five / fixed:10.2f}x")
    print(f"outcomes of {args.n:,} with five strategies: {selected['five_strategies']}")
    result = {
        "n": args.n,
        "repeat": args.repeat,
        "decisions_per_s": {"fixed_rule": fixed, "five_strategies": five},
        "runs": runs,
        "ratio_five_to_fixed": five / fixed,
        "outcomes_last_run": selected,
        "python": platform.python_version(),
        "machine": platform.machine(),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
