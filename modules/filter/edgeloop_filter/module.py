"""The filter as an EdgeModule: predictions in, ``selected`` and ``summaries`` out.

Decisions count once they are saved: an input message is acknowledged to the hub only after
the samples it selected are sent on ``selected`` and the state holding its decisions (budgets,
totals, the ids decided) is written, at most ``state_save_interval_s`` seconds or
``UNSAVED_MESSAGES_MAX`` messages later. Selections are sent once no further input waits and
``SELECTED_GAP_S`` has passed since the last selections were sent (at once when the input is
slow; when it is fast, the selections of the input messages of that time together, in one
message; the tick sends those left when the input stops), and always before the save; when the
hub refuses them, nothing is saved or acknowledged and the next save tries again. A filter killed
before that gets the messages again and decides them again against the saved state; a
prediction for a sample id decided recently (delivered again after the save, or scored twice
by an inference module that was restarted) is counted as ``redelivered`` and not decided again.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from pydantic import BaseModel, ConfigDict, Field

from edgeloop.contracts import Contract, Prediction, SelectedSample, Summary
from edgeloop.errors import HubError, MessageTooLargeError
from edgeloop.recent import RecentIds
from edgeloop.runtime import EdgeModule, InboundMessage, MethodRegistry, ModuleContext, NoPayload
from edgeloop_filter import observe
from edgeloop_filter.config import FilterConfig
from edgeloop_filter.engine import Engine
from edgeloop_filter.policy import Policy, parse_policy
from edgeloop_filter.state import MemoryStateStore, StateStore

log = logging.getLogger(__name__)

SELECTED = "selected"
SUMMARIES = "summaries"
#: Input messages held unacknowledged before the state is saved anyway: edgeHub keeps at most
#: 50 unacknowledged messages in flight per client (the dev hub 64), so waiting for the
#: interval alone would stall a fast input; saving every few messages keeps it flowing.
UNSAVED_MESSAGES_MAX = 8
#: Shortest time between two ``selected`` messages outside a save: each message costs the
#: filter about as much CPU in the hub client as deciding a few dozen predictions, and with
#: a fast input nearly every input message would otherwise send one.
SELECTED_GAP_S = 0.25


class DryRunPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    policy: dict[str, Any] | None = Field(default=None, description="Policy to try; unset: the current one.")
    last: int | None = Field(default=None, ge=1, description="How many recent predictions; unset: all kept.")
    max_samples: int = Field(default=100, ge=0, le=10_000, description="Selected samples listed back.")
    seed: int = Field(default=0, description="Seed for random rules without their own seed.")


class FilterModule(EdgeModule[FilterConfig]):
    name = "filter"
    config_model = FilterConfig
    acknowledges_inputs = True

    def __init__(
        self,
        *,
        store: StateStore | None = None,
        rng: random.Random | None = None,
        scheduler: BackgroundScheduler | None = None,
    ) -> None:
        self.store = store or MemoryStateStore()
        self.rng = rng or random.Random()
        self.scheduler = scheduler
        self.ctx: ModuleContext[FilterConfig] | None = None
        self.engine: Engine | None = None
        self.policy_source = "twin"
        self.config = FilterConfig()
        self.history: deque[tuple[datetime, float, Prediction]] = deque(maxlen=self.config.history_size)
        self.counters: Counter[str] = Counter()
        self._dirty = False
        self._last_save = 0.0
        self._summary_start: datetime | None = None
        self._next_summary = 0.0
        self._summary_seq = 0
        self._window_base: tuple[int, Counter[str], Counter[str]] = (0, Counter(), Counter())
        self._gate_state: dict[str, bool] = {}
        self._report_lock = threading.Lock()
        self._transition_due = threading.Event()
        self.decided: RecentIds[str] = RecentIds(self.config.redelivery_memory)
        self._unsaved: list[InboundMessage] = []
        self._unsent: list[SelectedSample] = []
        self._last_sent = float("-inf")
        self._saved_totals = _Totals()

    # -- configuration -------------------------------------------------------------------
    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("getPolicy", self._get_policy, NoPayload, "the policy in force, windows, drift")
        methods.add("setPolicy", self._set_policy, None, "replace the policy now (400 with the path)")
        methods.add("dryRun", self._dry_run, DryRunPayload, "what a policy would select of recent input")

    def apply_config(self, config: FilterConfig, previous: FilterConfig | None) -> None:
        self.config = config
        if self.history.maxlen != config.history_size:
            self.history = deque(self.history, maxlen=config.history_size)
        self.decided.resize(config.redelivery_memory)
        if self.engine is None:
            self.engine = Engine(config.policy, rng=self.rng)
        elif previous is None or config.policy != previous.policy:
            self._use_policy(config.policy, "twin")

    def _use_policy(self, policy: Policy, source: str) -> None:
        assert self.engine is not None
        self.engine.set_policy(policy)
        self.policy_source = source
        log.info("policy %s in force (from %s)", policy.version, source)
        self._report_filter()
        self._schedule_transition()

    def _get_policy(self, _payload: NoPayload) -> dict[str, Any]:
        engine = self._engine()
        return {
            "policy": engine.policy.model_dump(mode="json"),
            "version": engine.policy.version,
            "source": self.policy_source,
            **self._status(),
        }

    def _set_policy(self, payload: Any) -> dict[str, Any]:
        policy = parse_policy(payload)
        self._use_policy(policy, "method")
        return {"version": policy.version, "source": "method", **self._status()}

    def _dry_run(self, payload: DryRunPayload) -> dict[str, Any]:
        policy = parse_policy(payload.policy) if payload.policy is not None else self._engine().policy
        history = list(self.history)
        if payload.last is not None:
            history = history[-payload.last :]
        engine = Engine(policy, rng=random.Random(payload.seed))
        samples: list[dict[str, str]] = []
        for now, mono, prediction in history:
            decision = engine.decide(prediction, now, mono)
            if decision.selected is not None and len(samples) < payload.max_samples:
                chosen = decision.selected
                samples.append(
                    {"sample_id": chosen.sample_id, "strategy": chosen.strategy, "reason": chosen.reason}
                )
        return {
            "version": policy.version,
            "evaluated": len(history),
            "selected": sum(engine.selected.values()),
            "selected_by_strategy": dict(engine.selected),
            "dropped_by_reason": dict(engine.dropped),
            "drift": engine.drift.psi(),
            **_embedding_stats(engine),
            "samples": samples,
        }

    # -- lifecycle -----------------------------------------------------------------------
    def start(self, ctx: ModuleContext[FilterConfig]) -> None:
        self.ctx = ctx
        engine = self._engine()
        mono = ctx.clock.monotonic()
        state = self.store.load()
        engine.restore(state, mono)
        self._saved_totals = _Totals.restore(state.get("totals"))
        decided = state.get("decided")
        if isinstance(decided, list):
            ids = [i for i in decided if isinstance(i, str)]
            self.decided = RecentIds(self.config.redelivery_memory, ids)
        self._summary_start = ctx.clock.now()
        self._next_summary = mono + self.config.summary_interval_s
        self._last_save = mono
        if self.scheduler is not None and not self.scheduler.running:
            self.scheduler.start()
        self._report_filter()
        self._schedule_transition()

    def stop(self) -> None:
        if self.scheduler is not None and self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.ctx is not None:
            self._send_summary()
        self._save()

    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        """Decide the message's predictions with one engine call, send the selected ones in one
        message; the message is acknowledged once the state holding the decisions is saved."""
        ctx, engine = self._ctx(), self._engine()
        fresh = self._fresh(input_name, items)
        if fresh:
            now, mono = ctx.clock.now(), ctx.clock.monotonic()
            start_ns = time.time_ns()
            decisions = engine.decide_batch(fresh, now, mono)
            selected = observe.record_batch(fresh, decisions, now, start_ns=start_ns, end_ns=time.time_ns())
            if self.history.maxlen:
                self.history.extend((now, mono, item) for item in fresh)
            for item, decision in zip(fresh, decisions, strict=True):
                if decision.dropped in ("error_status", "missing_fields"):
                    log.info("dropped %s: %s (%s)", item.sample_id, decision.dropped, decision.detail)
            self._unsent.extend(selected)
        self._unsaved.append(message)
        self._dirty = True
        mono = ctx.clock.monotonic()
        if (
            len(self._unsaved) >= UNSAVED_MESSAGES_MAX
            or mono - self._last_save >= self.config.state_save_interval_s
        ):
            self._save()
        elif not ctx.inputs_waiting and mono - self._last_sent >= SELECTED_GAP_S:
            self._send_selected()

    def _fresh(self, input_name: str, items: list[Contract]) -> list[Prediction]:
        """The predictions not decided before (a redelivered one is counted and left out)."""
        fresh: list[Prediction] = []
        decided = self.decided
        for item in items:
            if not isinstance(item, Prediction):
                self.counters["wrong_schema"] += 1
                log.warning("input %s: expected predictions, got %s", input_name, item.SCHEMA)
                continue
            if item.sample_id in decided:
                self.counters["redelivered"] += 1
                log.debug("prediction for %s delivered again; already decided", item.sample_id)
                continue
            decided.add(item.sample_id)
            fresh.append(item)
        return fresh

    def tick(self) -> None:
        ctx = self._ctx()
        mono = ctx.clock.monotonic()
        if self._dirty and mono - self._last_save >= self.config.state_save_interval_s:
            self._save()
        elif self._unsent and mono - self._last_sent >= SELECTED_GAP_S:
            self._send_selected()
        if mono >= self._next_summary:
            self._next_summary = mono + self.config.summary_interval_s
            self._send_summary()
        if self._transition_due.is_set():
            self._transition_due.clear()
            self._report_filter()
            self._schedule_transition()
        else:
            self._report_if_gates_changed()
        observe.publish_gauges(self._engine(), ctx.clock.now())

    # -- summaries and reports -----------------------------------------------------------
    def _send_summary(self) -> None:
        ctx, engine = self._ctx(), self._engine()
        now = ctx.clock.now()
        seen0, selected0, dropped0 = self._window_base
        start = self._summary_start or now
        self._summary_seq += 1
        summary = Summary(
            sample_id=f"{ctx.module_id}-{now:%Y%m%dT%H%M%S}-{self._summary_seq}",
            module=ctx.module_id,
            window_start=start,
            window_end=now,
            seen=engine.seen - seen0,
            selected_by_strategy=dict(+(engine.selected - selected0)),
            dropped_by_reason=dict(+(engine.dropped - dropped0)),
            drift=engine.drift.psi(),
            model_version=engine.model_version,
        )
        self._window_base = (engine.seen, Counter(engine.selected), Counter(engine.dropped))
        self._summary_start = now
        try:
            ctx.send(SUMMARIES, [summary])
        except Exception:
            self.counters["summary_errors"] += 1
            log.warning("could not send summary", exc_info=True)
        self._report_filter()

    def _status(self) -> dict[str, Any]:
        engine = self._engine()
        now = self.ctx.clock.now() if self.ctx is not None else datetime.now(UTC)
        drifting = engine.policy.drift.enabled and engine.drift.detected()
        return {"gates": engine.gates(now), "drift": engine.drift.psi(), "drifting": drifting}

    def _report_filter(self) -> None:
        """Report the policy's gates and drift. Serialised: a report computed before a window
        changed must not land after the one computed after it, or the stale one would stay."""
        if self.ctx is None:
            return
        with self._report_lock:
            engine = self._engine()
            status = self._status()
            facts = {"policyVersion": engine.policy.version, "policySource": self.policy_source, **status}
            self.ctx.report({"filter": facts})
            self._gate_state = {name: gate["open"] for name, gate in status["gates"].items()}

    def _report_if_gates_changed(self) -> None:
        """The injected clock decides: a window that opened or closed (a wall-clock jump
        included) is reported on the next tick even without a scheduler."""
        current = self._engine().gate_states(self._ctx().clock.now())
        if current != self._gate_state:
            log.info("windows changed: %s", current)
            self._report_filter()

    def _schedule_transition(self) -> None:
        """With a scheduler, wake at the windows' next opening or closing; the report itself
        is made on the runtime thread at the next tick."""
        if self.scheduler is None or not self.scheduler.running or self.ctx is None:
            return
        change = self._engine().next_change(self.ctx.clock.now())
        if change is None:
            return
        self.scheduler.add_job(
            self._on_transition, DateTrigger(run_date=change), id="gate-transition", replace_existing=True
        )

    def _on_transition(self) -> None:
        self._transition_due.set()

    def _save(self) -> None:
        """Send the samples selected since the last save, save the state, then acknowledge the
        inputs decided since the last save. When the hub refuses the selections, nothing is
        saved or acknowledged (a restart decides those inputs again). When the state cannot be
        written the inputs are acknowledged all the same: holding them would stop the input,
        and their decisions are made and sent."""
        if not self._send_selected():
            return
        engine = self._engine()
        doc = {**engine.snapshot(), "totals": self._totals().as_json(), "decided": self.decided.snapshot()}
        try:
            self.store.save(doc)
        except OSError:
            self.counters["state_save_errors"] += 1
            log.warning("could not save filter state", exc_info=True)
        else:
            self._dirty = False
        if self.ctx is not None:
            self._last_save = self.ctx.clock.monotonic()
        self._acknowledge_unsaved()

    def _send_selected(self) -> bool:
        """Send the selections not sent yet; False (kept for the next try) when the hub refused."""
        if not self._unsent or self.ctx is None:
            return True
        self._last_sent = self.ctx.clock.monotonic()
        try:
            self.ctx.send(SELECTED, self._unsent)
        except MessageTooLargeError:
            self._send_one_by_one()
        except HubError:
            self.counters["selected_send_errors"] += 1
            log.warning("could not send %d selected samples; trying again", len(self._unsent), exc_info=True)
            return False
        self._unsent = []
        return True

    def _send_one_by_one(self) -> None:
        """One selection alone is over the size limit: send the others, drop it with the reason."""
        assert self.ctx is not None
        for sample in self._unsent:
            try:
                self.ctx.send(SELECTED, [sample])
            except MessageTooLargeError as exc:
                self.counters["selected_too_large"] += 1
                log.error("selected sample %s cannot be sent: %s", sample.sample_id, exc)

    def _acknowledge_unsaved(self) -> None:
        unsaved, self._unsaved = self._unsaved, []
        if self.ctx is not None:
            for message in unsaved:
                self.ctx.acknowledge(message)

    def _totals(self) -> _Totals:
        """Decisions since the state began: what was saved before this start plus this run's."""
        engine, saved = self._engine(), self._saved_totals
        return _Totals(
            seen=saved.seen + engine.seen,
            selected=saved.selected + engine.selected,
            dropped=saved.dropped + engine.dropped,
            redelivered=saved.redelivered + self.counters["redelivered"],
        )

    def stats(self) -> dict[str, Any]:
        engine = self._engine()
        return {
            "seen": engine.seen,
            "selected_by_strategy": dict(engine.selected),
            "dropped_by_reason": dict(engine.dropped),
            "policy_version": engine.policy.version,
            "policy_source": self.policy_source,
            "totals": self._totals().as_json(),
            "unsaved_inputs": len(self._unsaved),
            "unsent_selected": len(self._unsent),
            **_embedding_stats(engine),
            **dict(self.counters),
        }

    def _engine(self) -> Engine:
        if self.engine is None:
            self.engine = Engine(self.config.policy, rng=self.rng)
        return self.engine

    def _ctx(self) -> ModuleContext[FilterConfig]:
        assert self.ctx is not None, "module not started"
        return self.ctx


