"""The retrain trigger policy and the run ledger's idempotent, leased runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from edgeloop_cloud.runs import RunLedger, make_run_id
from edgeloop_cloud.trigger import TriggerFacts, TriggerPolicy, evaluate_policy

from edgeloop.blobstore import MemoryContainer
from edgeloop.clock import FakeClock

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
POLICY = TriggerPolicy(
    min_new_labels=50,
    min_new_per_class={"7": 5},
    drift_threshold=0.2,
    min_new_labels_on_drift=10,
    max_age_hours=24,
    cooldown_minutes=30,
    retry_after_labels=10,
)


@pytest.mark.parametrize(
    ("facts", "fire", "reason_part"),
    [
        pytest.param(TriggerFacts(NOW, 60, {"7": 6}), True, "60 new labels >= 50", id="enough-labels"),
        pytest.param(TriggerFacts(NOW, 49, {"7": 6}), False, "49 new labels < 50", id="too-few-labels"),
        pytest.param(TriggerFacts(NOW, 60, {"7": 2}), False, "7 has 2 < 5", id="class-minimum-unmet"),
        pytest.param(TriggerFacts(NOW, 12, {}, max_drift=0.35), True, "drift 0.350", id="drift"),
        pytest.param(
            TriggerFacts(NOW, 3, {}, max_drift=0.35), False, "only 3 new labels", id="drift-no-labels"
        ),
        pytest.param(TriggerFacts(NOW, 12, {}, max_drift=0.1), False, "12 new labels < 50", id="drift-below"),
        pytest.param(
            TriggerFacts(NOW, 1, {}, last_run_at=NOW - timedelta(hours=25)), True, "h ago >= 24", id="max-age"
        ),
        pytest.param(
            TriggerFacts(NOW, 0, {}, last_run_at=NOW - timedelta(hours=25)),
            False,
            "no newly",
            id="age-nothing-new",
        ),
        pytest.param(
            TriggerFacts(NOW, 500, {"7": 50}, max_drift=0.9, last_run_at=NOW - timedelta(minutes=10)),
            False,
            "cooldown",
            id="cooldown-wins",
        ),
        pytest.param(
            TriggerFacts(NOW, 60, {"7": 6}, last_run_at=NOW - timedelta(minutes=31)),
            True,
            "60 new",
            id="after-cooldown",
        ),
        pytest.param(
            TriggerFacts(NOW, 60, {"7": 6}, labels_since_wait=4), False, "4 arrived since", id="waiting-run"
        ),
        pytest.param(
            TriggerFacts(NOW, 60, {"7": 6}, labels_since_wait=10), True, "60 new", id="retry-after-wait"
        ),
    ],
)
def test_trigger_policy(facts: TriggerFacts, fire: bool, reason_part: str) -> None:
    # when
    decision = evaluate_policy(POLICY, facts)
    # then
    assert decision.fire is fire
    assert any(reason_part in r for r in decision.reasons), decision.reasons


def test_run_id_is_stable_and_depends_on_inputs() -> None:
    # given
    pairs = [("s1", "3"), ("s2", "7")]
    # when / then
    assert make_run_id("digits", pairs, "v1") == make_run_id("digits", list(reversed(pairs)), "v1")
    assert make_run_id("digits", pairs, "v1") != make_run_id("digits", pairs, "v2")
    assert make_run_id("digits", pairs, "v1") != make_run_id("digits", [("s1", "3"), ("s2", "1")], "v1")


def test_two_instances_never_start_the_same_run() -> None:
    # given
    clock = FakeClock()
    runs = MemoryContainer("runs", clock=clock)
    first, second = RunLedger(runs, "digits", clock=clock), RunLedger(runs, "digits", clock=clock)
    # when
    claimed = first.claim("run-a", {})
    again = second.claim("run-a", {})
    # then
    assert claimed is not None
    assert again is None


def test_a_finished_run_is_not_started_again_but_a_crashed_one_is() -> None:
    # given
    clock = FakeClock()
    runs = MemoryContainer("runs", clock=clock)
    ledger = RunLedger(runs, "digits", clock=clock)
    done = ledger.claim("run-done", {})
    assert done is not None
    done.finish("rejected", consumed=["s1"])
    crashed = ledger.claim("run-crashed", {})
    assert crashed is not None
    # when: the crashed run's lease runs out
    clock.advance(120)
    # then
    assert ledger.claim("run-done", {}) is None
    retried = ledger.claim("run-crashed", {})
    assert retried is not None
    assert retried.doc["attempt"] == 2
    assert ledger.state().consumed == {"s1"}
    assert ledger.state().last_run_id == "run-done"


def test_a_failed_run_is_retried_up_to_the_attempt_limit() -> None:
    # given
    clock = FakeClock()
    ledger = RunLedger(MemoryContainer("runs", clock=clock), "digits", clock=clock)
    attempts = []
    # when: every attempt fails
    while (run := ledger.claim("run-f", {})) is not None:
        attempts.append(run.doc["attempt"])
        run.finish("failed", error="storage outage")
    # then
    assert attempts == [1, 2, 3]


def test_a_waiting_run_is_final_consumes_nothing_and_the_next_finished_run_clears_the_wait() -> None:
    # given
    clock = FakeClock()
    ledger = RunLedger(MemoryContainer("runs", clock=clock), "digits", clock=clock)
    run = ledger.claim("run-w", {})
    assert run is not None
    # when
    run.finish("waiting", waiting_at=42, reasons=["too few audit items"])
    # then
    assert ledger.claim("run-w", {}) is None
    state = ledger.state()
    assert state.consumed == set()
    assert state.waiting_at_labelled == 42
    # when: a later run finishes
    later = ledger.claim("run-x", {})
    assert later is not None
    later.finish("promoted", consumed=["s1"])
    # then
    assert ledger.state().waiting_at_labelled is None
    assert ledger.state().consumed == {"s1"}
