"""Cloud side: how long a candidate takes, and what retraining in rounds buys, side by side.

    python -m bench.cloud [--seeds 2]

On the digits scenario (mixed drift, medium): the time to train and export a candidate and to
score it on the gate's held-out set; then, with the same label budget (90 drifted stream
samples), the accuracy on the drifted test set of one retrain on margin-picked samples, one on
random samples, and three rounds of margin picks with a retrain after each (what the trigger
does when it fires on each batch of labels). Writes ``bench/results/cloud.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np
from edgeloop_cloud import features
from edgeloop_cloud.gate import EvalItem, evaluate
from edgeloop_cloud.training import Example, TrainingParams, default_preprocess, train
from edgeloop_demo.scenario import Scenario, ScenarioConfig, build

BUDGET = 90
ROUNDS = 3


def train_model(scenario: Scenario, new: list[int], seed: int, *, init: bytes | None = None) -> bytes:
    """The cloud's training on the scenario's clean base frames plus stream frames ``new``
    (labelled with their ground truth), continuing from ``init`` as the cloud continues from
    its champion; the exported ONNX model."""
    names = scenario.class_names
    base = [
        Example(image=f, label=names[int(lbl)])
        for f, lbl in zip(scenario.base.frames, scenario.base.labels, strict=True)
    ]
    extra = [
        Example(
            image=scenario.stream.frames[i],
            label=names[int(scenario.stream.labels[i])],
            sample_id=f"s{i:05d}",
        )
        for i in new
    ]
    return train(
        base=base, new=extra, preprocess=default_preprocess(), params=TrainingParams(seed=seed), init=init
    ).to_bytes()


def probabilities(model: bytes, frames: list[np.ndarray]) -> np.ndarray:
    """Class probabilities of ``frames`` under ``model``, pre-processed as the cloud trains."""
    return embeddings_and_probabilities(model, frames)[1]


def embeddings_and_probabilities(
    model: bytes, frames: list[np.ndarray]
) -> tuple[np.ndarray | None, np.ndarray]:
    """The model's embedding output (None when it has none) and class probabilities of ``frames``."""
    import onnxruntime as ort

    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = features.batch(frames, default_preprocess())
    names = [o.name for o in session.get_outputs()]
    wanted = ["probabilities", "embedding"] if "embedding" in names else ["probabilities"]
    out = session.run(wanted, {"input": x})
    return (np.asarray(out[1]) if len(out) > 1 else None), np.asarray(out[0])


def _margins(model: bytes, scenario: Scenario, pool: list[int]) -> np.ndarray:
    probs = np.sort(probabilities(model, [scenario.stream.frames[i] for i in pool]), axis=1)
    return np.asarray(probs[:, -1] - probs[:, -2])


def test_items(scenario: Scenario) -> list[EvalItem]:
    """The drifted test set as the gate's evaluation items."""
    names = scenario.class_names
    return [
        EvalItem(f, names[int(lbl)])
        for f, lbl in zip(scenario.test.frames, scenario.test.labels, strict=True)
    ]


def accuracy(model: bytes, items: list[EvalItem]) -> float:
    return evaluate(model, items, repeats=1).accuracy


def _one_seed(seed: int) -> dict[str, float]:
    scenario = build(ScenarioConfig(seed=seed))
    test = test_items(scenario)
    pool = [i for i in range(len(scenario.stream)) if scenario.stream.drifted[i]]
    rng = np.random.default_rng(seed)
    initial = train_model(scenario, [], seed)
    one_shot = [pool[i] for i in np.argsort(_margins(initial, scenario, pool))[:BUDGET]]
    random_pick = [int(i) for i in rng.choice(pool, BUDGET, replace=False)]
    chunks = np.array_split(np.asarray(pool), ROUNDS)
    chosen: list[int] = []
    model = initial
    for chunk in chunks:
        candidates = [int(i) for i in chunk]
        picks = np.argsort(_margins(model, scenario, candidates))[: BUDGET // ROUNDS]
        chosen += [candidates[i] for i in picks]
        model = train_model(scenario, chosen, seed)
    return {
        "before": accuracy(initial, test),
        "one_shot_margin": accuracy(train_model(scenario, one_shot, seed), test),
        "one_shot_random": accuracy(train_model(scenario, random_pick, seed), test),
        "rounds_margin": accuracy(model, test),
        "all_labelled": accuracy(train_model(scenario, pool, seed), test),
    }


def _timings(seed: int) -> dict[str, float]:
    scenario = build(ScenarioConfig(seed=seed))
    names = scenario.class_names
    hold = [
        EvalItem(f, names[int(lbl)])
        for f, lbl in zip(scenario.holdout.frames, scenario.holdout.labels, strict=True)
    ]
    train_s, eval_s = [], []
    for _ in range(3):
        start = time.perf_counter()
        model = train_model(scenario, list(range(BUDGET)), seed)
        train_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        evaluate(model, hold, repeats=5)
        eval_s.append(time.perf_counter() - start)
    return {
        "train_and_export_s": statistics.median(train_s),
        "gate_evaluate_s": statistics.median(eval_s),
        "train_examples": len(scenario.base) + BUDGET,
        "holdout_items": len(hold),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args()
    timings = _timings(7)
    runs = [_one_seed(7 + s) for s in range(args.seeds)]
    mean = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    gain = mean["all_labelled"] - mean["before"]
    share = {
        k: (mean[k] - mean["before"]) / gain if gain else 0.0
        for k in ("one_shot_margin", "one_shot_random", "rounds_margin")
    }
    seconds, examples = timings["train_and_export_s"], timings["train_examples"]
    print(f"train + export a candidate: {seconds:.2f} s ({examples} examples)")
    print(
        f"gate evaluation on {timings['holdout_items']} held-out frames: {timings['gate_evaluate_s']:.2f} s"
    )
    print(f"drifted test accuracy, mean of {args.seeds} seeds, budget {BUDGET} labels:")
    for key, value in mean.items():
        extra = f"  ({share[key]:.0%} of the gain from labelling all)" if key in share else ""
        print(f"  {key:16s} {value:.3f}{extra}")
    out = Path("bench/results/cloud.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        json.dumps({"timings": timings, "accuracy": mean, "share_of_gain": share, "runs": runs}, indent=2)
        + "\n"
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