def _embedding_stats(engine: Engine) -> dict[str, Any]:
    """Embedding problems met by novelty rules (counts and the latest, in words), if any."""
    if not engine.embedding_problems:
        return {}
    return {
        "embedding_problems": dict(engine.embedding_problems),
        "last_embedding_problem": engine.last_embedding_problem,
    }


@dataclass
class _Totals:
    """Counts of decisions that survive restarts (saved with the state as ``totals``)."""

    seen: int = 0
    selected: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    redelivered: int = 0

    def as_json(self) -> dict[str, Any]:
        return {
            "seen": self.seen,
            "selected_by_strategy": dict(self.selected),
            "dropped_by_reason": dict(self.dropped),
            "redelivered": self.redelivered,
        }

    @classmethod
    def restore(cls, doc: Any) -> _Totals:
        """From a saved ``totals`` document; anything malformed counts from zero."""
        if not isinstance(doc, dict):
            return cls()

        def count(value: Any) -> int:
            return value if isinstance(value, int) and value >= 0 else 0

        def counts(value: Any) -> Counter[str]:
            if not isinstance(value, dict):
                return Counter()
            return Counter({str(k): count(v) for k, v in value.items() if count(v)})

        return cls(
            seen=count(doc.get("seen")),
            selected=counts(doc.get("selected_by_strategy")),
            dropped=counts(doc.get("dropped_by_reason")),
            redelivered=count(doc.get("redelivered")),
        )
