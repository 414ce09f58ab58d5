"""Time gating: recurring windows (days of week, HH:MM-HH:MM in an IANA time zone, crossing
midnight allowed), absolute windows and duty cycles.

The decision for a sample (``Gate.is_open``) reads the wall time it is given, so tests steer it
with an injected clock. APScheduler triggers compute when the gate next opens or closes
(``Gate.next_change``), which the module reports and schedules its transition reports by.
A schedule with no windows is open at all times; with windows it is open inside any of them;
a duty cycle further limits it to the first ``on_seconds`` of every ``period_seconds``.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.date import DateTrigger
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def zone(name: str) -> tzinfo:
    """The IANA time zone ``name``; raises ValueError naming what is accepted."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}: use an IANA name such as 'Europe/Berlin'") from exc


def _hhmm(value: str) -> time:
    match = _HHMM.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a time of day: use HH:MM from 00:00 to 23:59")
    return time(int(match.group(1)), int(match.group(2)))


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RecurringWindow(_Model):
    """Open from ``start`` to ``end`` local time on the given days; ``end`` at or before
    ``start`` means the window crosses midnight and ends the next day."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS), min_length=1, description="Days the window starts on."
    )
    start: str = Field(description="Local opening time, HH:MM.")
    end: str = Field(description="Local closing time, HH:MM (exclusive); before start: next day.")
    timezone: str = Field(default="UTC", description="IANA time zone of start and end.")

    @field_validator("start", "end")
    @classmethod
    def _time_of_day(cls, value: str) -> str:
        _hhmm(value)
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        zone(value)
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> RecurringWindow:
        if self.start == self.end:
            raise ValueError(
                f"start and end are both {self.start}: the window would be empty "
                "(for all day, leave the schedule without windows)"
            )
        return self


class AbsoluteWindow(_Model):
    """Open between two instants (with offsets), e.g. a campaign."""

    start: AwareDatetime = Field(description="Opening instant, ISO 8601 with offset.")
    end: AwareDatetime = Field(description="Closing instant (exclusive), after start.")

    @model_validator(mode="after")
    def _ordered(self) -> AbsoluteWindow:
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start {self.start.isoformat()}")
        return self


class DutyCycle(_Model):
    """On for the first ``on_seconds`` of every ``period_seconds`` counted from ``anchor``."""

    on_seconds: float = Field(gt=0, description="Seconds open in each period.")
    period_seconds: float = Field(ge=1, description="Length of one period in seconds (at least 1).")
    anchor: AwareDatetime = Field(default=EPOCH, description="An instant at which a period starts.")

    @model_validator(mode="after")
    def _possible(self) -> DutyCycle:
        if self.on_seconds > self.period_seconds:
            raise ValueError(
                f"on_seconds {self.on_seconds} is longer than period_seconds {self.period_seconds}: "
                "use on_seconds <= period_seconds"
            )
        return self


class Schedule(_Model):
    """When a strategy (or the whole policy) may select."""

    windows: list[RecurringWindow] = Field(default_factory=list, description="Recurring windows.")
    absolute: list[AbsoluteWindow] = Field(default_factory=list, description="Absolute windows.")
    duty_cycle: DutyCycle | None = Field(default=None, description="On/off cycle inside the windows.")

    @property
    def always_open(self) -> bool:
        return not self.windows and not self.absolute and self.duty_cycle is None


class _Recurring:
    """A compiled recurring window."""

    __slots__ = ("crosses", "days", "end", "start", "tz")

    def __init__(self, window: RecurringWindow) -> None:
        self.tz = zone(window.timezone)
        self.days = frozenset(WEEKDAYS.index(d) for d in window.days)
        self.start = _hhmm(window.start)
        self.end = _hhmm(window.end)
        self.crosses = self.end <= self.start

    def contains(self, now: datetime) -> bool:
        local = now.astimezone(self.tz)
        t = local.time().replace(tzinfo=None)
        weekday = local.weekday()
        if not self.crosses:
            return weekday in self.days and self.start <= t < self.end
        if t >= self.start:
            return weekday in self.days
        return t < self.end and (weekday - 1) % 7 in self.days

    def triggers(self) -> list[CronTrigger]:
        days = sorted(self.days)
        end_days = [(d + 1) % 7 for d in days] if self.crosses else days
        return [
            CronTrigger(
                day_of_week=",".join(WEEKDAYS[d] for d in sorted(set(ds))),
                hour=t.hour,
                minute=t.minute,
                timezone=self.tz,
            )
            for ds, t in ((days, self.start), (end_days, self.end))
        ]


class Gate:
    """A compiled schedule: ``is_open(now)`` for decisions, ``next_change(now)`` for reports."""

    def __init__(self, schedule: Schedule) -> None:
        self.schedule = schedule
        self.always_open = schedule.always_open
        self._recurring = [_Recurring(w) for w in schedule.windows]
        self._absolute = [(w.start, w.end) for w in schedule.absolute]
        self._windowed = bool(self._recurring or self._absolute)
        duty = schedule.duty_cycle
        self._duty = (duty.anchor.timestamp(), duty.on_seconds, duty.period_seconds) if duty else None

    def is_open(self, now: datetime) -> bool:
        if self.always_open:
            return True
        return self._duty_on(now) and self._windows_open(now)

    def _duty_on(self, now: datetime) -> bool:
        if self._duty is None:
            return True
        anchor, on, period = self._duty
        return (now.timestamp() - anchor) % period < on

    def _windows_open(self, now: datetime) -> bool:
        if not self._windowed:
            return True
        if any(start <= now < end for start, end in self._absolute):
            return True
        return any(w.contains(now) for w in self._recurring)

    def _triggers(self) -> list[CronTrigger | DateTrigger]:
        triggers: list[CronTrigger | DateTrigger] = []
        for window in self._recurring:
            triggers.extend(window.triggers())
        for start, end in self._absolute:
            triggers.extend([DateTrigger(run_date=start), DateTrigger(run_date=end)])
        return triggers

    def _offset_changes(self, start: datetime, end: datetime) -> list[datetime]:
        """Instants in (start, end] where a window's zone changes its UTC offset (DST), to
        the second. Cron triggers skip local times that do not exist, but a window whose
        start falls in the skipped hour still opens when the clocks jump."""
        found = []
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        for tz in {w.tz for w in self._recurring}:
            if start.astimezone(tz).utcoffset() == end.astimezone(tz).utcoffset():
                continue
            lo, hi = start, end
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == start.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi.replace(microsecond=0))
        return found

    def _next_window_change(self, now: datetime, limit: datetime) -> datetime | None:
        """When the windows (recurring and absolute together) next open or close after
        ``now``, from the APScheduler triggers of their edges; None past ``limit``."""
        if not self._windowed:
            return None
        state = self._windows_open(now)
        cursor = now + timedelta(microseconds=1)
        triggers = self._triggers()
        for _ in range(1000):
            # A DateTrigger answers its date even when it is past: keep only what is ahead.
            fire_times = (trigger.get_next_fire_time(None, cursor) for trigger in triggers)
            upcoming = [t.astimezone(UTC) for t in fire_times if t is not None and t >= cursor]
            if not upcoming:
                return None
            candidate = min([*upcoming, *self._offset_changes(cursor, min(upcoming))])
            if candidate > limit:
                return None
            if self._windows_open(candidate) != state:
                return candidate
            cursor = candidate + timedelta(microseconds=1)
        return None

    def _next_duty_change(self, now: datetime) -> datetime | None:
        """When the duty cycle next switches on or off after ``now``."""
        if self._duty is None:
            return None
        anchor, on, period = self._duty
        elapsed = now.timestamp() - anchor
        period_start = anchor + math.floor(elapsed / period) * period
        state = self._duty_on(now)
        target = period_start + on if state else period_start + period
        candidate = datetime.fromtimestamp(target, UTC)
        # Microsecond rounding may land just before the switch: step onto it.
        for _ in range(10):
            if candidate > now and self._duty_on(candidate) != state:
                return candidate
            candidate += timedelta(microseconds=1)
        return candidate

    def next_change(self, now: datetime, *, horizon: timedelta = timedelta(days=8)) -> datetime | None:
        """The first instant after ``now`` at which ``is_open`` flips, within ``horizon`` (or
        the last absolute window); None when it stays as it is.

        While the windows are closed the duty cycle does not matter, so the search jumps from
        window edge to window edge and looks at duty-cycle edges only inside windows.
        """
        if self.always_open:
            return None
        state = self.is_open(now)
        limit = max([now + horizon, *(end for _, end in self._absolute)])
        cursor = now
        for _ in range(1000):
            candidates = []
            window_change = self._next_window_change(cursor, limit)
            if window_change is not None:
                candidates.append(window_change)
            if self._windows_open(cursor):
                duty_change = self._next_duty_change(cursor)
                if duty_change is not None:
                    candidates.append(duty_change)
            if not candidates:
                return None
            cursor = min(candidates)
            if cursor > limit:
                return None
            if self.is_open(cursor) != state:
                return cursor
        return None
