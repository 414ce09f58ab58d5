"""The decision engine: strategy order, limits and budgets (with clock jumps and restarts),
time gating, near-duplicates, drift and bad input."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from edgeloop_filter.engine import Decision, Engine
from edgeloop_filter.policy import Policy

from edgeloop.clock import FakeClock
from tests.filter_helpers import prediction

T0 = datetime(2026, 1, 5, 12, 0, 30, tzinfo=UTC)


def engine(doc: dict[str, Any], seed: int = 7) -> Engine:
    return Engine(Policy.model_validate(doc), rng=random.Random(seed))


def strategy(name: str, rules: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": name, "rules": rules, **extra}


ALWAYS = [{"type": "confidence_band", "bands": [[0, 1]]}]
LOW = [{"type": "confidence_band", "bands": [[0, 0.9]]}]


class Driver:
    """Feeds predictions at the fake clock's time."""

    def __init__(self, eng: Engine, clock: FakeClock | None = None) -> None:
        self.engine = eng
        self.clock = clock or FakeClock(T0)
        self.i = 0

    def feed(self, **kw: Any) -> Decision:
        self.i += 1
        return self.engine.decide(prediction(self.i, **kw), self.clock.now(), self.clock.monotonic())

    def count(self, n: int, **kw: Any) -> int:
        return sum(self.feed(**kw).selected is not None for _ in range(n))


def test_the_old_fixed_rule_is_one_line_of_policy() -> None:
    # given
    d = Driver(engine({"strategies": [{"name": "low-confidence", "rules": LOW}]}))
    # then
    assert d.feed(confidence=0.89).selected is not None
    assert d.feed(confidence=0.95).dropped == "no_strategy_matched"


def test_first_matching_strategy_selects_and_records_why() -> None:
    # given
    d = Driver(engine({"strategies": [
        strategy("rare", [{"type": "classes", "labels": ["fox"]}], tags=["rare"], priority=9),
        strategy("uncertain", [{"type": "margin", "below": 0.2}], tags=["u"], priority=3),
    ]}))  # fmt: skip
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    # when
    fox = d.feed(label="fox", margin=0.1, traceparent=tp).selected
    cat = d.feed(label="cat", margin=0.1).selected
    # then
    assert fox is not None
    assert cat is not None
    assert (fox.strategy, fox.tags, fox.priority, fox.traceparent) == ("rare", ["rare"], 9, tp)
    assert fox.reason == "rare: class 'fox' is listed"
    assert fox.selected_at == T0
    assert (cat.strategy, cat.reason) == ("uncertain", "uncertain: margin 0.1 < 0.2")


def test_a_strategy_over_budget_lets_the_next_one_select() -> None:
    # given
    d = Driver(
        engine(
            {
                "strategies": [
                    strategy("a", ALWAYS, limits={"per_minute": 2}),
                    strategy("b", ALWAYS, limits={"per_minute": 1}),
                ]
            }
        )
    )
    # when
    picks = [d.feed() for _ in range(4)]
    # then
    assert [p.selected.strategy if p.selected else p.dropped for p in picks] == ["a", "a", "b", "over_budget"]


@pytest.mark.parametrize(
    ("limits", "step", "within", "after_step"),
    [
        ({"per_minute": 3}, 60, 3, 3),
        ({"per_hour": 5}, 3600, 5, 5),
        ({"per_day": 4}, 86400, 4, 4),
        ({"bytes_per_day": 2500}, 86400, 2, 2),  # each sample is 1000 bytes
    ],
)
def test_calendar_limits_cap_and_refill(
    limits: dict[str, int], step: int, within: int, after_step: int
) -> None:
    # given
    d = Driver(engine({"strategies": [strategy("s", ALWAYS, limits=limits)]}))
    # when
    first = d.count(10)
    d.clock.advance(step)
    second = d.count(10)
    # then
    assert (first, second) == (within, after_step)


def test_global_limits_cap_all_strategies_together() -> None:
    # given
    d = Driver(
        engine({"strategies": [strategy("a", LOW), strategy("b", ALWAYS)], "limits": {"per_minute": 3}})
    )
    # when
    low = d.count(2, confidence=0.5)
    high = d.count(5, confidence=0.95)
    # then
    assert (low, high) == (2, 1)
    assert d.engine.dropped["over_budget"] == 4


