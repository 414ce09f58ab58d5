"""Decisions per second of the filter engine on one core.

A five-strategy policy (rare classes, confidence band per class, margin, entropy, random,
each with limits; global limits, a duty cycle, dHash dedup, drift statistics and boost) next to the
fixed rule alone ("confidence < 0.9", nothing else), measured in the same run on the same
predictions. Limits are set high enough never to be reached, so every sample walks the
strategies until one matches (the costlier path: an exhausted budget stops earlier).

Each policy is fed two ways: one prediction at a time (the clock read per decision) and in
batches of ``--batch`` as the module takes an ``edgeloop.predictions/1`` message (one
``Engine.decide_batch`` call and one clock read a batch).
``python -m bench.filter [--n 20000] [--repeat 3] [--batch 64]``; writes
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


def rate_batched(
    policy: dict[str, Any], predictions: Sequence[Prediction], batch: int
) -> tuple[float, dict[str, int]]:
    """Decisions per CPU second fed in batches of ``batch`` (one engine call and one clock read
    a batch, as the module decides a message); also the outcomes."""
    engine = Engine(Policy.model_validate(policy), rng=random.Random(0))
    clock = SystemClock()
    decide_batch = engine.decide_batch
    chunks = [predictions[i : i + batch] for i in range(0, len(predictions), batch)]
    start = time.process_time()
    for chunk in chunks:
        decide_batch(chunk, clock.now(), clock.monotonic())
    elapsed = time.process_time() - start
    return len(predictions) / elapsed, {**engine.selected, **engine.dropped}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.filter", description=__doc__)
    parser.add_argument("--n", type=int, default=20_000, help="predictions per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each policy (median reported)")
    parser.add_argument("--batch", type=int, default=64, help="predictions a batch when fed in batches")
    parser.add_argument("--out", default="bench/results/filter.json")
    args = parser.parse_args(argv)
    predictions = make_predictions(args.n)
    policies = (("fixed_rule", FIXED_RULE), ("five_strategies", FIVE_STRATEGIES))
    runs: dict[str, list[float]] = {f"{name}{way}": [] for name, _ in policies for way in ("", "_batched")}
    selected: dict[str, dict[str, int]] = {}
    for i in range(args.repeat):
        for name, policy in policies:
            value, chosen = rate(policy, predictions)
            batched, chosen_batched = rate_batched(policy, predictions, args.batch)
            runs[name].append(value)
            runs[f"{name}_batched"].append(batched)
            selected[name] = chosen
            selected[f"{name}_batched"] = chosen_batched
            print(
                f"run {i + 1}/{args.repeat} {name:16s} {value:10,.0f} decisions/s one at a time, "
                f"{batched:10,.0f} in batches of {args.batch}"
            )
    med = {name: statistics.median(values) for name, values in runs.items()}
    fixed, five = med["fixed_rule"], med["five_strategies"]
    print(f"\n{'':22s}{'one at a time':>16s}{f'batches of {args.batch}':>18s}  (median of {args.repeat})")
    print(f"fixed rule alone      {fixed:16,.0f}{med['fixed_rule_batched']:18,.0f}  decisions/s per core")
    print(f"five strategies       {five:16,.0f}{med['five_strategies_batched']:18,.0f}  decisions/s per core")
    print(f"five / fixed          {five / fixed:16.2f}x")
    print(f"outcomes of {args.n:,} with five strategies: {selected['five_strategies']}")
    result = {
        "n": args.n,
        "repeat": args.repeat,
        "batch": args.batch,
        # "batched": the five strategies fed in batches, the figure the targets table reads
        "decisions_per_s": {**med, "batched": med["five_strategies_batched"]},
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
