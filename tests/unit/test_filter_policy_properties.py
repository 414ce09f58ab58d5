"""Property-based: no valid policy crashes the engine; invalid ones are rejected with a path."""

from __future__ import annotations

import copy
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pytest
from edgeloop_filter.engine import DROP_REASONS, Engine
from edgeloop_filter.policy import parse_policy
from edgeloop_filter.schedule import Gate, Schedule
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeloop.errors import ConfigError
from tests.filter_helpers import prediction

LABELS = ["cat", "dog", "fox"]
ZONES = ["UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata", "Australia/Lord_Howe"]
DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
unit = st.floats(0.0, 1.0, allow_nan=False)
hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.integers(0, 59))


@st.composite
def band(draw: st.DrawFn) -> list[float]:
    low = draw(st.floats(0.0, 0.99, allow_nan=False))
    high = draw(st.floats(low, 1.0, allow_nan=False).filter(lambda h: h > low))
    return [low, high]


leaf_rules = st.one_of(
    st.fixed_dictionaries(
        {"type": st.just("confidence_band"), "bands": st.lists(band(), min_size=1, max_size=3)},
        optional={
            "per_class": st.dictionaries(st.sampled_from(LABELS), st.lists(band(), min_size=1, max_size=2))
        },
    ),
    st.fixed_dictionaries({"type": st.just("margin"), "below": st.floats(0.001, 1.0)}),
    st.fixed_dictionaries({"type": st.just("entropy"), "above": st.floats(0.0, 3.0)}),
    st.fixed_dictionaries(
        {"type": st.just("classes"), "labels": st.lists(st.sampled_from(LABELS), min_size=1)}
    ),
    st.fixed_dictionaries({"type": st.just("random"), "p": unit}, optional={"seed": st.integers(0, 2**32)}),
    st.fixed_dictionaries({"type": st.just("every_nth"), "n": st.integers(1, 5)}),
)
rules = st.recursive(
    leaf_rules,
    lambda children: st.one_of(
        st.fixed_dictionaries(
            {"type": st.sampled_from(["all", "any"]), "rules": st.lists(children, min_size=1, max_size=3)}
        ),
        st.fixed_dictionaries({"type": st.just("not"), "rule": children}),
    ),
    max_leaves=5,
)
limits = st.fixed_dictionaries(
    {},
    optional={k: st.integers(0, 5) for k in ("per_minute", "per_hour", "per_day")}
    | {"bytes_per_day": st.integers(0, 5000)},
)


