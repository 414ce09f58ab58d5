"""The registry gate: decisions for better, worse, tie, per-class regression, first model, broken."""

from __future__ import annotations

from typing import Any

import pytest
from edgeloop_cloud.gate import Evaluation, GateConfig, decide, evaluate

from edgeloop.clock import FakeClock
from tests.cloud_support import digits_model, holdout


def _eval(
    accuracy: float,
    recalls: dict[str, float] | None = None,
    *,
    latency_ms: float = 0.01,
    size_bytes: float = 1000,
) -> Evaluation:
    recalls = recalls or {"0": accuracy, "1": accuracy}
    per_class = {k: {"recall": v, "precision": v, "f1": v, "support": 10.0} for k, v in recalls.items()}
    return Evaluation(
        loaded=True,
        accuracy=accuracy,
        macro_f1=sum(recalls.values()) / len(recalls),
        per_class=per_class,
        latency_ms=latency_ms,
        size_bytes=int(size_bytes),
        count=20,
    )


@pytest.mark.parametrize(
    ("candidate", "champion", "promote", "failed_check"),
    [
        pytest.param(0.90, 0.85, True, None, id="better"),
        pytest.param(0.80, 0.85, False, "improvement", id="worse"),
        pytest.param(0.85, 0.85, False, "improvement", id="tie"),
        pytest.param(0.853, 0.85, False, "improvement", id="better-but-below-margin"),
    ],
)
def test_gate_compares_primary_metric_with_margin(
    candidate: float, champion: float, promote: bool, failed_check: str | None
) -> None:
    # given
    config = GateConfig(margin=0.005)
    # when
    decision = decide(_eval(candidate), _eval(champion), config, champion_version="v1")
    # then
    assert decision.promote is promote
    failed = [c.name for c in decision.checks if not c.passed]
    assert failed == ([failed_check] if failed_check else [])
    assert decision.as_dict()["reasons"]


def test_gate_rejects_a_per_class_regression_beyond_tolerance() -> None:
    # given: better overall, but class "1" loses 20 points of recall
    candidate = _eval(0.95, {"0": 1.0, "1": 0.7, "2": 1.0})
    champion = _eval(0.90, {"0": 0.8, "1": 0.9, "2": 0.9})
    # when
    decision = decide(candidate, champion, GateConfig(class_tolerance=0.05), champion_version="v3")
    # then
    assert not decision.promote
    assert any("class '1'" in r for r in decision.reasons)


@pytest.mark.parametrize(("accuracy", "promote"), [(0.85, True), (0.75, False)])
def test_first_model_must_reach_the_floor(accuracy: float, promote: bool) -> None:
    # when
    decision = decide(_eval(accuracy), None, GateConfig(floor=0.8))
    # then
    assert decision.promote is promote
    assert any("first model" in c.detail for c in decision.checks)


@pytest.mark.parametrize(
    ("overrides", "failed_check"),
    [({"latency_ms": 9.0}, "latency"), ({"size_bytes": 10**9}, "size")],
)
def test_budgets_reject(overrides: dict[str, Any], failed_check: str) -> None:
    # when
    decision = decide(_eval(0.99, **overrides), _eval(0.5), GateConfig(max_latency_ms=5.0))
    # then
    assert not decision.promote
    assert [c.name for c in decision.checks if not c.passed] == [failed_check]


@pytest.mark.parametrize(
    "broken",
    [b"not an onnx model", b""],
    ids=["garbage", "empty"],
)
def test_broken_candidate_is_rejected_with_the_load_error(broken: bytes) -> None:
    # when
    evaluation = evaluate(broken, list(holdout()))
    decision = decide(evaluation, _eval(0.5), GateConfig())
    # then
    assert not evaluation.loaded
    assert not decision.promote
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


def test_evaluate_scores_a_real_model_on_the_same_set() -> None:
    # given
    good, weak = digits_model(steps=150), digits_model(steps=1)
    items = list(holdout())
    # when
    good_eval = evaluate(good, items, clock=FakeClock())
    weak_eval = evaluate(weak, items, clock=FakeClock())
    decision = decide(good_eval, weak_eval, GateConfig(class_tolerance=1.0), champion_version="v1")
    # then
    assert good_eval.loaded
    assert good_eval.count == len(items)
    assert good_eval.accuracy > weak_eval.accuracy
    assert set(good_eval.per_class) == {str(d) for d in range(10)}
    assert decision.promote


def test_new_slice_weight_splits_the_metric_between_fixed_and_new_items() -> None:
    # given: 4 fixed items and 2 new ones
    from edgeloop_cloud.gate import EvalItem, slice_weights

    items = list(holdout())[:6]
    tagged = [EvalItem(i.image, i.label, "fixed" if n < 4 else "new") for n, i in enumerate(items)]
    # when
    weighted = slice_weights(tagged, GateConfig(new_slice_weight=0.5, min_new_slice=2))
    too_few_new = slice_weights(tagged, GateConfig(new_slice_weight=0.5, min_new_slice=3))
    # then: each slice carries half the total weight; too small a new slice counts like any item
    assert weighted[4:].sum() == pytest.approx(weighted[:4].sum())
    assert weighted.sum() == pytest.approx(len(tagged))
    assert list(too_few_new) == [1.0] * 6


def test_a_model_right_only_on_the_new_slice_gains_from_its_weight() -> None:
    # given: a real model, and a held-out set where the "new" items carry labels it gets wrong
    from edgeloop_cloud.gate import EvalItem, slice_weights

    model = digits_model(steps=150)
    fixed = list(holdout())[:40]
    wrong = [EvalItem(i.image, "0" if i.label != "0" else "1", "new") for i in list(holdout())[40:50]]
    items = fixed + wrong
    # when
    plain = evaluate(model, items, weights=slice_weights(items, GateConfig(new_slice_weight=0.0)))
    weighted = evaluate(model, items, weights=slice_weights(items, GateConfig(new_slice_weight=0.5)))
    # then: the new slice, all wrong, now weighs as much as the whole fixed set, while the
    # per-class guard still judges classes on the fixed set alone
    assert weighted.accuracy < plain.accuracy
    assert weighted.accuracy == pytest.approx(0.5 * evaluate(model, fixed).accuracy, abs=1e-9)
    assert weighted.per_class == evaluate(model, fixed).per_class
