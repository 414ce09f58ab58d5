"""Time gating: recurring windows across time zones, midnight and DST; absolute windows;
duty cycles; the next change as APScheduler computes it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from edgeloop_filter.schedule import Gate, Schedule
from pydantic import ValidationError


def gate(doc: dict[str, Any]) -> Gate:
    return Gate(Schedule.model_validate(doc))


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_empty_schedule_is_always_open() -> None:
    # given
    g = gate({})
    # then
    assert g.is_open(utc(2026, 1, 5, 3, 0))
    assert g.next_change(utc(2026, 1, 5, 3, 0)) is None


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (utc(2026, 1, 5, 7, 59), False),  # Monday 08:59 in Berlin (UTC+1)
        (utc(2026, 1, 5, 8, 0), True),
        (utc(2026, 1, 5, 15, 59), True),
        (utc(2026, 1, 5, 16, 0), False),  # 17:00 Berlin: end is exclusive
        (utc(2026, 1, 10, 10, 0), False),  # Saturday
    ],
)
def test_weekday_window_in_a_time_zone(when: datetime, expected: bool) -> None:
    # given
    g = gate({"windows": [{"days": ["mon", "tue", "wed", "thu", "fri"], "start": "09:00", "end": "17:00",
                           "timezone": "Europe/Berlin"}]})  # fmt: skip
    # then
    assert g.is_open(when) is expected


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        (utc(2026, 1, 9, 21, 59), False),  # Friday 21:59 New York is 02:59 UTC Saturday; use UTC below
        (utc(2026, 1, 9, 22, 0), True),  # Friday 22:00
        (utc(2026, 1, 10, 1, 59), True),  # Saturday 01:59, still Friday's window
        (utc(2026, 1, 10, 2, 0), False),
        (utc(2026, 1, 10, 22, 30), False),  # Saturday night: the window starts on Fridays only
        (utc(2026, 1, 9, 1, 0), False),  # Friday 01:00 belongs to Thursday's (absent) window
    ],
)
def test_window_crossing_midnight_belongs_to_its_start_day(when: datetime, expected: bool) -> None:
    # given
    g = gate({"windows": [{"days": ["fri"], "start": "22:00", "end": "02:00"}]})
    # then
    assert g.is_open(when) is expected


def test_same_local_window_is_different_utc_in_different_zones() -> None:
    # given
    tokyo = gate({"windows": [{"start": "09:00", "end": "10:00", "timezone": "Asia/Tokyo"}]})
    la = gate({"windows": [{"start": "09:00", "end": "10:00", "timezone": "America/Los_Angeles"}]})
    # when
    at = utc(2026, 1, 5, 0, 30)  # 09:30 in Tokyo, 16:30 the day before in Los Angeles
    # then
    assert tokyo.is_open(at)
    assert not la.is_open(at)
    assert la.is_open(utc(2026, 1, 5, 17, 30))


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # Europe/Berlin springs forward on 2026-03-29 at 02:00 -> 03:00 (UTC+1 -> UTC+2)
        (utc(2026, 3, 28, 5, 30), True),  # 06:30 CET
        (utc(2026, 3, 29, 4, 30), True),  # 06:30 CEST
        (utc(2026, 3, 29, 5, 30), False),  # 07:30 CEST
        # and falls back on 2026-10-25 at 03:00 -> 02:00
        (utc(2026, 10, 25, 5, 30), True),  # 06:30 CET
        (utc(2026, 10, 24, 4, 30), True),  # 06:30 CEST
    ],
)
def test_windows_follow_local_time_across_dst(when: datetime, expected: bool) -> None:
    # given
    g = gate({"windows": [{"start": "06:00", "end": "07:00", "timezone": "Europe/Berlin"}]})
    # then
    assert g.is_open(when) is expected


def test_next_change_across_dst_is_local_time() -> None:
    # given
    g = gate({"windows": [{"start": "06:00", "end": "07:00", "timezone": "Europe/Berlin"}]})
    # when
    opening = g.next_change(utc(2026, 3, 28, 12, 0))
    # then: 06:00 CEST on the 29th is 04:00 UTC
    assert opening == utc(2026, 3, 29, 4, 0)
    assert g.next_change(opening) == utc(2026, 3, 29, 5, 0)


def test_next_change_of_a_midnight_window() -> None:
    # given
    g = gate({"windows": [{"days": ["fri"], "start": "22:00", "end": "02:00"}]})
    # when
    opening = g.next_change(utc(2026, 1, 5, 12, 0))
    # then
    assert opening == utc(2026, 1, 9, 22, 0)
    assert g.next_change(opening) == utc(2026, 1, 10, 2, 0)


def test_overlapping_windows_change_only_when_the_union_does() -> None:
    # given
    g = gate({"windows": [{"start": "08:00", "end": "12:00"}, {"start": "11:00", "end": "14:00"}]})
    # then
    assert g.next_change(utc(2026, 1, 5, 9, 0)) == utc(2026, 1, 5, 14, 0)


def test_absolute_window() -> None:
    # given
    g = gate({"absolute": [{"start": "2026-02-01T00:00:00+01:00", "end": "2026-02-02T00:00:00+01:00"}]})
    # then
    assert not g.is_open(utc(2026, 1, 31, 22, 59))
    assert g.is_open(utc(2026, 1, 31, 23, 0))
    assert not g.is_open(utc(2026, 2, 1, 23, 0))
    assert g.next_change(utc(2026, 1, 20, 0, 0)) == utc(2026, 1, 31, 23, 0)
    assert g.next_change(utc(2026, 3, 1, 0, 0)) is None


def test_duty_cycle() -> None:
    # given: 10 s on in every minute, anchored at the epoch
    g = gate({"duty_cycle": {"on_seconds": 10, "period_seconds": 60}})
    start = utc(2026, 1, 5, 12, 0)
    # then
    assert [g.is_open(start + timedelta(seconds=s)) for s in (0, 9, 10, 59, 60)] == [
        True, True, False, False, True]  # fmt: skip
    assert g.next_change(start) == start + timedelta(seconds=10)
    assert g.next_change(start + timedelta(seconds=10)) == start + timedelta(seconds=60)


def test_duty_cycle_inside_a_window() -> None:
    # given
    g = gate({"windows": [{"start": "12:00", "end": "13:00"}],
              "duty_cycle": {"on_seconds": 60, "period_seconds": 600}})  # fmt: skip
    # then
    assert g.is_open(utc(2026, 1, 5, 12, 0, 30))
    assert not g.is_open(utc(2026, 1, 5, 12, 1, 30))
    assert not g.is_open(utc(2026, 1, 5, 13, 0, 30))


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"windows": [{"start": "25:00", "end": "02:00"}]}, "HH:MM"),
        ({"windows": [{"start": "9:00", "end": "10:00"}]}, "HH:MM"),
        ({"windows": [{"start": "09:00", "end": "09:00"}]}, "empty"),
        ({"windows": [{"start": "09:00", "end": "10:00", "timezone": "Mars/Olympus"}]}, "unknown time zone"),
        ({"windows": [{"start": "09:00", "end": "10:00", "days": []}]}, "days"),
        ({"windows": [{"start": "09:00", "end": "10:00", "days": ["monday"]}]}, "days"),
        ({"absolute": [{"start": "2026-02-02T00:00:00Z", "end": "2026-02-01T00:00:00Z"}]}, "not after"),
        ({"absolute": [{"start": "2026-02-01T00:00:00", "end": "2026-02-02T00:00:00Z"}]}, "timezone"),
        ({"duty_cycle": {"on_seconds": 70, "period_seconds": 60}}, "longer than period"),
        ({"duty_cycle": {"on_seconds": 0, "period_seconds": 60}}, "on_seconds"),
        ({"duty_cycle": {"on_seconds": 1, "period_seconds": 0}}, "period_seconds"),
    ],
)
def test_bad_schedules_are_rejected(doc: dict[str, Any], where: str) -> None:
    # when
    with pytest.raises(ValidationError) as info:
        Schedule.model_validate(doc)
    # then
    assert where in str(info.value)


def test_a_window_starting_in_the_skipped_dst_hour_opens_when_clocks_jump() -> None:
    # given: 02:30-03:30 Berlin; on 2026-03-29 local time jumps from 02:00 to 03:00 (01:00 UTC)
    g = gate({"windows": [{"start": "02:30", "end": "03:30", "timezone": "Europe/Berlin"}]})
    # when
    changes = [g.next_change(utc(2026, 3, 28, 12, 0))]
    changes.append(g.next_change(changes[-1]))  # type: ignore[arg-type]
    # then: open 03:00-03:30 local that day, and the report agrees with the decision
    assert changes == [utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 1, 30)]
    assert g.is_open(utc(2026, 3, 29, 1, 15))
    assert not g.is_open(utc(2026, 3, 29, 0, 59))


def test_on_the_repeated_dst_hour_the_window_follows_the_local_clock() -> None:
    # given: on 2026-10-25 Berlin local time runs 02:00-03:00 twice (CEST, then CET)
    g = gate({"windows": [{"start": "02:30", "end": "03:30", "timezone": "Europe/Berlin"}]})
    # when
    t = utc(2026, 10, 24, 12, 0)
    changes = []
    for _ in range(4):
        t = g.next_change(t)  # type: ignore[assignment]
        changes.append(t)
    # then: 02:30-03:00 CEST, then 02:30-03:30 CET
    assert changes == [utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1, 0), utc(2026, 10, 25, 1, 30),
                       utc(2026, 10, 25, 2, 30)]  # fmt: skip
