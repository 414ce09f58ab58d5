"""The filter module driven through the in-memory hub with a fake clock."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from edgeloop_filter.__main__ import build_module
from edgeloop_filter.module import SELECTED_GAP_S, FilterModule
from edgeloop_filter.state import JsonFileStateStore, MemoryStateStore, StateStore

from edgeloop.clock import FakeClock
from edgeloop.contracts import PredictionBatch, SelectedSample, Summary
from edgeloop.runtime import ModuleRuntime
from edgeloop.runtime.fake import FakeHubClient
from tests.filter_helpers import prediction
from tests.support import wait_for

T0 = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)
OLD_RULE = {"version": "fixed-1", "strategies": [{"name": "low", "rules": [
    {"type": "confidence_band", "bands": [[0, 0.9]]}]}]}  # fmt: skip


class Running:
    def __init__(self, desired: dict[str, Any] | None = None, store: StateStore | None = None) -> None:
        self.clock = FakeClock(T0)
        self.hub = FakeHubClient(desired)
        self.module = FilterModule(store=store or MemoryStateStore(), rng=random.Random(0))
        self.runtime = ModuleRuntime(self.module, client=self.hub, clock=self.clock, tick_interval=0.01)
        self.thread = threading.Thread(target=self.runtime.run)

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.module.ctx is not None and "filter" in self.hub.reported)
        # The runtime times its ticks from the clock as it enters its loop: a test that moved
        # the fake clock before then would see no tick until the clock moved again. A method
        # is answered from inside that loop, so once one is answered the clock may move.
        self.hub.call_method("getStats")
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.request_stop("test over")
        self.thread.join(10)

    def selected(self) -> list[SelectedSample]:
        return [i for i in self.hub.sent_items("selected") if isinstance(i, SelectedSample)]

    def summaries(self) -> list[Summary]:
        return [i for i in self.hub.sent_items("summaries") if isinstance(i, Summary)]

    def stats(self) -> dict[str, Any]:
        response = self.hub.call_method("getStats")
        return response.payload["module"]


@pytest.fixture
def fixed() -> Iterator[Running]:
    with Running({"policy": OLD_RULE, "summary_interval_s": 60}) as r:
        yield r


def test_an_empty_twin_gets_the_recommended_policy() -> None:
    # when
    with Running() as r:
        policy = r.hub.call_method("getPolicy").payload
    # then
    assert policy["version"] == "default-2"
    assert [s["name"] for s in policy["policy"]["strategies"]] == ["uncertain", "random"]
    assert r.hub.reported["filter"]["policyVersion"] == "default-2"


def test_predictions_in_selected_out_with_strategy_reason_and_trace(fixed: Running) -> None:
    # given
    tp = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    # when
    fixed.hub.push_input(
        "predictions", [prediction(1, confidence=0.5, traceparent=tp), prediction(2, confidence=0.95)]
    )
    wait_for(lambda: fixed.stats()["seen"] == 2)
    # then
    [chosen] = fixed.selected()
    assert (chosen.sample_id, chosen.strategy, chosen.traceparent) == ("s000001", "low", tp)
    assert chosen.reason == "low: confidence 0.5 in [0, 0.9)"
    assert fixed.hub.sent[0].properties["traceparent"] == tp


def test_bad_predictions_are_counted_by_reason(fixed: Running) -> None:
    # when
    fixed.hub.push_input("predictions", [prediction(1, status="error", label=None, confidence=None)])
    fixed.hub.push_input("predictions", [prediction(2, label=None)])
    wait_for(lambda: fixed.stats()["seen"] == 2)
    # then
    assert fixed.stats()["dropped_by_reason"] == {"error_status": 1, "missing_fields": 1}
    assert fixed.selected() == []


@pytest.mark.parametrize(
    ("policy", "path"),
    [
        ({"strategies": [{"name": "a", "rules": [{"type": "confidence_band", "bands": [[0.9, 0.1]]}]}]},
         "policy.strategies.0.rules.0.confidence_band"),
        ({"strategies": [{"name": "a", "rules": [{"type": "margin", "below": 0.1}], "limts": {}}]},
         "unknown key 'policy.strategies.0.limts'"),
        ({"schedule": {"windows": [{"start": "08:00", "end": "09:00", "timezone": "Europe/Paree"}]}},
         "policy.schedule.windows.0.timezone"),
        ({"schedule": {"duty_cycle": {"on_seconds": 90, "period_seconds": 60}}},
         "policy.schedule.duty_cycle"),
        ({"strategies": [{"name": "a", "rules": []}]}, "policy.strategies.0.rules"),
        ({"limits": {"per_hour": "many"}}, "policy.limits.per_hour"),
    ],
)  # fmt: skip
def test_a_bad_twin_policy_is_rejected_with_its_path_and_the_old_one_stays(
    fixed: Running, policy: dict[str, Any], path: str
) -> None:
    # when
    fixed.hub.patch_desired({"policy": policy})
    wait_for(lambda: fixed.hub.reported.get("configError") is not None)
    # then
    assert path in fixed.hub.reported["configError"]["reason"]
    assert fixed.hub.call_method("getPolicy").payload["version"] == "fixed-1"


def test_set_policy_applies_now_and_get_policy_shows_it(fixed: Running) -> None:
    # given
    new = {
        "version": "v2",
        "strategies": [{"name": "rare", "rules": [{"type": "classes", "labels": ["fox"]}]}],
    }
    # when
    answer = fixed.hub.call_method("setPolicy", new)
    fixed.hub.push_input("predictions", [prediction(1, label="fox", confidence=0.99), prediction(2)])
    wait_for(lambda: fixed.stats()["seen"] == 2)
    # then
    assert answer.status == 200
    assert fixed.hub.call_method("getPolicy").payload["source"] == "method"
    assert [s.strategy for s in fixed.selected()] == ["rare"]
    assert fixed.hub.reported["filter"]["policyVersion"] == "v2"


def test_set_policy_rejects_with_400_and_path_and_keeps_the_old_one(fixed: Running) -> None:
    # when
    answer = fixed.hub.call_method("setPolicy", {"strategies": [{"name": "x", "rules": [{"type": "nope"}]}]})
    # then
    assert answer.status == 400
    assert "policy.strategies.0.rules.0" in answer.payload["error"]
    assert fixed.hub.call_method("getPolicy").payload["version"] == "fixed-1"


def test_a_twin_change_of_policy_takes_over_from_set_policy(fixed: Running) -> None:
    # given
    fixed.hub.call_method("setPolicy", {"version": "by-method"})
    # when
    fixed.hub.patch_desired({"policy": {"version": "by-twin"}})
    # then
    wait_for(lambda: fixed.hub.reported["filter"]["policyVersion"] == "by-twin")
    assert fixed.hub.call_method("getPolicy").payload["source"] == "twin"


def test_dry_run_replays_recent_predictions_without_side_effects(fixed: Running) -> None:
    # given
    fixed.hub.push_input("predictions", [prediction(i, confidence=i / 10) for i in range(10)])
    wait_for(lambda: fixed.stats()["seen"] == 10)
    proposal = {"version": "try", "strategies": [{"name": "band", "rules": [
        {"type": "confidence_band", "bands": [[0.3, 0.6]]}]}]}  # fmt: skip
    # when
    answer = fixed.hub.call_method("dryRun", {"policy": proposal})
    last = fixed.hub.call_method("dryRun", {"last": 3})
    bad = fixed.hub.call_method("dryRun", {"policy": {"strategies": "all"}})
    # then
    assert answer.status == 200
    assert answer.payload["evaluated"] == 10
    assert answer.payload["selected_by_strategy"] == {"band": 3}
    assert [s["sample_id"] for s in answer.payload["samples"]] == ["s000003", "s000004", "s000005"]
    assert answer.payload["dropped_by_reason"] == {"no_strategy_matched": 7}
    assert (last.payload["version"], last.payload["evaluated"], last.payload["selected"]) == ("fixed-1", 3, 2)
    assert bad.status == 400
    assert "policy.strategies" in bad.payload["error"]
    assert fixed.stats()["seen"] == 10


def test_summaries_are_sent_every_interval_with_counts_by_window(fixed: Running) -> None:
    # given
    fixed.hub.push_input("predictions", [prediction(1, confidence=0.5), prediction(2, confidence=0.95)])
    wait_for(lambda: fixed.stats()["seen"] == 2)
    # when
    fixed.clock.advance(61)
    wait_for(lambda: len(fixed.summaries()) == 1)
    fixed.hub.push_input("predictions", [prediction(3, status="error", label=None, confidence=None)])
    wait_for(lambda: fixed.stats()["seen"] == 3)
    fixed.clock.advance(61)
    wait_for(lambda: len(fixed.summaries()) == 2)
    # then
    first, second = fixed.summaries()
    assert (first.seen, first.selected_by_strategy, first.dropped_by_reason) == (
        2, {"low": 1}, {"no_strategy_matched": 1})  # fmt: skip
    assert first.model_version == "1"
    assert first.window_start == T0
    assert (second.seen, second.selected_by_strategy, second.dropped_by_reason) == (
        1,
        {},
        {"error_status": 1},
    )
    assert second.window_start == first.window_end


def test_budgets_survive_a_module_restart(tmp_path: Path) -> None:
    # given
    policy = {
        "strategies": [{"name": "s", "rules": [{"type": "random", "p": 1}], "limits": {"per_day": 3}}],
        "audit": {"share": 0},  # audit picks are outside budgets
    }
    store = JsonFileStateStore(tmp_path / "filter-state.json")
    with Running({"policy": policy}, store=store) as first:
        first.hub.push_input("predictions", [prediction(i) for i in range(2)])
        wait_for(lambda: first.stats()["seen"] == 2)
    # when: a new process with the same state directory
    with Running({"policy": policy}, store=JsonFileStateStore(tmp_path / "filter-state.json")) as second:
        second.hub.push_input("predictions", [prediction(i) for i in range(10, 15)])
        wait_for(lambda: second.stats()["seen"] == 5)
        # then
        assert len(second.selected()) == 1
        assert second.stats()["dropped_by_reason"] == {"over_budget": 4}


def test_window_changes_are_reported_with_the_next_change() -> None:
    # given: open 12:00-12:30 UTC
    policy = {"schedule": {"windows": [{"start": "12:00", "end": "12:30"}]},
              "strategies": [{"name": "s", "rules": [{"type": "random", "p": 1}]}]}  # fmt: skip
    with Running({"policy": policy}) as r:
        assert r.hub.reported["filter"]["gates"]["policy"] == {
            "open": True, "nextChange": "2026-01-05T12:30:00+00:00"}  # fmt: skip
        # when
        r.clock.advance(30 * 60)
        # then
        wait_for(lambda: r.hub.reported["filter"]["gates"]["policy"]["open"] is False)
        assert r.hub.reported["filter"]["gates"]["policy"]["nextChange"] == "2026-01-06T12:00:00+00:00"


def test_a_scheduler_wakes_the_module_at_the_next_window_change() -> None:
    # given
    policy = {"schedule": {"windows": [{"start": "12:00", "end": "12:30", "timezone": "UTC"}]}}
    scheduler = BackgroundScheduler(timezone=UTC)
    scheduler.start(paused=True)  # jobs wait for the test: the scheduler runs on the real clock
    runner = Running({"policy": policy})
    runner.module.scheduler = scheduler
    with runner as r:
        wait_for(lambda: scheduler.get_job("gate-transition") is not None)
        job = scheduler.get_job("gate-transition")
        # then
        assert job.trigger.run_date == datetime(2026, 1, 5, 12, 30, tzinfo=UTC)
        # when: the job fires after the wall clock passed the change
        r.clock.advance(30 * 60)
        before = len(r.hub.reported_patches)
        job.func()
        wait_for(lambda: len(r.hub.reported_patches) > before)
        wait_for(lambda: r.hub.reported["filter"]["gates"]["policy"]["open"] is False)
        rescheduled = scheduler.get_job("gate-transition")
        assert rescheduled.trigger.run_date == datetime(2026, 1, 6, 12, 0, tzinfo=UTC)
    assert not scheduler.running


def test_the_entry_point_keeps_state_in_edgeloop_state_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setenv("EDGELOOP_STATE_DIR", str(tmp_path / "state"))
    # when
    module = build_module()
    # then
    assert isinstance(module.store, JsonFileStateStore)
    assert module.store.path == tmp_path / "state" / "filter-state.json"
    assert module.scheduler is not None
    assert not module.scheduler.running


def test_an_unwritable_state_dir_is_counted_not_fatal(tmp_path: Path) -> None:
    # given: the state path is a file, so its folder cannot be created
    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    policy = {"strategies": [{"name": "s", "rules": [{"type": "random", "p": 1}]}]}
    with Running({"policy": policy}, store=JsonFileStateStore(blocker / "filter-state.json")) as r:
        # when
        r.hub.push_input("predictions", [prediction(1)])
        r.clock.advance(5)
        # then
        wait_for(lambda: r.stats().get("state_save_errors", 0) >= 1)
        assert len(r.selected()) == 1


# -- at-least-once input: decisions saved before acknowledgement, redeliveries recognised ----------
SELECT_CATS = {"strategies": [{"name": "cats", "rules": [{"type": "classes", "labels": ["cat"]}]}]}


def test_a_prediction_delivered_again_is_counted_as_redelivered_not_decided_twice() -> None:
    # given
    with Running({"policy": SELECT_CATS}) as r:
        r.hub.push_input("predictions", [prediction(1), prediction(2, label="dog")])
        wait_for(lambda: r.stats()["seen"] == 2)
        # when: the same predictions come again (the hub redelivers; inference scored twice)
        r.hub.push_input("predictions", [prediction(1), prediction(2, label="dog"), prediction(3)])
        wait_for(lambda: r.stats()["seen"] == 3)
        stats = r.stats()
    # then
    assert [s.sample_id for s in r.selected()] == ["s000001", "s000003"]
    assert stats["redelivered"] == 2
    assert stats["totals"] == {
        "seen": 3,
        "selected_by_strategy": {"cats": 2},
        "dropped_by_reason": {"no_strategy_matched": 1},
        "redelivered": 2,
    }


def test_a_prediction_batch_is_decided_in_order_and_its_selections_sent_in_one_message() -> None:
    # given: a batch message from inference, one of its predictions decided before
    with Running({"policy": SELECT_CATS, "state_save_interval_s": 5}) as r:
        r.clock.advance(1)
        r.hub.push_input("predictions", [prediction(1)])
        wait_for(lambda: r.stats()["seen"] == 1)
        batch = PredictionBatch.of([prediction(i, label="cat" if i % 2 else "dog") for i in range(1, 8)])
        # when
        r.hub.push_input("predictions", [batch])
        wait_for(lambda: r.stats()["seen"] == 7)
        stats = r.stats()
        # then: held until the state is saved
        assert r.hub.acknowledged == []
        r.clock.advance(5)
        wait_for(lambda: len(r.hub.acknowledged) == 2)
    assert stats["redelivered"] == 1
    assert [s.sample_id for s in r.selected()] == ["s000001", "s000003", "s000005", "s000007"]
    selected_messages = [m for m in r.hub.sent if m.output == "selected"]
    assert [m.properties["batch_size"] for m in selected_messages] == ["1", "3"]
    assert all(s.prediction.model_version == prediction(1).model_version for s in r.selected())


class _GateClock(FakeClock):
    """A fake clock whose ``now`` waits at an armed gate: holds the runtime thread inside a
    decision while more inputs arrive."""

    def __init__(self, start: datetime) -> None:
        super().__init__(start)
        self.gate = threading.Event()
        self.gate.set()
        self.waiting = threading.Event()

    def now(self) -> datetime:
        if not self.gate.is_set():
            self.waiting.set()
            self.gate.wait(10)
        return super().now()


def test_selections_of_inputs_that_came_together_go_out_in_one_message() -> None:
    # given: the filter busy deciding a first message while two more arrive
    with Running({"policy": SELECT_CATS}) as r:
        clock = _GateClock(T0)
        r.runtime.clock = clock
        clock.gate.clear()
        r.hub.push_input("predictions", [prediction(1)])
        assert clock.waiting.wait(10)
        r.hub.push_input("predictions", [prediction(2)])
        r.hub.push_input("predictions", [prediction(3), prediction(4, label="dog")])
        # when
        clock.gate.set()
        wait_for(lambda: r.stats()["seen"] == 4)
        # then: the three messages' selections left in one message, once no input waited
        selected_messages = [m for m in r.hub.sent if m.output == "selected"]
        assert [m.properties["batch_size"] for m in selected_messages] == ["3"]
        assert [s.sample_id for s in r.selected()] == ["s000001", "s000002", "s000003"]
        assert r.stats()["unsent_selected"] == 0


def test_selections_of_a_fast_input_go_out_together_and_the_rest_when_it_stops() -> None:
    # given: a first selection sent at once
    with Running({"policy": SELECT_CATS, "state_save_interval_s": 3600}) as r:
        r.hub.push_input("predictions", [prediction(1)])
        wait_for(lambda: len(r.selected()) == 1)
        # when: two more messages come within SELECTED_GAP_S of that send
        r.hub.push_input("predictions", [prediction(2)])
        r.hub.push_input("predictions", [prediction(3), prediction(4, label="dog")])
        wait_for(lambda: r.stats()["seen"] == 4)
        # then: their selections wait (nothing else is sent meanwhile)
        assert r.stats()["unsent_selected"] == 2
        assert len(r.selected()) == 1
        # when: the gap passes with no more input: the tick sends them, in one message
        r.clock.advance(SELECTED_GAP_S)
        wait_for(lambda: r.stats()["unsent_selected"] == 0)
    selected_messages = [m for m in r.hub.sent if m.output == "selected"]
    assert [m.properties["batch_size"] for m in selected_messages] == ["1", "2"]
    assert [s.sample_id for s in r.selected()] == ["s000001", "s000002", "s000003"]


def test_totals_and_decided_ids_survive_a_restart(tmp_path: Path) -> None:
    # given: a first run decided two samples and stopped
    path = tmp_path / "filter-state.json"
    with Running({"policy": SELECT_CATS}, store=JsonFileStateStore(path)) as first:
        first.hub.push_input("predictions", [prediction(1), prediction(2, label="dog")])
        wait_for(lambda: first.stats()["seen"] == 2)
    # when: the next run gets one of them again and a new one
    with Running({"policy": SELECT_CATS}, store=JsonFileStateStore(path)) as second:
        second.hub.push_input("predictions", [prediction(1), prediction(3)])
        wait_for(lambda: second.stats()["seen"] + second.stats()["redelivered"] == 2)
        stats = second.stats()
    # then: this run's counters are its own, the totals span both runs
    assert [s.sample_id for s in second.selected()] == ["s000003"]
    assert (stats["seen"], stats["redelivered"]) == (1, 1)
    assert stats["totals"] == {
        "seen": 3,
        "selected_by_strategy": {"cats": 2},
        "dropped_by_reason": {"no_strategy_matched": 1},
        "redelivered": 1,
    }


def test_inputs_are_acknowledged_only_once_their_decisions_are_saved() -> None:
    # given
    store = MemoryStateStore()
    with Running({"policy": SELECT_CATS, "state_save_interval_s": 5}, store=store) as r:
        r.clock.advance(1)  # the save at start is behind us; the next is due in 5 s
        # when
        r.hub.push_input("predictions", [prediction(1)])
        r.hub.push_input("predictions", [prediction(2)])
        wait_for(lambda: r.stats()["seen"] == 2)
        r.clock.advance(SELECTED_GAP_S)  # the second's selection goes out at the next tick
        wait_for(lambda: len(r.selected()) == 2)
        # then: decided and sent, but not acknowledged: a kill now gets them again
        assert r.hub.acknowledged == []
        assert store.doc.get("totals", {}).get("seen", 0) == 0
        # when: the save interval passes
        r.clock.advance(5)
        wait_for(lambda: len(r.hub.acknowledged) == 2)
        # then: the saved state holds both decisions
        assert store.doc["totals"]["seen"] == 2
        assert sorted(store.doc["decided"]) == ["s000001", "s000002"]


def test_a_run_of_unsaved_inputs_is_saved_and_acknowledged_without_waiting() -> None:
    # given
    from edgeloop_filter.module import UNSAVED_MESSAGES_MAX

    store = MemoryStateStore()
    with Running({"policy": SELECT_CATS, "state_save_interval_s": 3600}, store=store) as r:
        # when
        for i in range(UNSAVED_MESSAGES_MAX):
            r.hub.push_input("predictions", [prediction(i)])
        # then
        wait_for(lambda: len(r.hub.acknowledged) == UNSAVED_MESSAGES_MAX)
        assert store.doc["totals"]["seen"] == UNSAVED_MESSAGES_MAX


def test_inputs_are_acknowledged_at_stop() -> None:
    # given
    store = MemoryStateStore()
    with Running({"policy": SELECT_CATS, "state_save_interval_s": 3600}, store=store) as r:
        r.hub.push_input("predictions", [prediction(1)])
        wait_for(lambda: r.stats()["seen"] == 1)
        assert r.hub.acknowledged == []
    # then
    assert len(r.hub.acknowledged) == 1
    assert store.doc["totals"]["seen"] == 1


def test_an_unwritable_state_dir_does_not_hold_inputs_back(tmp_path: Path) -> None:
    # given
    blocker = tmp_path / "blocker"
    blocker.write_text("", encoding="utf-8")
    with Running({"policy": SELECT_CATS}, store=JsonFileStateStore(blocker / "filter-state.json")) as r:
        # when
        r.hub.push_input("predictions", [prediction(1)])
        r.clock.advance(5)
        # then
        wait_for(lambda: len(r.hub.acknowledged) == 1)
        assert r.stats()["state_save_errors"] >= 1


@pytest.mark.parametrize(
    ("doc", "seen", "decided"),
    [
        ({"totals": {"seen": 4, "selected_by_strategy": {"cats": 1}}, "decided": ["s000001"]}, 4, 1),
        ({"totals": {"seen": -3, "selected_by_strategy": "x"}, "decided": [1, None, "s000001"]}, 0, 1),
        ({"totals": [], "decided": {}}, 0, 0),
    ],
)
def test_saved_totals_and_ids_are_read_defensively(doc: dict[str, Any], seen: int, decided: int) -> None:
    # when
    with Running({"policy": SELECT_CATS}, store=MemoryStateStore(doc)) as r:
        stats = r.stats()
    # then
    assert stats["totals"]["seen"] == seen
    assert len(r.module.decided) == decided


ADAPTIVE = {
    "version": "adaptive-1",
    "strategies": [{"name": "top", "rules": [{"type": "top_share", "score": "margin", "share": 0.1}]}],
    "audit": {"share": 0.2},
}


def test_audit_and_top_share_are_counted_in_stats_summaries_and_dry_run() -> None:
    # given
    with Running({"policy": ADAPTIVE, "summary_interval_s": 60}) as r:
        r.hub.push_input("predictions", [prediction(i, margin=(i * 37 % 100) / 100) for i in range(200)])
        wait_for(lambda: r.stats()["seen"] == 200)
        # when
        stats = r.stats()
        dry = r.hub.call_method("dryRun", {"seed": 3}).payload
        r.clock.advance(61)
        wait_for(lambda: len(r.summaries()) == 1)
    # then
    assert set(stats["selected_by_strategy"]) == {"top", "audit"}
    assert stats["selected_by_strategy"]["audit"] == pytest.approx(40, abs=15)
    assert {s.strategy for s in r.selected()} == {"top", "audit"}
    assert all(s.tags == ["audit"] for s in r.selected() if s.strategy == "audit")
    assert r.summaries()[0].selected_by_strategy == stats["selected_by_strategy"]
    assert dry["evaluated"] == 200
    assert set(dry["selected_by_strategy"]) == {"top", "audit"}


def test_an_impossible_target_share_is_refused_by_set_policy_and_dry_run(fixed: Running) -> None:
    # given
    bad = {"strategies": [{"name": "top", "rules": [{"type": "top_share", "share": 1.5}]}]}
    # when
    answer = fixed.hub.call_method("setPolicy", bad)
    tried = fixed.hub.call_method("dryRun", {"policy": bad})
    # then
    assert (answer.status, tried.status) == (400, 400)
    assert "share = 1.5: a target share is a fraction of the stream in (0, 1]" in answer.payload["error"]
    assert fixed.hub.call_method("getPolicy").payload["version"] == "fixed-1"


def test_embedding_problems_are_in_get_stats() -> None:
    # given: a novelty strategy and predictions from a model without (or with a broken) embedding
    policy = {
        "strategies": [{"name": "n", "rules": [{"type": "novelty", "above": 0.1}]}],
        "audit": {"share": 0},
    }
    with Running({"policy": policy}) as r:
        r.hub.push_input("predictions", [prediction(1), prediction(2, embedding="%%%")])
        wait_for(lambda: r.stats()["seen"] == 2)
        # when
        stats = r.stats()
    # then
    assert stats["dropped_by_reason"] == {"no_embedding": 2}
    assert stats["embedding_problems"] == {"bad_embedding": 1}
    assert "not base64" in stats["last_embedding_problem"]