def test_backwards_wall_jump_never_refills_a_budget() -> None:
    # given: the hour's budget spent at 12:00
    d = Driver(engine({"strategies": [strategy("s", ALWAYS, limits={"per_hour": 2})]}))
    assert d.count(5) == 2
    # when: the wall clock is set back by a day, and then two minutes pass
    d.clock.set_wall(T0 - timedelta(days=1))
    d.clock.advance(120)
    # then
    assert d.count(5) == 0


def test_after_a_backwards_jump_a_real_period_refills() -> None:
    # given
    d = Driver(engine({"strategies": [strategy("s", ALWAYS, limits={"per_hour": 2})]}))
    d.count(2)
    d.clock.set_wall(T0 - timedelta(days=1))
    # when: a full hour passes on the monotonic clock
    d.clock.advance(3600)
    # then
    assert d.count(5) == 2


def test_forward_wall_jump_opens_new_buckets() -> None:
    # given
    d = Driver(engine({"strategies": [strategy("s", ALWAYS, limits={"per_day": 1})]}))
    d.count(3)
    # when
    d.clock.set_wall(T0 + timedelta(days=1))
    # then
    assert d.count(3) == 1


def test_budgets_survive_a_restart() -> None:
    # given
    doc = {"strategies": [strategy("s", ALWAYS, limits={"per_hour": 3})]}
    first = Driver(engine(doc))
    assert first.count(2) == 2
    saved = first.engine.snapshot()
    # when: a new engine (new process: monotonic restarts) restores the state
    restarted = engine(doc)
    restarted.restore(saved, mono=5.0)
    d = Driver(restarted, FakeClock(T0 + timedelta(minutes=5)))
    # then
    assert d.count(5) == 1


def test_budgets_carry_over_a_policy_change_by_strategy_name() -> None:
    # given
    eng = engine({"strategies": [strategy("s", ALWAYS, limits={"per_hour": 3})]})
    d = Driver(eng)
    d.count(3)
    # when
    eng.set_policy(Policy.model_validate({"strategies": [strategy("s", LOW, limits={"per_hour": 4})]}))
    # then
    assert d.count(5, confidence=0.5) == 1


def test_strategy_window_closed_then_open() -> None:
    # given: T0 is a Monday 12:00 UTC
    eng = engine({"strategies": [
        strategy("night", ALWAYS, schedule={"windows": [{"start": "22:00", "end": "06:00"}]})]})  # fmt: skip
    d = Driver(eng)
    # when
    day = d.feed()
    d.clock.advance(11 * 3600)
    night = d.feed()
    # then
    assert day.dropped == "window_closed"
    assert night.selected is not None


def test_policy_schedule_gates_everything_and_reports_next_change() -> None:
    # given
    eng = engine({"strategies": [strategy("s", ALWAYS)],
                  "schedule": {"duty_cycle": {"on_seconds": 10, "period_seconds": 60}}})  # fmt: skip
    d = Driver(eng)
    # when
    decision = d.feed()
    # then: T0 is 30 s into its minute
    assert decision.dropped == "window_closed"
    assert eng.gates(T0) == {"policy": {"open": False, "nextChange": "2026-01-05T12:01:00+00:00"}}


@pytest.mark.parametrize(
    ("kw", "reason"),
    [
        ({"status": "error", "label": None, "confidence": None}, "error_status"),
        ({"label": None}, "missing_fields"),
        ({"confidence": None}, "missing_fields"),
    ],
)
def test_bad_predictions_are_dropped_and_counted(kw: dict[str, Any], reason: str) -> None:
    # given
    d = Driver(engine({"strategies": [strategy("s", ALWAYS)]}))
    # when
    decision = d.feed(**kw)
    # then
    assert decision.dropped == reason
    assert d.engine.dropped == {reason: 1}


