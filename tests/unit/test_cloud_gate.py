"""The registry gate: paired decisions on the audit set and the clean hold-out, with reasons.

Evaluations are built from per-item correctness, so each case states exactly which items each
model gets right; a few cases score real ONNX models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from edgeloop_cloud.evaluation import AUDIT, HOLDOUT
from edgeloop_cloud.gate import EvalItem, Evaluation, GateConfig, decide, evaluate

from edgeloop.clock import FakeClock
from tests.cloud_support import digits_model, holdout

CLASSES = [str(d) for d in range(4)]


def _eval(
    correct_holdout: list[bool],
    correct_audit: list[bool],
    *,
    latency_ms: float = 0.01,
    size_bytes: int = 1000,
) -> Evaluation:
    """An evaluation of hold-out items (classes in turn) then audit items (classes in turn)."""
    truth = [CLASSES[i % 4] for i in range(len(correct_holdout))]
    truth += [CLASSES[i % 4] for i in range(len(correct_audit))]
    correct = list(correct_holdout) + list(correct_audit)
    return Evaluation(
        loaded=True,
        accuracy=float(np.mean(correct)) if correct else 0.0,
        latency_ms=latency_ms,
        size_bytes=size_bytes,
        count=len(correct),
        truth=truth,
        origins=[HOLDOUT] * len(correct_holdout) + [AUDIT] * len(correct_audit),
        correct=correct,
    )


def _flips(n: int, wrong: set[int]) -> list[bool]:
    return [i not in wrong for i in range(n)]


HOLD = _flips(200, set(range(0, 200, 10)))  # champion 90% on the clean hold-out
AUDIT_CHAMPION = _flips(40, set(range(20)))  # champion 50% on current data


def test_a_significant_gain_on_the_audit_set_promotes_and_is_recorded() -> None:
    # given: the candidate fixes 14 audit items and breaks 1, the hold-out unchanged
    candidate = _eval(HOLD, _flips(40, set(range(14, 20)) | {30}))
    champion = _eval(HOLD, AUDIT_CHAMPION)
    # when
    decision = decide(candidate, champion, GateConfig(), champion_version="v1")
    # then
    assert decision.outcome == "promote", decision.reasons
    doc = decision.as_dict()
    improvement = next(c for c in doc["checks"] if c["name"] == "improvement")
    stats = improvement["stats"]
    assert (stats["n"], stats["gains"], stats["losses"]) == (40, 14, 1)
    assert stats["difference"] == pytest.approx(13 / 40)
    assert stats["test"] == "mcnemar_exact"
    assert stats["p_value"] < 0.001
    assert 0 < stats["interval"][0] < stats["difference"] < stats["interval"][1]
    assert stats["confidence"] == 0.95
    holdout_check = next(c for c in doc["checks"] if c["name"] == "holdout")
    assert holdout_check["stats"]["n"] == 200
    assert holdout_check["stats"]["difference"] == 0


@pytest.mark.parametrize(
    ("audit_candidate", "outcome", "phrase"),
    [
        # 6 gained, 2 lost: looks better, McNemar p = 37/256 is not significant
        pytest.param(_flips(40, set(range(6, 20)) | {30, 31}), "wait", "not above margin", id="promising"),
        # 2 gained, 6 lost: no gain at all
        pytest.param(_flips(40, set(range(2, 20)) | set(range(30, 36))), "reject", "no gain", id="worse"),
        # 3 gained, 0 lost: too few disagreements to judge
        pytest.param(_flips(40, set(range(3, 20))), "wait", "disagree on 3 items", id="few-discordant"),
        # identical answers
        pytest.param(AUDIT_CHAMPION, "wait", "disagree on 0 items", id="identical"),
    ],
)
def test_the_gain_must_be_significant(audit_candidate: list[bool], outcome: str, phrase: str) -> None:
    # when
    decision = decide(
        _eval(HOLD, audit_candidate), _eval(HOLD, AUDIT_CHAMPION), GateConfig(), champion_version="v1"
    )
    # then
    assert decision.outcome == outcome
    assert any(phrase in r for r in decision.reasons), decision.reasons
    assert not decision.promote


def test_too_few_audit_items_waits_with_the_count() -> None:
    # given: a huge gain, but on 10 audit items
    decision = decide(_eval(HOLD, [True] * 10), _eval(HOLD, [False] * 10), GateConfig(min_audit_items=20))
    # then
    assert decision.outcome == "wait"
    assert any("10 labelled items" in r and "at least 20" in r for r in decision.reasons)


def test_the_margin_applies_to_the_lower_bound() -> None:
    # given: +13 points, lower bound near +0.17
    candidate = _eval(HOLD, _flips(40, set(range(14, 20)) | {30}))
    champion = _eval(HOLD, AUDIT_CHAMPION)
    # when
    low = decide(candidate, champion, GateConfig(margin=0.05))
    high = decide(candidate, champion, GateConfig(margin=0.30))
    # then: the point estimate (0.325) is above 0.30, its lower bound is not
    assert low.outcome == "promote"
    assert high.outcome == "wait"


def test_a_significant_clean_holdout_regression_rejects_despite_an_audit_gain() -> None:
    # given: the candidate forgets 30 of 200 clean items
    forgot = _flips(200, set(range(0, 200, 10)) | set(range(1, 200, 7)[:30]))
    candidate = _eval(forgot, [True] * 40)
    # when
    decision = decide(candidate, _eval(HOLD, AUDIT_CHAMPION), GateConfig())
    # then
    assert decision.outcome == "reject"
    assert any("clean hold-out accuracy drops significantly" in r for r in decision.reasons)


def test_a_small_clean_holdout_drop_is_noise() -> None:
    # given: 3 more clean items wrong out of 200 (1.5 points)
    slipped = _flips(200, set(range(0, 200, 10)) | {1, 2, 3})
    # when
    decision = decide(_eval(slipped, [True] * 40), _eval(HOLD, AUDIT_CHAMPION), GateConfig())
    # then
    assert decision.outcome == "promote", decision.reasons


def test_a_ten_point_class_drop_on_twenty_items_is_noise_but_a_large_one_fails() -> None:
    # given: class "1" (items 1, 5, 9, ... of the hold-out) has 50 items; the candidate loses
    # 5 of them (10 points) in one case and 25 (50 points) in the other
    class1 = list(range(1, 200, 4))
    noise = _eval(_flips(200, set(range(0, 200, 10)) | set(class1[:5])), [True] * 40)
    forgetting = _eval(_flips(200, set(range(0, 200, 10)) | set(class1[:25])), [True] * 40)
    champion = _eval(HOLD, AUDIT_CHAMPION)
    config = GateConfig(holdout_tolerance=1.0, class_tolerance=0.05)
    # when
    kept = decide(noise, champion, config)
    rejected = decide(forgetting, champion, config)
    # then
    assert kept.outcome == "promote", kept.reasons
    assert rejected.outcome == "reject"
    assert any(r.startswith("class '1' recall") for r in rejected.reasons)
    per_class = next(c for c in rejected.as_dict()["checks"] if c["name"] == "per_class")["stats"]
    assert set(per_class) == set(CLASSES)
    assert per_class["1"]["losses"] >= 24


def test_bootstrap_interval_is_repeatable_and_recorded() -> None:
    candidate = _eval(HOLD, _flips(40, set(range(14, 20)) | {30}))
    champion = _eval(HOLD, AUDIT_CHAMPION)
    config = GateConfig(interval="bootstrap", bootstrap_seed=5)
    # when
    first, second = decide(candidate, champion, config), decide(candidate, champion, config)
    # then
    assert first.as_dict() == second.as_dict()
    stats = first.check("improvement").stats  # type: ignore[union-attr]
    assert stats is not None
    assert stats["interval_method"] == "bootstrap"
    assert first.outcome == "promote"


def test_models_scored_on_different_items_cannot_be_compared() -> None:
    with pytest.raises(ValueError, match="same items"):
        decide(_eval(HOLD, [True] * 40), _eval(HOLD, [True] * 39), GateConfig())


@pytest.mark.parametrize(("wrong", "outcome"), [(10, "promote"), (30, "reject")])
def test_first_model_must_reach_the_floor_on_the_clean_holdout(wrong: int, outcome: str) -> None:
    # when: 100 clean items, no audit items, no champion
    decision = decide(_eval(_flips(100, set(range(wrong))), []), None, GateConfig(floor=0.8))
    # then
    assert decision.outcome == outcome
    assert any("first model" in c.detail for c in decision.checks)


def test_an_unusable_champion_falls_back_to_the_floor() -> None:
    broken = Evaluation(loaded=False, error="gone")
    decision = decide(_eval(HOLD, []), broken, GateConfig(floor=0.8), champion_version="v2")
    assert decision.outcome == "promote"
    assert "champion v2 unusable: gone" in decision.check("floor").detail  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "failed_check"),
    [({"latency_ms": 9.0}, "latency"), ({"size_bytes": 10**9}, "size")],
)
def test_budgets_reject(overrides: dict[str, Any], failed_check: str) -> None:
    # when
    candidate = _eval(HOLD, [True] * 40, **overrides)
    decision = decide(candidate, _eval(HOLD, AUDIT_CHAMPION), GateConfig(max_latency_ms=5.0))
    # then
    assert decision.outcome == "reject"
    assert [c.name for c in decision.checks if c.status == "fail"] == [failed_check]


@pytest.mark.parametrize("broken", [b"not an onnx model", b""], ids=["garbage", "empty"])
def test_broken_candidate_is_rejected_with_the_load_error(broken: bytes) -> None:
    # when
    evaluation = evaluate(broken, list(holdout()))
    decision = decide(evaluation, _eval(HOLD, []), GateConfig())
    # then
    assert not evaluation.loaded
    assert decision.outcome == "reject"
    assert decision.reasons[0].startswith("candidate failed to load")


def test_candidate_without_metadata_fails_the_load_check() -> None:
    # given: a valid ONNX graph with the edgeloop.* metadata stripped
    import onnx

    model = onnx.load_from_string(digits_model())
    del model.metadata_props[:]
    # when
    evaluation = evaluate(model.SerializeToString(), list(holdout()))
    # then
    assert not evaluation.loaded
    assert "metadata" in (evaluation.error or "")


def test_real_models_scored_item_by_item_on_both_sets() -> None:
    # given: a trained and a barely trained model; 100 clean items and 40 "audit" items
    good, weak = digits_model(steps=150), digits_model(steps=1)
    clean = list(holdout())[:100]
    audit = [EvalItem(i.image, i.label, AUDIT) for i in list(holdout())[100:140]]
    items = clean + audit
    # when
    good_eval = evaluate(good, items, clock=FakeClock())
    weak_eval = evaluate(weak, items, clock=FakeClock())
    decision = decide(good_eval, weak_eval, GateConfig(), champion_version="v1")
    # then
    assert good_eval.count == len(items) == len(good_eval.correct)
    assert good_eval.accuracy == pytest.approx(np.mean(good_eval.correct))
    assert good_eval.slice_summary(AUDIT)["n"] == 40
    assert good_eval.accuracy > weak_eval.accuracy
    assert set(good_eval.per_class) == {str(d) for d in range(10)}
    assert sum(good_eval.per_class[c]["support"] for c in good_eval.per_class) == 100
    assert decision.outcome == "promote", decision.reasons
