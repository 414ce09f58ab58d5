"""Drift-aware shares and class balance: what the policy does while PSI is high, and how it
keeps one predicted class from taking a strategy's selections."""

from __future__ import annotations

import random
from typing import Any

import pytest

from tests.filter_helpers import chosen, decide, policy_engine, prediction

#: A fixed reference: the model used to be confident.
CONFIDENT = {"bins": 4, "window": 100, "reference": {"confidence": [0.0, 0.0, 0.1, 0.9]}}


def phase(n: int, start: int, low: float, high: float, seed: int) -> list[Any]:
    rng = random.Random(seed)
    return [prediction(start + i, confidence=rng.uniform(low, high), margin=rng.random()) for i in range(n)]


@pytest.mark.parametrize(
    "rule",
    [
        {"type": "random", "p": 0.05, "drift_p": 0.3},
        {"type": "top_share", "score": "margin", "share": 0.05, "drift_share": 0.3, "window": 100},
    ],
)
def test_high_psi_raises_the_selected_share(rule: dict[str, Any]) -> None:
    # given: a stable phase like the reference, then a confidence drop
    doc = {"strategies": [{"name": "s", "rules": [rule]}], "drift": CONFIDENT, "audit": {"share": 0}}
    engine = policy_engine(doc)
    stable = decide(engine, phase(1000, 0, 0.7, 1.0, seed=1))
    detected_before = engine.drift.detected()
    # when
    drifted = decide(engine, phase(1000, 1000, 0.3, 0.7, seed=2))
    # then: the share rises from about 5% to about 30% once PSI crosses psi_above
    assert not detected_before
    assert engine.drift.detected()
    assert engine.drift.psi()["psi_confidence"] >= 0.25
    assert len(chosen(stable)) / 1000 == pytest.approx(0.05, abs=0.02)
    assert len(chosen(drifted[200:])) / 800 == pytest.approx(0.3, abs=0.05)


def test_without_drift_shares_nothing_changes_under_drift() -> None:
    # given
    doc = {
        "strategies": [{"name": "s", "rules": [{"type": "random", "p": 0.05}]}],
        "drift": CONFIDENT,
        "audit": {"share": 0},
    }
    engine = policy_engine(doc)
    # when
    drifted = decide(engine, phase(1000, 0, 0.3, 0.7, seed=2))
    # then
    assert engine.drift.detected()
    assert len(chosen(drifted)) / 1000 == pytest.approx(0.05, abs=0.02)


def test_psi_above_sets_when_drift_counts_as_detected() -> None:
    # given: the same drift against a threshold it does not reach
    drift = {**CONFIDENT, "psi_above": 50.0}
    doc = {"strategies": [{"name": "s", "rules": [{"type": "random", "p": 0.05, "drift_p": 0.5}]}],
           "drift": drift, "audit": {"share": 0}}  # fmt: skip
    engine = policy_engine(doc)
    # when
    drifted = decide(engine, phase(1000, 0, 0.3, 0.7, seed=2))
    # then
    assert not engine.drift.detected()
    assert len(chosen(drifted)) / 1000 == pytest.approx(0.05, abs=0.02)


def test_class_balance_caps_the_share_of_one_predicted_class() -> None:
    # given: 90% of frames predicted 'cat'; a strategy that takes anything, capped at 50% a class
    balance = {"max_share": 0.5, "window": 40, "min_selections": 10}
    doc = {
        "strategies": [{"name": "all", "rules": [{"type": "random", "p": 0.5}], "class_balance": balance}],
        "audit": {"share": 0},
    }
    engine = policy_engine(doc)
    stream = [prediction(i, label="cat" if i % 10 else "dog") for i in range(2000)]
    # when
    picked = chosen(decide(engine, stream))
    # then: 'dog' is no longer drowned out, and the refusals are counted
    cats = sum(s.prediction.label == "cat" for s in picked[20:])
    assert cats / len(picked[20:]) <= 0.55
    assert sum(s.prediction.label == "dog" for s in picked) >= 90
    assert engine.dropped["class_capped"] > 0


def test_class_balance_waits_for_min_selections() -> None:
    # given
    balance = {"max_share": 0.5, "min_selections": 10}
    doc = {
        "strategies": [{"name": "all", "rules": [{"type": "random", "p": 1.0}], "class_balance": balance}],
        "audit": {"share": 0},
    }
    engine = policy_engine(doc)
    # when: only cats
    picked = chosen(decide(engine, [prediction(i, label="cat") for i in range(30)]))
    # then: the first ten go through, then the cap holds
    assert len(picked) == 10
    assert engine.dropped["class_capped"] == 20


def test_a_class_at_its_share_is_not_capped_so_two_balanced_classes_keep_flowing() -> None:
    # given: two classes, each capped at half
    balance = {"max_share": 0.5, "window": 20, "min_selections": 4}
    doc = {
        "strategies": [{"name": "all", "rules": [{"type": "random", "p": 1.0}], "class_balance": balance}],
        "audit": {"share": 0},
    }
    engine = policy_engine(doc)
    # when: they alternate
    picked = chosen(decide(engine, [prediction(i, label="ab"[i % 2]) for i in range(100)]))
    # then
    assert len(picked) == 100
