"""The moving averages capture's sender and inference's batcher decide their waits on."""

from __future__ import annotations

import pytest

from edgeloop.runtime import pacing
from edgeloop.runtime.pacing import ArrivalGap, MovingAverage


def test_a_moving_average_starts_at_its_first_sample_and_weighs_the_newest_by_its_smoothing() -> None:
    average = MovingAverage(smoothing=0.25)
    assert average.value is None
    average.add(4.0)
    assert average.value == 4.0
    average.add(8.0)
    assert average.value == pytest.approx(5.0)


def test_the_arrival_gap_needs_two_arrivals_and_caps_an_idle_spell(monkeypatch: pytest.MonkeyPatch) -> None:
    now = [100.0]
    monkeypatch.setattr(pacing.time, "monotonic", lambda: now[0])
    gap = ArrivalGap(smoothing=0.5, cap_s=1.0)
    gap.arrived()
    assert gap.value is None
    now[0] += 0.2
    gap.arrived()
    assert gap.value == pytest.approx(0.2)
    now[0] += 60.0  # an idle minute counts as the cap, not as a minute
    gap.arrived()
    assert gap.value == pytest.approx(0.6)