def test_margin_and_entropy_are_derived_from_scores_when_absent() -> None:
    # given
    d = Driver(
        engine(
            {
                "strategies": [
                    strategy("m", [{"type": "margin", "below": 0.15}]),
                    strategy("e", [{"type": "entropy", "above": 1.0}]),
                ]
            }
        )
    )
    # when
    close = d.feed(scores=[0.45, 0.40, 0.15])
    flat = d.feed(scores=[0.4, 0.2, 0.2, 0.2])  # margin 0.2, entropy 1.33
    # then
    assert close.selected is not None
    assert close.selected.strategy == "m"
    assert flat.selected is not None
    assert flat.selected.strategy == "e"


def test_near_duplicates_from_the_same_source_are_skipped() -> None:
    # given
    d = Driver(
        engine({"strategies": [strategy("s", ALWAYS)], "dedup": {"max_distance": 3, "window_seconds": 60}})
    )
    # when
    first = d.feed(dhash="00000000000000ff")
    near = d.feed(dhash="00000000000000f8")  # 3 bits away
    far = d.feed(dhash="000000000000ffff")  # 8 bits away
    other_source = d.feed(dhash="00000000000000ff", source="cam2")
    d.clock.advance(61)
    later = d.feed(dhash="00000000000000ff")
    # then
    assert first.selected is not None
    assert near.dropped == "duplicate"
    assert "within 3 bits" in near.detail
    assert far.selected is not None
    assert other_source.selected is not None
    assert later.selected is not None


def test_duplicates_do_not_spend_budget_and_dedup_survives_restart() -> None:
    # given
    doc = {"strategies": [strategy("s", ALWAYS, limits={"per_hour": 2})]}
    d = Driver(engine(doc))
    d.feed(dhash="0f0f0f0f0f0f0f0f")
    assert d.feed(dhash="0f0f0f0f0f0f0f0f").dropped == "duplicate"
    # when
    restarted = engine(doc)
    restarted.restore(d.engine.snapshot(), mono=0.0)
    d2 = Driver(restarted)
    # then
    assert d2.feed(dhash="0f0f0f0f0f0f0f0f").dropped == "duplicate"
    assert d2.feed(dhash="f0f0f0f0f0f0f0f0").selected is not None


def drifting(d: Driver, n: int, low: float, high: float, label: str, rng: random.Random) -> None:
    for _ in range(n):
        d.feed(confidence=rng.uniform(low, high), label=label)


def test_drift_psi_is_small_when_stable_and_large_after_a_shift() -> None:
    # given: reference from the first 200 samples
    rng = random.Random(3)
    d = Driver(engine({"strategies": [], "drift": {"reference_samples": 200, "window": 200}}))
    drifting(d, 200, 0.8, 1.0, "cat", rng)
    # when
    drifting(d, 200, 0.8, 1.0, "cat", rng)
    stable = d.engine.drift.psi()
    drifting(d, 200, 0.2, 0.6, "dog", rng)
    shifted = d.engine.drift.psi()
    # then
    assert stable["psi_confidence"] < 0.1
    assert stable["psi_class"] < 0.1
    assert shifted["psi_confidence"] > 1.0
    assert shifted["psi_class"] > 1.0


def test_drift_reference_from_config_and_reset_on_new_model() -> None:
    # given
    eng = engine({"strategies": [], "drift": {"bins": 2, "window": 50,
                  "reference": {"confidence": [0.5, 0.5], "classes": {"cat": 1.0}}}})  # fmt: skip
    d = Driver(eng)
    # when
    for _ in range(50):
        d.feed(confidence=0.9, label="cat")
    before = eng.drift.psi()
    d.feed(confidence=0.9, label="cat", model_version="2")
    # then
    assert before["psi_confidence"] > 0.5
    assert before["psi_class"] < 0.01
    assert eng.drift.psi() == {}


def test_drift_boost_raises_budgets_while_drift_is_high() -> None:
    # given
    rng = random.Random(5)
    boost = {"psi_above": 0.25, "factor": 3}
    doc = {
        "strategies": [strategy("s", ALWAYS, limits={"per_hour": 10})],
        "drift": {"reference_samples": 100, "window": 100, "boost": boost},
    }
    d = Driver(engine(doc))
    drifting(d, 100, 0.9, 1.0, "cat", rng)  # reference (selects 10)
    d.clock.advance(3600)
    # when: drift sets in
    drifting(d, 100, 0.1, 0.5, "dog", rng)
    # then: three times the hourly budget
    assert d.engine.selected["s"] == 10 + 30
