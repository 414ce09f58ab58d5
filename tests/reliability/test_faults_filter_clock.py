"""The filter while its wall clock jumps forwards and backwards (FakeClock).

Predictions arrive over two real hours while the wall clock is yanked back an hour, forward a
day, back a week. The counters add up (every prediction seen is selected or dropped with a
reason: seen = selected + dropped-by-reason, nothing else), and the rate budget holds: within
any real (monotonic) hour no more are selected than the per-hour limit allows, however the wall
clock moves, and a backward jump never refills it.
"""

from __future__ import annotations

import random
from datetime import timedelta

from tests.filter_helpers import prediction
from tests.reliability.conftest import AreaLedger
from tests.unit.test_filter_module import Running, wait_for

PER_HOUR = 20
POLICY = {
    "version": "soak-1",
    "strategies": [
        {
            "name": "low",
            "rules": [{"type": "confidence_band", "bands": [[0, 0.6]]}],
            "limits": {"per_hour": PER_HOUR},
        }
    ],
    "audit": {"share": 0},  # audit picks are outside budgets: off, so every selection is budgeted
}
JUMPS = {30: timedelta(hours=-1), 60: timedelta(days=1), 90: timedelta(days=-7)}  # at minute -> jump


def test_counters_add_up_and_the_hourly_budget_holds_while_the_wall_clock_jumps(ledger: AreaLedger) -> None:
    rng = random.Random(11)
    sent = 0
    selected_at: list[float] = []  # monotonic minute of each selection
    with Running({"policy": POLICY, "summary_interval_s": 600}) as run:
        start = run.clock.monotonic()
        # when: a prediction a minute for two hours, wall clock jumping at minutes 30, 60, 90
        for minute in range(120):
            if minute in JUMPS:
                run.clock.set_wall(run.clock.now() + JUMPS[minute])
            batch = [prediction(sent + k, confidence=rng.choice([0.3, 0.5, 0.9])) for k in range(3)]
            before = len(run.selected())
            run.hub.push_input("predictions", batch)
            sent += len(batch)
            wait_for(lambda n=sent: run.stats()["seen"] == n)
            selected_at += [run.clock.monotonic() - start] * (len(run.selected()) - before)
            run.clock.advance(60)
        stats = run.stats()
    selected = sum(stats["selected_by_strategy"].values())
    dropped = sum(stats["dropped_by_reason"].values())
    ledger.record(faults=len(JUMPS), inputs=sent, lost=sent - selected - dropped, note="filter FakeClock")
    # then: every prediction is accounted for
    assert stats["seen"] == sent
    assert selected + dropped == sent, stats
    assert selected == len(selected_at)
    # and: no real hour holds more selections than the hourly budget (two buckets may meet)
    for t in selected_at:
        in_hour = sum(1 for u in selected_at if t <= u < t + 3600)
        assert in_hour <= 2 * PER_HOUR
    # and: a backward jump did not hand out a fresh budget: over two real hours at most two
    # hours' worth (plus the forward-jump bucket) were selected
    assert selected <= 3 * PER_HOUR
    assert selected >= PER_HOUR, "the budget never opened"
