"""What sensor readers produce, and the parsing they share."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


class ReaderSettings(Protocol):
    """The sensor settings a reader looks at."""

    @property
    def timestamp_field(self) -> str | None: ...

    @property
    def fields(self) -> list[str] | None: ...


@dataclass(frozen=True)
class Reading:
    """One row: its line number, recorded time (seconds, None when absent) and values."""

    line: int
    timestamp: float | None
    names: tuple[str, ...]
    values: tuple[float, ...]


@dataclass(frozen=True)
class Skipped:
    """A row that could not be used, and why."""

    line: int
    reason: str


def parse_timestamp(value: Any) -> float:
    """Seconds from a number (epoch or relative) or an ISO 8601 string.

    Raises:
        ValueError: neither.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip()
    try:
        return float(text)
    except ValueError:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def to_reading(line: int, row: Mapping[str, Any], settings: ReaderSettings) -> Reading | Skipped:
    """A reading from one parsed row, or why it is skipped."""
    ts_field = settings.timestamp_field
    timestamp = None
    if ts_field and ts_field in row and row[ts_field] not in (None, ""):
        try:
            timestamp = parse_timestamp(row[ts_field])
        except ValueError:
            return Skipped(line, f"line {line}: {ts_field} = {row[ts_field]!r} is not a time")
    names = settings.fields or [name for name in row if name != ts_field]
    values = []
    for name in names:
        if name not in row:
            return Skipped(line, f"line {line}: no field {name!r}")
        try:
            value = float(row[name])
        except (TypeError, ValueError):
            if settings.fields:
                return Skipped(line, f"line {line}: {name} = {row[name]!r} is not a number")
            continue
        if not math.isfinite(value):
            return Skipped(line, f"line {line}: {name} = {row[name]!r} is not finite")
        values.append((name, value))
    if not values:
        return Skipped(line, f"line {line}: no numeric field")
    return Reading(
        line=line,
        timestamp=timestamp,
        names=tuple(n for n, _ in values),
        values=tuple(v for _, v in values),
    )
