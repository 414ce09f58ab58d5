"""Selection budgets in calendar buckets (minute, hour, UTC day, bytes per UTC day).

Buckets follow the wall clock, so a day is a calendar day. A wall clock that jumps backwards
never refills a budget: the bucket in use stays until the wall clock passes it again or a
full period has elapsed on the monotonic clock (so a clock set years back does not freeze
selection for ever). A forward jump opens new buckets, as real time passing would.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from edgeloop_filter.policy import Limits

PERIODS: dict[str, int] = {"per_minute": 60, "per_hour": 3600, "per_day": 86400, "bytes_per_day": 86400}


@dataclass(slots=True)
class Bucket:
    index: int
    used: int
    opened_mono: float


class Budget:
    """Usage of one scope (a strategy, or ``*`` for the whole policy)."""

    def __init__(self) -> None:
        self.buckets: dict[str, Bucket] = {}

    def _bucket(self, period: str, wall: float, mono: float) -> Bucket:
        seconds = PERIODS[period]
        index = int(wall // seconds)
        bucket = self.buckets.get(period)
        if bucket is None:
            bucket = self.buckets[period] = Bucket(index, 0, mono)
        elif index > bucket.index or mono - bucket.opened_mono >= seconds:
            bucket.index, bucket.used, bucket.opened_mono = index, 0, mono
        return bucket

    def allows(self, limits: Limits, size: int, wall: float, mono: float, factor: float = 1.0) -> str | None:
        """None when one more selection of ``size`` bytes fits, else the limit that is reached."""
        for period in PERIODS:
            limit = getattr(limits, period)
            if limit is None:
                continue
            used = self._bucket(period, wall, mono).used
            cost = size if period == "bytes_per_day" else 1
            if used + cost > int(limit * factor):
                return f"{period}={int(limit * factor)}"
        return None

    def spend(self, limits: Limits, size: int, wall: float, mono: float) -> None:
        for period in PERIODS:
            if getattr(limits, period) is None:
                continue
            self._bucket(period, wall, mono).used += size if period == "bytes_per_day" else 1

    def snapshot(self) -> dict[str, Any]:
        return {p: [b.index, b.used] for p, b in self.buckets.items()}

    @classmethod
    def restore(cls, doc: dict[str, Any], mono: float) -> Budget:
        budget = cls()
        for period, (index, used) in doc.items():
            if period in PERIODS:
                budget.buckets[period] = Bucket(int(index), int(used), mono)
        return budget


class Budgets:
    """Budgets by scope name."""

    GLOBAL = "*"

    def __init__(self) -> None:
        self.scopes: dict[str, Budget] = {}

    def scope(self, name: str) -> Budget:
        budget = self.scopes.get(name)
        if budget is None:
            budget = self.scopes[name] = Budget()
        return budget

    def snapshot(self) -> dict[str, Any]:
        return {name: budget.snapshot() for name, budget in self.scopes.items()}

    @classmethod
    def restore(cls, doc: dict[str, Any], mono: float) -> Budgets:
        budgets = cls()
        for name, scope in doc.items():
            budgets.scopes[name] = Budget.restore(scope, mono)
        return budgets