@st.composite
def window(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(hhmm)
    end = draw(hhmm.filter(lambda e: e != start))
    days = draw(st.lists(st.sampled_from(DAYS), min_size=1, unique=True))
    return {"days": days, "start": start, "end": end, "timezone": draw(st.sampled_from(ZONES))}


@st.composite
def absolute(draw: st.DrawFn) -> dict[str, Any]:
    start = draw(st.datetimes(datetime(2025, 1, 1), datetime(2027, 1, 1), timezones=st.just(UTC)))
    length = draw(st.integers(1, 10 * 86400))
    return {"start": start.isoformat(), "end": (start + timedelta(seconds=length)).isoformat()}


@st.composite
def duty(draw: st.DrawFn) -> dict[str, Any]:
    period = draw(st.floats(1.0, 86400.0))
    return {"on_seconds": draw(st.floats(0.5, 1.0)) * period, "period_seconds": period}


schedules = st.fixed_dictionaries(
    {},
    optional={
        "windows": st.lists(window(), max_size=2),
        "absolute": st.lists(absolute(), max_size=2),
        "duty_cycle": duty(),
    },
)


@st.composite
def policies(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.from_regex(r"[a-z][a-z0-9_-]{0,8}", fullmatch=True), unique=True, max_size=4))
    strategies = [
        draw(
            st.fixed_dictionaries(
                {"name": st.just(name), "rules": st.lists(rules, min_size=1, max_size=2)},
                optional={
                    "limits": limits,
                    "schedule": schedules,
                    "tags": st.lists(st.sampled_from(["a", "b"])),
                    "priority": st.integers(-5, 5),
                },
            )
        )
        for name in names
    ]
    doc: dict[str, Any] = {"version": draw(st.text(min_size=1, max_size=5)), "strategies": strategies}
    optional = {
        "limits": limits,
        "schedule": schedules,
        "dedup": st.fixed_dictionaries(
            {}, optional={"max_distance": st.integers(0, 64), "window_seconds": st.floats(1, 1e5)}
        ),
        "drift": st.fixed_dictionaries(
            {},
            optional={
                "window": st.integers(10, 50),
                "reference_samples": st.integers(10, 50),
                "boost": st.fixed_dictionaries({"psi_above": st.floats(0.01, 2), "factor": st.floats(1, 5)}),
            },
        ),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            doc[key] = draw(strategy)
    return doc


@st.composite
def predictions(draw: st.DrawFn, i: int) -> Any:
    status: Literal["ok", "error"] = draw(st.sampled_from(["ok", "ok", "ok", "error"]))
    return prediction(
        i,
        status=status,
        label=draw(st.none() | st.sampled_from(LABELS)) if status == "ok" else None,
        confidence=draw(st.none() | unit) if status == "ok" else None,
        margin=draw(st.none() | unit),
        scores=draw(st.none() | st.lists(unit, min_size=2, max_size=4)),
        dhash=draw(st.none() | st.from_regex(r"[0-9a-f]{16}", fullmatch=True)),
        source=draw(st.sampled_from(["a", "b"])),
        size=draw(st.none() | st.integers(0, 3000)),
        model_version=draw(st.sampled_from(["1", "2"])),
    )


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(doc=policies(), data=st.data())
def test_no_valid_policy_crashes_the_engine(doc: dict[str, Any], data: st.DataObject) -> None:
    # given
    policy = parse_policy(json.loads(json.dumps(doc)))
    eng = Engine(policy, rng=random.Random(0))
    now = data.draw(st.datetimes(datetime(2025, 6, 1), datetime(2027, 6, 1), timezones=st.just(UTC)))
    mono = 100.0
    # when: a stream with wall-clock jumps both ways
    for i in range(data.draw(st.integers(1, 25))):
        step = data.draw(st.sampled_from([0.0, 1.0, 61.0, 3601.0, -3600.0, 86400.0, -86400.0 * 3]))
        now += timedelta(seconds=step)
        mono += abs(step)
        decision = eng.decide(data.draw(predictions(i)), now, mono)
        # then
        assert (decision.selected is None) != (decision.dropped is None)
        assert decision.dropped is None or decision.dropped in DROP_REASONS
    gates = eng.gates(now)
    saved = json.loads(json.dumps(eng.snapshot()))
    Engine(policy).restore(saved, mono=0.0)
    assert set(gates) <= {"policy", *(s.name for s in policy.strategies)}
    assert eng.seen == sum(eng.selected.values()) + sum(eng.dropped.values())


def _set(doc: dict[str, Any], path: list[Any], value: Any) -> None:
    target: Any = doc
    for key in path[:-1]:
        target = target.setdefault(key, {}) if isinstance(key, str) else target[key]
    target[path[-1]] = value


def one(rule: dict[str, Any], **extra: Any) -> list[dict[str, Any]]:
    return [{"name": "x", "rules": [rule], **extra}]


MUTATIONS: list[tuple[list[Any], Any, str]] = [
    (["strategies"], one({"type": "confidence_band", "bands": [[0.8, 0.2]]}),
     "policy.strategies.0.rules.0"),
    (["strategies"], one({"type": "confidence_band", "bands": []}),
     "policy.strategies.0.rules.0.confidence_band.bands"),
    (["strategies"], one({"type": "margin", "below": "low"}), "policy.strategies.0.rules.0.margin.below"),
    (["strategies"], one({"type": "fuzzy"}), "policy.strategies.0.rules.0"),
    (["strategies"], one({"type": "random", "p": 0.1}, extra=1), "policy.strategies.0.extra"),
    (["strategies"], [{"name": "x y", "rules": [{"type": "random", "p": 0.1}]}], "policy.strategies.0.name"),
    (["strategies"], one({"type": "random", "p": 0.1}) * 2, "policy"),
    (["limits", "per_day"], -1, "policy.limits.per_day"),
    (["limits", "per_week"], 3, "policy.limits.per_week"),
    (["schedule", "windows"], [{"start": "10:00", "end": "11:00", "timezone": "Nowhere/Land"}],
     "policy.schedule.windows.0.timezone"),
    (["schedule", "windows"], [{"start": "10:00", "end": "10:00"}], "policy.schedule.windows.0"),
    (["schedule", "windows"], [{"start": "10:60", "end": "11:00"}], "policy.schedule.windows.0.start"),
    (["schedule", "duty_cycle"], {"on_seconds": 61, "period_seconds": 60}, "policy.schedule.duty_cycle"),
    (["schedule", "absolute"], [{"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}],
     "policy.schedule.absolute.0"),
    (["dedup", "max_distance"], 65, "policy.dedup.max_distance"),
    (["drift", "reference"], {"confidence": [1.0, 1.0, 1.0]}, "policy.drift"),
    (["version"], "", "policy.version"),
]  # fmt: skip


@SETTINGS
@given(doc=policies(), mutation=st.sampled_from(MUTATIONS))
def test_invalid_policies_are_rejected_with_the_path(doc: dict[str, Any], mutation: tuple[Any, ...]) -> None:
    # given
    path, value, where = mutation
    bad = copy.deepcopy(doc)
    _set(bad, path, value)
    # when
    with pytest.raises(ConfigError) as info:
        parse_policy(bad)
    # then
    assert where in info.value.reason


@SETTINGS
@given(
    doc=schedules,
    now=st.datetimes(datetime(2025, 6, 1), datetime(2027, 6, 1), timezones=st.just(UTC)),
    probes=st.lists(st.floats(0.0, 1.0, exclude_min=True, exclude_max=True), max_size=8),
)
def test_the_reported_next_change_agrees_with_the_decision(
    doc: dict[str, Any], now: datetime, probes: list[float]
) -> None:
    # given
    gate = Gate(Schedule.model_validate(doc))
    state = gate.is_open(now)
    # when
    change = gate.next_change(now)
    # then: the state holds until the change, and flips at it
    if change is None:
        return
    assert change > now
    assert gate.is_open(change) != state
    for fraction in probes:
        probe = now + (change - now) * fraction
        if probe < change:  # timedelta * float rounds to the microsecond
            assert gate.is_open(probe) == state
