"""The decision engine: one prediction in, selected or dropped with the reason out.

Order of checks: the prediction is usable (status ok, label and confidence present), drift
statistics are fed, the global window is open; then strategies are tried in order, and the
first whose window is open, whose rules all match and which has budget left (its own and the
global one) selects the sample, unless it is a near-duplicate of a recent selection from the
same source. No I/O here: the module persists ``snapshot()`` and restores it.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from edgeloop.contracts import Prediction, SelectedSample
from edgeloop_filter.budget import Budgets
from edgeloop_filter.dedup import DedupMemory
from edgeloop_filter.drift import DriftMonitor
from edgeloop_filter.policy import Limits, Policy, Strategy
from edgeloop_filter.rules import Features, Predicate, compile_rule
from edgeloop_filter.schedule import Gate

#: Why a sample was not selected (keys of ``dropped_by_reason``).
ERROR_STATUS = "error_status"
MISSING_FIELDS = "missing_fields"
WINDOW_CLOSED = "window_closed"
NO_MATCH = "no_strategy_matched"
OVER_BUDGET = "over_budget"
DUPLICATE = "duplicate"
DROP_REASONS = (ERROR_STATUS, MISSING_FIELDS, WINDOW_CLOSED, NO_MATCH, OVER_BUDGET, DUPLICATE)


@dataclass(frozen=True)
class Decision:
    selected: SelectedSample | None
    dropped: str | None = None
    detail: str = ""


class _Compiled:
    """A strategy ready to evaluate."""

    __slots__ = ("gate", "limits", "name", "predicates", "strategy", "unlimited")

    def __init__(self, strategy: Strategy, rng: random.Random) -> None:
        self.strategy = strategy
        self.name = strategy.name
        self.predicates: tuple[Predicate, ...] = tuple(compile_rule(r, rng) for r in strategy.rules)
        self.gate = Gate(strategy.schedule)
        self.limits = strategy.limits
        self.unlimited = strategy.limits == Limits()

    def match(self, f: Features) -> str | None:
        reasons = []
        for predicate in self.predicates:
            reason = predicate(f)
            if reason is None:
                return None
            reasons.append(reason)
        return " and ".join(reasons)


def _margin(p: Prediction) -> float | None:
    if p.margin is not None:
        return p.margin
    if len(p.top_k) >= 2:
        return max(0.0, p.top_k[0].score - p.top_k[1].score)
    if len(p.scores) >= 2:
        top = sorted(p.scores, reverse=True)
        return max(0.0, top[0] - top[1])
    return None


def features(p: Prediction) -> Features | None:
    """What rules read, or None when the prediction lacks label or confidence."""
    if p.label is None or p.confidence is None:
        return None
    return Features(p.label, p.confidence, _margin(p), p.entropy, p.frame.source_id, p.scores)


class Engine:
    """Applies one policy; keeps budgets, dedup memory, drift statistics and counters."""

    def __init__(self, policy: Policy, *, rng: random.Random | None = None) -> None:
        self.rng = rng or random.Random()
        self.budgets = Budgets()
        self.dedup = DedupMemory()
        self.seen = 0
        self.selected: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.model_version: str | None = None
        self.policy = policy
        self.drift = DriftMonitor(policy.drift)
        self.set_policy(policy)

    def set_policy(self, policy: Policy) -> None:
        """Put ``policy`` in force; budgets (by strategy name) and dedup memory carry over."""
        strategies = [_Compiled(s, self.rng) for s in policy.strategies]
        if policy.drift != self.policy.drift:
            self.drift = DriftMonitor(policy.drift)
        self.policy = policy
        self._strategies = strategies
        self._gate = Gate(policy.schedule)
        self._global_limits = policy.limits
        self._global_unlimited = policy.limits == Limits()

    # -- deciding ------------------------------------------------------------------------
    def decide(self, p: Prediction, now: datetime, mono: float) -> Decision:
        self.seen += 1
        if p.status != "ok":
            return self._drop(ERROR_STATUS, p.error or "status=error")
        f = features(p)
        if f is None:
            missing = [n for n in ("label", "confidence") if getattr(p, n) is None]
            return self._drop(MISSING_FIELDS, "missing " + ", ".join(missing))
        if p.model_version is not None:
            self.model_version = p.model_version
        if self.policy.drift.enabled:
            self.drift.observe(f.confidence, f.label, p.model_version)
        if not self._gate.always_open and not self._gate.is_open(now):
            return self._drop(WINDOW_CLOSED, "policy schedule closed")
        return self._try_strategies(p, f, now, mono)

    def _try_strategies(self, p: Prediction, f: Features, now: datetime, mono: float) -> Decision:
        wall = now.timestamp()
        size = p.frame.bytes or 0
        blocked: str | None = None
        factor = 0.0
        for s in self._strategies:
            if not s.gate.always_open and not s.gate.is_open(now):
                blocked = blocked or WINDOW_CLOSED
                continue
            reason = s.match(f)
            if reason is None:
                continue
            if not factor:
                factor = self._boost()
            if not s.unlimited:
                limit = self.budgets.scope(s.name).allows(s.limits, size, wall, mono, factor)
                if limit is not None:
                    blocked = OVER_BUDGET
                    continue
            if not self._global_unlimited:
                shared = self.budgets.scope(Budgets.GLOBAL)
                limit = shared.allows(self._global_limits, size, wall, mono, factor)
                if limit is not None:
                    return self._drop(OVER_BUDGET, f"policy limit {limit} reached")
            duplicate = self._duplicate(p, f, wall)
            if duplicate is not None:
                return self._drop(DUPLICATE, duplicate)
            return self._select(p, s, reason, now, mono, size)
        if blocked == OVER_BUDGET:
            return self._drop(OVER_BUDGET, "every matching strategy is over its budget")
        if blocked == WINDOW_CLOSED:
            return self._drop(WINDOW_CLOSED, "strategies outside their windows")
        return self._drop(NO_MATCH, "")

    def _boost(self) -> float:
        boost = self.policy.drift.boost
        if boost is not None and self.policy.drift.enabled and self.drift.high():
            return boost.factor
        return 1.0

    def _duplicate(self, p: Prediction, f: Features, wall: float) -> str | None:
        config = self.policy.dedup
        if not config.enabled or p.frame.dhash is None:
            return None
        distance = self.dedup.duplicate_of(config, f.source_id, int(p.frame.dhash, 16), wall)
        if distance is None:
            return None
        return f"dHash within {distance} bits of a recent selection from {f.source_id!r}"

    def _select(
        self, p: Prediction, s: _Compiled, reason: str, now: datetime, mono: float, size: int
    ) -> Decision:
        wall = now.timestamp()
        if not s.unlimited:
            self.budgets.scope(s.name).spend(s.limits, size, wall, mono)
        if not self._global_unlimited:
            self.budgets.scope(Budgets.GLOBAL).spend(self._global_limits, size, wall, mono)
        if self.policy.dedup.enabled and p.frame.dhash is not None:
            self.dedup.remember(self.policy.dedup, p.frame.source_id, int(p.frame.dhash, 16), wall)
        self.selected[s.name] += 1
        strategy = s.strategy
        sample = SelectedSample(
            sample_id=p.sample_id,
            prediction=p,
            strategy=s.name,
            reason=f"{s.name}: {reason}",
            tags=list(strategy.tags),
            priority=strategy.priority,
            selected_at=now,
            traceparent=p.traceparent or p.frame.traceparent,
        )
        return Decision(selected=sample)

    def _drop(self, reason: str, detail: str) -> Decision:
        self.dropped[reason] += 1
        return Decision(selected=None, dropped=reason, detail=detail)

    # -- state ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {"budgets": self.budgets.snapshot(), "dedup": self.dedup.snapshot()}

    def restore(self, doc: dict[str, Any], mono: float) -> None:
        self.budgets = Budgets.restore(doc.get("budgets", {}), mono)
        self.dedup = DedupMemory.restore(doc.get("dedup", {}), self.policy.dedup)

    def gates(self, now: datetime) -> dict[str, Any]:
        """Open/closed and the next change, for the policy and each strategy with a schedule."""
        out: dict[str, Any] = {}
        items = [("policy", self._gate)] + [(s.name, s.gate) for s in self._strategies]
        for name, gate in items:
            if gate.always_open:
                continue
            change = gate.next_change(now)
            out[name] = {
                "open": gate.is_open(now),
                "nextChange": change.isoformat() if change is not None else None,
            }
        return out

    def gate_states(self, now: datetime) -> dict[str, bool]:
        """Open or closed, for the policy and each strategy with a schedule (cheap)."""
        items = [("policy", self._gate)] + [(s.name, s.gate) for s in self._strategies]
        return {name: gate.is_open(now) for name, gate in items if not gate.always_open}

    def next_change(self, now: datetime) -> datetime | None:
        changes = [g.next_change(now) for g in [self._gate, *(s.gate for s in self._strategies)]]
        known = [c for c in changes if c is not None]
        return min(known) if known else None
