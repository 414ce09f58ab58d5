"""The decision engine: one prediction in, selected or dropped with the reason out.

Order of checks: the prediction is usable (status ok, label and confidence present), drift
statistics are fed, the audit share is drawn, the global window is open; an audit draw selects
the sample as strategy ``audit`` (no budget, no dedup); otherwise strategies are tried in
order, and the first whose window is open, whose rules all match, whose class balance allows
the predicted class and which has budget left (its own and the global one) selects the sample,
unless it is a near-duplicate of a recent selection from the same source. No I/O here: the
module persists ``snapshot()`` and restores it.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from edgeloop.contracts import EmbeddingError, Prediction, SelectedSample, decode_embedding
from edgeloop_filter.budget import Budgets
from edgeloop_filter.dedup import DedupMemory
from edgeloop_filter.drift import DriftMonitor
from edgeloop_filter.novelty import EmbeddingMemory
from edgeloop_filter.policy import AUDIT, Limits, Policy, Strategy
from edgeloop_filter.rules import NO_EMBEDDING, Features, Predicate, compile_rule, uses_embedding
from edgeloop_filter.schedule import Gate

#: Why a sample was not selected (keys of ``dropped_by_reason``).
ERROR_STATUS = "error_status"
MISSING_FIELDS = "missing_fields"
WINDOW_CLOSED = "window_closed"
NO_MATCH = "no_strategy_matched"
OVER_BUDGET = "over_budget"
DUPLICATE = "duplicate"
CLASS_CAPPED = "class_capped"
DROP_REASONS = (
    ERROR_STATUS,
    MISSING_FIELDS,
    WINDOW_CLOSED,
    NO_MATCH,
    OVER_BUDGET,
    DUPLICATE,
    CLASS_CAPPED,
    NO_EMBEDDING,
)
#: When several strategies were stopped, the drop is counted by the first of these that applies.
_BLOCKED_ORDER = (OVER_BUDGET, CLASS_CAPPED, NO_EMBEDDING, WINDOW_CLOSED)
_BLOCKED_DETAIL = {
    OVER_BUDGET: "every matching strategy is over its budget",
    CLASS_CAPPED: "the predicted class took its share of every matching strategy",
    NO_EMBEDDING: "a novelty rule could not judge it: the prediction has no usable embedding",
    WINDOW_CLOSED: "strategies outside their windows",
}
#: Embedding problems counted in ``embedding_problems``.
BAD_EMBEDDING = "bad_embedding"
EMBEDDING_LENGTH_CHANGED = "embedding_length_changed"


class Decision(NamedTuple):
    """A decision: the selected sample, or why it was dropped (a tuple: made per prediction,
    cheaper than a frozen dataclass)."""

    selected: SelectedSample | None
    dropped: str | None = None
    detail: str = ""


#: Drops whose detail never varies, made once (a decision is immutable, so they are shared).
_NO_MATCH = Decision(None, NO_MATCH, "")
_BLOCKED = {why: Decision(None, why, detail) for why, detail in _BLOCKED_DETAIL.items()}

_new_object = object.__new__
_set_attribute = object.__setattr__
_SAMPLE_FIELDS = frozenset(SelectedSample.model_fields)


@dataclass(frozen=True, slots=True)
class _Instant:
    """One decision instant: what every decision taken at it shares (made once a batch)."""

    now: datetime
    mono: float
    wall: float
    open: bool
    strategies_open: list[bool]


class _Compiled:
    """A strategy ready to evaluate, with what each selection copies from it worked out once."""

    __slots__ = (
        "balance",
        "gate",
        "labels",
        "limits",
        "name",
        "predicates",
        "prefix",
        "priority",
        "single",
        "strategy",
        "tags",
        "unlimited",
    )

    def __init__(self, strategy: Strategy, rng: random.Random) -> None:
        self.strategy = strategy
        self.name = strategy.name
        self.prefix = f"{strategy.name}: "
        self.tags = list(strategy.tags)
        self.priority = strategy.priority
        self.predicates: tuple[Predicate, ...] = tuple(compile_rule(r, rng) for r in strategy.rules)
        #: The one rule's predicate when there is one (its reason is the reason), else None.
        self.single = self.predicates[0] if len(self.predicates) == 1 else None
        self.gate = Gate(strategy.schedule)
        self.limits = strategy.limits
        self.unlimited = strategy.limits == Limits()
        self.balance = strategy.class_balance
        self.labels: deque[str] = deque(maxlen=self.balance.window if self.balance else 1)

    def capped(self, label: str) -> bool:
        """Whether ``label`` already holds more than its share of the recent selections."""
        balance = self.balance
        if balance is None or len(self.labels) < balance.min_selections:
            return False
        return self.labels.count(label) / len(self.labels) > balance.max_share

    def match(self, f: Features) -> str | None:
        if self.single is not None:  # the usual case: the rule's reason is the reason
            return self.single(f)
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
        self.embedding_problems: Counter[str] = Counter()
        self.last_embedding_problem: str | None = None
        self.policy = policy
        self.drift = DriftMonitor(policy.drift)
        self.memory = EmbeddingMemory(policy.novelty.memory)
        self.set_policy(policy)

    def set_policy(self, policy: Policy) -> None:
        """Put ``policy`` in force; budgets (by strategy name), dedup memory and the memory
        of selected embeddings carry over; ``top_share`` windows start over."""
        strategies = [_Compiled(s, self.rng) for s in policy.strategies]
        if policy.drift != self.policy.drift:
            self.drift = DriftMonitor(policy.drift)
        if policy.novelty != self.policy.novelty:
            self.memory = EmbeddingMemory(policy.novelty.memory)
        self.policy = policy
        self._strategies = strategies
        self._needs_embedding = any(uses_embedding(r) for s in policy.strategies for r in s.rules)
        self._gate = Gate(policy.schedule)
        self._global_limits = policy.limits
        self._global_unlimited = policy.limits == Limits()
        # What every decision reads from the policy, looked up once here instead.
        self._drift_on = policy.drift.enabled
        self._dedup_on = policy.dedup.enabled
        self._audit_share = policy.audit.share
        self._audit_reason = f"audit: random draw under share={policy.audit.share:g}"

    # -- deciding ------------------------------------------------------------------------
    def decide_batch(self, predictions: Sequence[Prediction], now: datetime, mono: float) -> list[Decision]:
        """Decide the predictions of one message at one instant, in order (each decision sees
        the budgets, dedup memory and drift statistics the ones before it left). What depends
        on the instant alone (the wall clock, whether each schedule is open) is worked out once
        for the batch, and what depends on the policy alone once when it is put in force."""
        return self._decide_all(predictions, self._instant(now, mono))

    def decide(self, p: Prediction, now: datetime, mono: float) -> Decision:
        return self._decide_all((p,), self._instant(now, mono))[0]

    def _instant(self, now: datetime, mono: float) -> _Instant:
        return _Instant(
            now,
            mono,
            now.timestamp(),
            self._gate.always_open or self._gate.is_open(now),
            [s.gate.always_open or s.gate.is_open(now) for s in self._strategies],
        )

    def _decide_all(self, predictions: Sequence[Prediction], at: _Instant) -> list[Decision]:
        """The decisions, in order; the one path both ``decide`` and ``decide_batch`` take."""
        out: list[Decision] = []
        append = out.append
        drift = self.drift if self._drift_on else None
        needs_embedding = self._needs_embedding
        share = self._audit_share
        draw = self.rng.random
        try_strategies = self._try_strategies
        seen = self.seen
        for p in predictions:
            seen += 1
            self.seen = seen
            if p.status != "ok":
                append(self._drop(ERROR_STATUS, p.error or "status=error"))
                continue
            label, confidence = p.label, p.confidence
            if label is None or confidence is None:
                missing = [n for n in ("label", "confidence") if getattr(p, n) is None]
                append(self._drop(MISSING_FIELDS, "missing " + ", ".join(missing)))
                continue
            version = p.model_version
            f = Features(
                label, confidence, _margin(p), p.entropy, p.frame.source_id, p.scores, model_version=version
            )
            if version is not None:
                self.model_version = version
            if drift is not None:
                drift.observe(confidence, label, version)
                f.drifting = drift.detected()
            if needs_embedding:
                self._attach_embedding(p, f)
            audited = share > 0.0 and draw() < share
            if not at.open:
                append(self._drop(WINDOW_CLOSED, "policy schedule closed"))
            elif audited:
                priority = self.policy.audit.priority
                append(self._selected(p, f, AUDIT, self._audit_reason, [AUDIT], priority, at.now))
            else:
                append(try_strategies(p, f, at))
        return out

    def _attach_embedding(self, p: Prediction, f: Features) -> None:
        """Decode the prediction's embedding for novelty rules; a bad one counts as absent."""
        if p.embedding is None:
            return
        try:
            values = decode_embedding(p.embedding)
        except EmbeddingError as exc:
            self._embedding_problem(BAD_EMBEDDING, f"sample {p.sample_id!r}: {exc}")
            return
        changed = self.memory.follow(p.model_version, len(values))
        if changed is not None:
            self._embedding_problem(EMBEDDING_LENGTH_CHANGED, changed)
        f.use_embedding(values, self.memory.novelty)

    def _embedding_problem(self, key: str, detail: str) -> None:
        self.embedding_problems[key] += 1
        self.last_embedding_problem = detail

    def _try_strategies(self, p: Prediction, f: Features, at: _Instant) -> Decision:
        wall, mono = at.wall, at.mono
        size = p.frame.bytes or 0
        blocked: set[str] = set()
        factor = 0.0  # the drift boost of the limits, worked out when a limit is first checked
        for s, open_now in zip(self._strategies, at.strategies_open, strict=True):
            if not open_now:
                blocked.add(WINDOW_CLOSED)
                continue
            single = s.single
            reason = single(f) if single is not None else s.match(f)
            if reason is None:
                continue
            if s.balance is not None and s.capped(f.label):
                blocked.add(CLASS_CAPPED)
                continue
            if not s.unlimited:
                factor = factor or self._boost()
                limit = self.budgets.scope(s.name).allows(s.limits, size, wall, mono, factor)
                if limit is not None:
                    blocked.add(OVER_BUDGET)
                    continue
            if not self._global_unlimited:
                factor = factor or self._boost()
                shared = self.budgets.scope(Budgets.GLOBAL)
                limit = shared.allows(self._global_limits, size, wall, mono, factor)
                if limit is not None:
                    return self._drop(OVER_BUDGET, f"policy limit {limit} reached")
            if self._dedup_on:
                duplicate = self._duplicate(p, f, wall)
                if duplicate is not None:
                    return self._drop(DUPLICATE, duplicate)
            if not s.unlimited:
                self.budgets.scope(s.name).spend(s.limits, size, wall, mono)
            if not self._global_unlimited:
                self.budgets.scope(Budgets.GLOBAL).spend(self._global_limits, size, wall, mono)
            if s.balance is not None:
                s.labels.append(f.label)
            return self._selected(p, f, s.name, s.prefix + reason, s.tags.copy(), s.priority, at.now)
        if blocked or f.notes:
            if NO_EMBEDDING in f.notes:
                blocked.add(NO_EMBEDDING)
            for why in _BLOCKED_ORDER:
                if why in blocked:
                    self.dropped[why] += 1
                    return _BLOCKED[why]
        self.dropped[NO_MATCH] += 1
        return _NO_MATCH

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

    def _selected(
        self,
        p: Prediction,
        f: Features,
        strategy: str,
        reason: str,
        tags: list[str],
        priority: int,
        now: datetime,
    ) -> Decision:
        """Remember what was selected (dHash, embedding), count it, and build the sample. The
        embedding stays behind: the selected sample's prediction goes on without it."""
        if self._dedup_on and p.frame.dhash is not None:
            self.dedup.remember(self.policy.dedup, p.frame.source_id, int(p.frame.dhash, 16), now.timestamp())
        if f.embedding is not None:
            self.memory.remember(f.embedding)
        self.selected[strategy] += 1
        # Built as validation would build it, without validating again what is valid already:
        # the prediction came validated, the strategy's name, tags and priority came with the
        # validated policy, the reason is the engine's and ``now`` the clock's. (Validating it
        # was an eighth of a decision for a one-line policy.) A unit test compares it field for
        # field with a validated one.
        sample = _new_object(SelectedSample)
        _set_attribute(
            sample,
            "__dict__",
            {
                "sample_id": p.sample_id,
                "prediction": p if p.embedding is None else p.model_copy(update={"embedding": None}),
                "strategy": strategy,
                "reason": reason,
                "tags": tags,
                "priority": priority,
                "selected_at": now,
                "traceparent": p.traceparent or p.frame.traceparent,
            },
        )
        _set_attribute(sample, "__pydantic_fields_set__", set(_SAMPLE_FIELDS))
        _set_attribute(sample, "__pydantic_extra__", None)
        _set_attribute(sample, "__pydantic_private__", None)
        return Decision(sample)

    def _drop(self, reason: str, detail: str) -> Decision:
        self.dropped[reason] += 1
        return Decision(None, reason, detail)

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
