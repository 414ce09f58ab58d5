"""Each rule of the filter policy, alone and composed."""

from __future__ import annotations

import random
from typing import Any

import pytest
from edgeloop_filter.rules import RULES, Features, RuleConfig, compile_rule
from pydantic import TypeAdapter, ValidationError

RULE = TypeAdapter(RuleConfig)


def compiled(doc: dict[str, Any], seed: int = 1) -> Any:
    return compile_rule(RULE.validate_python(doc), random.Random(seed))


def feats(
    label: str = "cat", confidence: float = 0.5, margin: float | None = 0.3, entropy: float | None = 0.7
) -> Features:
    return Features(label, confidence, margin, entropy, "cam")


def test_every_rule_name_is_registered() -> None:
    # then
    assert set(RULES) == {
        "confidence_band", "margin", "entropy", "classes", "random", "every_nth", "all", "any", "not",
        "top_share", "novelty",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("rule", "features", "matches"),
    [
        ({"type": "confidence_band", "bands": [[0, 0.9]]}, feats(confidence=0.89), True),
        ({"type": "confidence_band", "bands": [[0, 0.9]]}, feats(confidence=0.9), False),
        ({"type": "confidence_band", "bands": [[0.2, 0.4], [0.6, 1]]}, feats(confidence=1.0), True),
        ({"type": "confidence_band", "bands": [[0.2, 0.4], [0.6, 1]]}, feats(confidence=0.5), False),
        (
            {"type": "confidence_band", "bands": [[0, 0.5]], "per_class": {"dog": [[0, 0.95]]}},
            feats(label="dog", confidence=0.9),
            True,
        ),
        (
            {"type": "confidence_band", "bands": [[0, 0.5]], "per_class": {"dog": [[0, 0.95]]}},
            feats(label="cat", confidence=0.9),
            False,
        ),
        ({"type": "margin", "below": 0.2}, feats(margin=0.1), True),
        ({"type": "margin", "below": 0.2}, feats(margin=0.2), False),
        ({"type": "margin", "below": 0.2}, feats(margin=None), False),
        ({"type": "entropy", "above": 0.5}, feats(entropy=0.6), True),
        ({"type": "entropy", "above": 0.5}, feats(entropy=0.5), False),
        ({"type": "entropy", "above": 0.5}, feats(entropy=None), False),
        ({"type": "classes", "labels": ["dog", "fox"]}, feats(label="fox"), True),
        ({"type": "classes", "labels": ["dog", "fox"]}, feats(label="cat"), False),
        ({"type": "random", "p": 1.0}, feats(), True),
        ({"type": "random", "p": 0.0}, feats(), False),
        ({"type": "all", "rules": [{"type": "classes", "labels": ["cat"]}, {"type": "margin", "below": 0.5}]},
         feats(), True),
        ({"type": "all", "rules": [{"type": "classes", "labels": ["dog"]}, {"type": "margin", "below": 0.5}]},
         feats(), False),
        ({"type": "any", "rules": [{"type": "classes", "labels": ["dog"]}, {"type": "margin", "below": 0.5}]},
         feats(), True),
        ({"type": "any", "rules": [{"type": "classes", "labels": ["dog"]}, {"type": "margin", "below": 0.1}]},
         feats(), False),
        ({"type": "not", "rule": {"type": "classes", "labels": ["dog"]}}, feats(), True),
        ({"type": "not", "rule": {"type": "classes", "labels": ["cat"]}}, feats(), False),
    ],
)  # fmt: skip
def test_rule_matches_or_not(rule: dict[str, Any], features: Features, matches: bool) -> None:
    # given
    predicate = compiled(rule)
    # when
    reason = predicate(features)
    # then
    assert (reason is not None) == matches
    if matches:
        assert reason


def test_reason_names_the_values() -> None:
    # given
    predicate = compiled({"type": "all", "rules": [
        {"type": "confidence_band", "bands": [[0, 0.9]]}, {"type": "margin", "below": 0.2}]})  # fmt: skip
    # when
    reason = predicate(feats(confidence=0.62, margin=0.05))
    # then
    assert reason == "confidence 0.62 in [0, 0.9) and margin 0.05 < 0.2"


def test_every_nth_takes_the_first_and_then_every_nth() -> None:
    # given
    predicate = compiled({"type": "every_nth", "n": 3})
    # when
    hits = [predicate(feats()) is not None for _ in range(7)]
    # then
    assert hits == [True, False, False, True, False, False, True]


def test_random_is_reproducible_with_a_seed_and_near_p() -> None:
    # given
    rule = {"type": "random", "p": 0.25, "seed": 42}
    a, b = compiled(rule, seed=1), compiled(rule, seed=2)
    # when
    draws_a = [a(feats()) is not None for _ in range(4000)]
    draws_b = [b(feats()) is not None for _ in range(4000)]
    # then
    assert draws_a == draws_b
    assert 0.2 < sum(draws_a) / 4000 < 0.3


@pytest.mark.parametrize(
    ("rule", "where"),
    [
        ({"type": "confidence_band", "bands": []}, "bands"),
        ({"type": "confidence_band", "bands": [[0.9, 0.1]]}, "low < high"),
        ({"type": "confidence_band", "bands": [[0.5, 0.5]]}, "low < high"),
        ({"type": "confidence_band", "bands": [[0, 1.5]]}, "high <= 1"),
        ({"type": "confidence_band", "bands": [[0, 0.5]], "per_class": {"a": []}}, "per_class"),
        ({"type": "margin", "below": 0}, "below"),
        ({"type": "entropy", "above": -1}, "above"),
        ({"type": "classes", "labels": []}, "labels"),
        ({"type": "random", "p": 1.5}, "p"),
        ({"type": "every_nth", "n": 0}, "n"),
        ({"type": "all", "rules": []}, "rules"),
        ({"type": "margin", "below": 0.2, "above": 1}, "above"),
        ({"type": "confidenceband", "bands": [[0, 1]]}, "type"),
    ],
)
def test_bad_rules_are_rejected_with_the_field(rule: dict[str, Any], where: str) -> None:
    # when
    with pytest.raises(ValidationError) as info:
        RULE.validate_python(rule)
    # then
    assert where in str(info.value)
