"""Memory the filter module holds as predictions stream through it: does it level off?

The soak (``python -m bench.soak``) showed the filter's RSS growing for 30 minutes, but the demo
stream (800 predictions) is shorter than the filter's ``dryRun`` history (``history_size``,
1000). This drives the real ``FilterModule`` on its runtime (in-memory hub, the five-strategy
policy of ``bench.filter``, dedup and drift on) with several times the history and prints the
Python heap it holds (tracemalloc) at checkpoints, with the ratio of the last checkpoint to the
one where the history became full: about 1.0 means bounded.

    python -m bench.filter_memory [--n 5000] [--history 1000]
"""

from __future__ import annotations

import argparse
import gc
import json
import threading
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edgeloop_filter.module import FilterModule

from bench.filter import FIVE_STRATEGIES, make_predictions
from edgeloop.runtime import ModuleRuntime
from edgeloop.runtime.fake import FakeHubClient


def held_bytes() -> int:
    gc.collect()
    current, _peak = tracemalloc.get_traced_memory()
    return current


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.filter_memory", description=__doc__)
    parser.add_argument("--n", type=int, default=5000, help="predictions streamed through")
    parser.add_argument("--history", type=int, default=1000, help="the module's history_size")
    parser.add_argument("--out", default="bench/results/filter_memory.json")
    args = parser.parse_args(argv)
    predictions = make_predictions(args.n, seed=3)
    hub = FakeHubClient({"history_size": args.history, "policy": FIVE_STRATEGIES})
    module = FilterModule()
    runtime = ModuleRuntime(module, client=hub, tick_interval=0.05)
    thread = threading.Thread(target=runtime.run, daemon=True)
    tracemalloc.start()
    thread.start()
    while module.ctx is None:
        time.sleep(0.01)
    checkpoints = sorted({args.n // 10, args.history, args.history * 2, args.n // 2, args.n})
    base = held_bytes()
    rows: list[dict[str, Any]] = []
    done = 0
    for mark in checkpoints:
        for start in range(done, mark, 16):
            hub.push_input("predictions", predictions[start : min(start + 16, mark)])
        done = mark
        while runtime.counters["messages_acknowledged"] < -(-mark // 16) and thread.is_alive():
            time.sleep(0.01)
        # what a real hub would have taken away (the fake one keeps it for tests to read)
        hub.sent.clear()
        hub.acknowledged.clear()
        hub.reported_patches.clear()
        rows.append({"predictions": mark, "held_mb": round((held_bytes() - base) / 1e6, 2)})
        print(f"after {mark:6d} predictions: filter holds {rows[-1]['held_mb']:6.2f} MB more than at start")
    runtime.request_stop("bench over")
    thread.join(30)
    tracemalloc.stop()
    full = next(r for r in rows if r["predictions"] >= args.history)
    ratio = rows[-1]["held_mb"] / full["held_mb"] if full["held_mb"] else float("nan")
    print(
        f"held at {rows[-1]['predictions']} / held at {full['predictions']} (history full) = {ratio:.2f} "
        "(about 1.0: bounded)"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    result = {"history": args.history, "rows": rows, "ratio": round(ratio, 3)}
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
