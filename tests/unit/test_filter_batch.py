"""Deciding a message's predictions in one call decides them as one at a time would, and the
selected samples the engine builds without validating equal validated ones."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from edgeloop_filter.engine import Decision, Engine

from edgeloop.contracts import Prediction, SelectedSample, encode_embedding
from tests.filter_helpers import policy_engine, prediction

LABELS = ["cat", "dog", "fox", "owl"]

#: Every check a decision walks: audit, a duty cycle, class rules, a class cap, bands, margin,
#: entropy, random, every_nth, top_share, novelty, strategy and policy budgets, dedup, drift.
BUSY: dict[str, Any] = {
    "version": "busy",
    "strategies": [
        {"name": "rare", "rules": [{"type": "classes", "labels": ["fox"]}], "limits": {"per_minute": 3},
         "tags": ["rare"], "priority": 20},
        {"name": "unsure", "rules": [{"type": "any", "rules": [{"type": "margin", "below": 0.05},
                                                               {"type": "entropy", "above": 1.2}]},
                                     {"type": "not", "rule": {"type": "classes", "labels": ["owl"]}}],
         "schedule": {"duty_cycle": {"on_seconds": 40, "period_seconds": 60}}},
        {"name": "capped", "rules": [{"type": "confidence_band", "bands": [[0.0, 0.6]],
                                      "per_class": {"owl": [[0.2, 0.9]]}}],
         "class_balance": {"max_share": 0.4, "window": 20, "min_selections": 4},
         "limits": {"per_hour": 40, "bytes_per_day": 200_000}},
        {"name": "share", "rules": [{"type": "top_share", "score": "margin", "share": 0.2, "window": 32}],
         "limits": {"per_minute": 4}},
        {"name": "novel", "rules": [{"type": "novelty", "above": 0.3}], "limits": {"per_minute": 2}},
        {"name": "nth", "rules": [{"type": "every_nth", "n": 7}]},
        {"name": "random", "rules": [{"type": "random", "p": 0.1, "seed": 3}], "limits": {"per_minute": 2}},
    ],
    "audit": {"share": 0.1},
    "limits": {"per_minute": 9, "per_day": 500},
    "dedup": {"max_distance": 6, "window_seconds": 30},
    "drift": {"window": 60, "reference_samples": 40, "boost": {"psi_above": 0.1, "factor": 2}},
}  # fmt: skip

FIXED: dict[str, Any] = {
    "version": "fixed",
    "strategies": [{"name": "low", "rules": [{"type": "confidence_band", "bands": [[0, 0.9]]}]}],
}


def random_prediction(rng: random.Random, i: int) -> Prediction:
    """Usable most of the time; now and then an error, a missing field, a repeated dHash, an
    embedding (good or malformed) or a traceparent."""
    kind = rng.random()
    if kind < 0.03:
        return prediction(i, status="error")
    if kind < 0.06:
        return prediction(i, label=None, confidence=None)
    raw = [rng.random() ** 3 + 1e-6 for _ in LABELS]
    scores = [s / sum(raw) for s in raw]
    top = max(range(len(LABELS)), key=scores.__getitem__)
    extra: dict[str, Any] = {}
    roll = rng.random()
    if roll < 0.3:
        angle = rng.uniform(0.0, 2 * math.pi)
        extra["embedding"] = encode_embedding([math.cos(angle), math.sin(angle), rng.random()])
    elif roll < 0.33:
        extra["embedding"] = "not base64!"
    if rng.random() < 0.2:
        extra["traceparent"] = f"00-{rng.getrandbits(128):032x}-{rng.getrandbits(64):016x}-01"
    return prediction(
        i,
        label=LABELS[top],
        confidence=scores[top],
        scores=scores,
        source=f"cam{rng.randrange(3)}",
        dhash=f"{rng.choice([0, 0xFF, rng.getrandbits(64)]):016x}",
        size=rng.randrange(1, 20_000),
        model_version=rng.choice(["1", "1", "1", "2"]),
        **extra,
    )


def stream(seed: int, n: int) -> list[tuple[list[Prediction], datetime, float]]:
    """Predictions in batches of 1 to 40, each batch at its own instant a few seconds on."""
    rng = random.Random(seed)
    when, mono, i = datetime(2026, 1, 5, 12, 0, tzinfo=UTC), 100.0, 0
    out = []
    while i < n:
        size = rng.randint(1, 40)
        out.append(([random_prediction(rng, i + k) for k in range(size)], when, mono))
        i += size
        step = rng.uniform(0.0, 9.0)
        when, mono = when + timedelta(seconds=step), mono + step
    return out


def as_data(decision: Decision) -> tuple[Any, ...]:
    sample = decision.selected
    return (sample.model_dump() if sample is not None else None, decision.dropped, decision.detail)


@pytest.mark.parametrize("doc", [BUSY, FIXED], ids=["busy", "fixed"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_batch_is_decided_as_its_predictions_one_at_a_time(doc: dict[str, Any], seed: int) -> None:
    # given the same policy, random source and predictions
    batched, single = policy_engine(doc, seed), policy_engine(doc, seed)
    batches = stream(seed, 1500)

    # when one engine decides each batch in one call and the other one prediction at a time
    by_batch = [d for preds, when, mono in batches for d in batched.decide_batch(preds, when, mono)]
    one_by_one = [single.decide(p, when, mono) for preds, when, mono in batches for p in preds]

    # then every decision, counter and piece of saved state is the same
    assert [as_data(d) for d in by_batch] == [as_data(d) for d in one_by_one]
    assert batched.seen == single.seen == len(by_batch)
    assert batched.selected == single.selected
    assert batched.dropped == single.dropped
    assert batched.snapshot() == single.snapshot()
    assert batched.embedding_problems == single.embedding_problems
    if doc is BUSY:  # the stream reaches every way out, or this proves little
        assert {"rare", "capped", "unsure", "share", "novel", "nth", "audit"} <= set(batched.selected)
        assert {"error_status", "missing_fields", "over_budget", "duplicate", "class_capped"} <= set(
            batched.dropped
        )


@pytest.mark.parametrize("seed", [0, 1])
def test_selected_samples_equal_validated_ones(seed: int) -> None:
    # given a busy policy's selections, audit and embeddings included
    engine = policy_engine(BUSY, seed)
    samples = [
        d.selected
        for preds, when, mono in stream(seed, 800)
        for d in engine.decide_batch(preds, when, mono)
        if d.selected is not None
    ]
    assert len(samples) > 50

    for sample in samples:
        # when the same fields go through validation
        validated = SelectedSample.model_validate(dict(sample))

        # then it is the same sample, field for field, on the wire and in what pydantic tracks
        assert sample == validated
        assert sample.to_wire() == validated.to_wire()
        assert sample.model_dump_json() == validated.model_dump_json()
        assert sample.model_fields_set == validated.model_fields_set
        assert sample.prediction.embedding is None
        assert type(sample.tags) is list
        with pytest.raises(Exception, match="frozen"):
            sample.strategy = "other"  # type: ignore[misc]


def test_samples_do_not_share_their_tags_list() -> None:
    # given two selections by the same strategy
    every = {"name": "all", "rules": [{"type": "every_nth", "n": 1}], "tags": ["a"]}
    engine = policy_engine({"version": "t", "strategies": [every], "audit": {"share": 0}})
    first, second = engine.decide_batch([prediction(1), prediction(2)], datetime(2026, 1, 5, tzinfo=UTC), 0.0)
    assert first.selected is not None
    assert second.selected is not None

    # when one sample's tags are changed in place
    first.selected.tags.append("b")

    # then the other sample and the strategy keep theirs
    assert second.selected.tags == ["a"]
    [third] = engine.decide_batch([prediction(3)], datetime(2026, 1, 5, tzinfo=UTC), 1.0)
    assert third.selected is not None
    assert third.selected.tags == ["a"]


def test_a_new_policy_takes_effect_for_the_next_batch() -> None:
    # given an engine whose policy selects everything through its audit share
    engine: Engine = policy_engine({"version": "a", "audit": {"share": 0.2}, "strategies": [
        {"name": "all", "rules": [{"type": "every_nth", "n": 1}]}]})  # fmt: skip
    when = datetime(2026, 1, 5, tzinfo=UTC)
    first = engine.decide_batch([prediction(i) for i in range(200)], when, 0.0)
    assert any(d.selected is not None and d.selected.strategy == "audit" for d in first)

    # when a policy without audit, with dedup off and one strategy per class is put in force
    cats = {"name": "cats", "rules": [{"type": "classes", "labels": ["cat"]}]}
    engine.set_policy(
        policy_engine(
            {"version": "b", "audit": {"share": 0}, "dedup": {"enabled": False}, "strategies": [cats]}
        ).policy
    )
    same_hash = [prediction(i, dhash="00000000000000ff") for i in range(200, 210)]
    second = engine.decide_batch([*same_hash, prediction(300, label="dog")], when, 1.0)

    # then the next batch follows it: no audit, no dedup, the new strategy
    assert [d.selected.strategy if d.selected else d.dropped for d in second] == ["cats"] * 10 + [
        "no_strategy_matched"
    ]
