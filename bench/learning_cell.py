"""One cell of the learning benchmark: a seed, a drift kind and a severity, every policy in rounds.

The stream (800 frames, clean for its first quarter) is cut into ``ROUNDS`` consecutive chunks.
After each chunk every policy's model is retrained on everything that policy uploaded so far,
continuing from its previous model as the cloud continues from the champion, and the next chunk
is scored by that model. Policies:

- device policies (``POLICIES``): the filter's ``Engine`` with one strategy, on predictions
  built by the inference module's scoring code (with the model's embedding), capped at the
  budget (a ``ROUNDS``-th per chunk, what a chunk left unused carrying over);
- ``random``: per chunk, as many frames as the first device policy uploaded, drawn uniformly;
- ``oracle``: per chunk, as many frames, drawn among those the current model gets wrong (the
  trainer's ceiling for any selection at that count);
- ``everything``: every frame.

With ``curve`` on, the trainer's learning curve is added: accuracy after one retrain of the
initial model on n random drifted frames and on n frames it gets wrong.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import numpy as np
from edgeloop_demo.scenario import Scenario

from bench.cloud import accuracy, embeddings_and_probabilities, test_items, train_model

ROUNDS = 3
CURVE = (20, 40, 80, 160, 320)


def _rule(score: str, share: float) -> dict[str, Any]:
    return {"type": "top_share", "score": score, "share": share, "window": 128}


#: Device policies: name -> rule builder taking the target share of the stream.
POLICIES = {
    "margin": lambda share: _rule("margin", share),
    "entropy": lambda share: _rule("entropy", share),
    "margin_x_novelty": lambda share: _rule("margin_x_novelty", share),
}


def chunks(n: int, parts: int) -> list[range]:
    """``range(n)`` cut into ``parts`` consecutive pieces of (nearly) equal length."""
    cuts = [round(n * k / parts) for k in range(parts + 1)]
    return [range(cuts[k], cuts[k + 1]) for k in range(parts)]


def _policy(rule: dict[str, Any], budget: int) -> Any:
    from edgeloop_filter.policy import parse_policy

    return parse_policy(
        {
            "version": "bench",
            "strategies": [{"name": "pick", "rules": [rule], "limits": {"per_day": budget}}],
            "dedup": {"enabled": False},
            "drift": {"enabled": False},
            "audit": {"share": 0.0},
        }
    )


def select(
    model: bytes, scenario: Scenario, indices: Sequence[int], rule: dict[str, Any], budget: int
) -> list[int]:
    """Stream frames ``indices`` in order through the filter's engine with one strategy."""
    from edgeloop_filter.engine import Engine
    from edgeloop_inference.scoring import embedding_texts, predictions

    from edgeloop.contracts import FrameRef

    when = datetime(2026, 1, 5, tzinfo=UTC)
    frames = [
        FrameRef(sample_id=f"s{i:05d}", source_id="cam", seq=i, kind="image", captured_at=when)
        for i in indices
    ]
    vectors, probs = embeddings_and_probabilities(model, [scenario.stream.frames[i] for i in indices])
    scored = predictions(
        frames, probs, labels=scenario.class_names, top_k=3, include_scores=False,
        model_name="digits", model_version=hashlib.sha256(model).hexdigest()[:12], latency_ms=0.0,
        scored_at=when,
        embeddings=embedding_texts(vectors, len(frames))[0],
    )  # fmt: skip
    engine = Engine(_policy(rule, budget), rng=random.Random(0))
    return [i for i, p in zip(indices, scored, strict=True) if engine.decide(p, when, 0.0).selected]


def _wrong(model: bytes, scenario: Scenario, indices: Sequence[int]) -> list[int]:
    _, probs = embeddings_and_probabilities(model, [scenario.stream.frames[i] for i in indices])
    truth = scenario.stream.labels[list(indices)]
    return [i for i, p, t in zip(indices, probs.argmax(axis=1), truth, strict=True) if p != t]


def _draw(rng: np.random.Generator, pool: Sequence[int], n: int, fallback: Sequence[int]) -> list[int]:
    """``n`` frames from ``pool``; when it holds fewer, the rest from ``fallback``."""
    take = [int(i) for i in rng.choice(list(pool), min(n, len(pool)), replace=False)] if pool else []
    rest = [i for i in fallback if i not in set(take)]
    if len(take) < n and rest:
        take += [int(i) for i in rng.choice(rest, min(n - len(take), len(rest)), replace=False)]
    return sorted(take)


def run_cell(
    *,
    scenario: Scenario,
    initial: bytes,
    seed: int,
    budget_share: float,
    policies: Sequence[str],
    curve: bool,
) -> dict[str, Any]:
    """Accuracy on the drifted test set before, and after each policy's rounds."""
    test = test_items(scenario)
    n = len(scenario.stream)
    budget = max(ROUNDS, round(n * budget_share))
    rng = np.random.default_rng(seed)
    names = [*policies, "random", "oracle", "everything"]
    picked: dict[str, list[int]] = {p: [] for p in names}
    models = dict.fromkeys(names, initial)
    for k, piece in enumerate(chunks(n, ROUNDS)):
        frames = list(piece)
        for p in policies:
            allowed = round(budget * (k + 1) / ROUNDS) - len(picked[p])  # unused budget carries on
            picked[p] += select(models[p], scenario, frames, POLICIES[p](budget_share), max(allowed, 0))
        count = len(picked[policies[0]]) - len(picked["random"]) if policies else round(budget / ROUNDS)
        picked["random"] += _draw(rng, frames, count, [])
        picked["oracle"] += _draw(rng, _wrong(models["oracle"], scenario, frames), count, frames)
        picked["everything"] += frames
        for p in names:
            models[p] = train_model(scenario, picked[p], seed, init=models[p])
    before = accuracy(initial, test)
    cell: dict[str, Any] = {
        "before": before,
        "budget": budget,
        "policies": {p: {"after": accuracy(models[p], test), "uploaded": len(picked[p])} for p in names},
    }
    if curve:
        cell["curve"] = _curve(scenario, initial, seed, rng, test)
    return cell


def _curve(
    scenario: Scenario, initial: bytes, seed: int, rng: np.random.Generator, test: Any
) -> dict[str, Any]:
    drifted = [int(i) for i in np.flatnonzero(scenario.stream.drifted)]
    wrong = _wrong(initial, scenario, drifted)
    out: dict[str, Any] = {"labels": [], "random": [], "oracle": []}
    for n in CURVE:
        out["labels"].append(n)
        for name, pool in (("random", drifted), ("oracle", wrong)):
            picks = _draw(rng, pool, n, drifted)
            out[name].append(accuracy(train_model(scenario, picks, seed, init=initial), test))
    return out
