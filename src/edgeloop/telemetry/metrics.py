"""The metrics facade modules call by name.

``metrics.counter("edgeloop.samples.captured").add(1, {"source": "cam0"})`` works at any
time: before telemetry is set up, while it runs and after it stopped. Counters keep their sums
for the life of the process and report them whenever telemetry collects (so counts made
before setup are not lost); histograms and gauges record on the meter in force, nothing
before setup. A module may keep the returned object in an attribute.

Names are dotted OpenTelemetry names (``edgeloop.<area>.<what>``); the Prometheus endpoint
shows them with underscores, a unit suffix and ``_total`` on counters
(``edgeloop_samples_captured_total``). Keep attribute values few (a reason, a strategy, a
source id), never a sample id.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from opentelemetry.metrics import CallbackOptions, Meter, NoOpMeter, Observation

log = logging.getLogger(__name__)

Attributes = Mapping[str, str | int | float | bool] | None
#: What an observed metric's callback returns: one value, or values with their attributes.
Observed = float | int | Iterable[tuple[float | int, Mapping[str, str | int | float | bool]]]
Kind = Literal["counter", "updown", "histogram", "gauge"]
ObservedKind = Literal["gauge", "counter", "updown"]
_OBSERVED = {"gauge": "observed gauge", "counter": "observed counter", "updown": "observed updown"}

#: Bucket bounds for latencies in seconds (1 ms .. 2 min).
SECONDS_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0,
)  # fmt: skip
#: Bucket bounds for sizes in bytes (1 KiB .. 64 MiB).
BYTES_BUCKETS: tuple[float, ...] = tuple(float(1024 * 4**i) for i in range(9))


@dataclass(frozen=True)
class _Spec:
    kind: str  # a Kind, or "observed <ObservedKind>"
    name: str
    unit: str
    description: str
    buckets: tuple[float, ...] | None = None


class _Sum:
    """Running sums per attribute set, kept here and read at each collection.

    Adding is a dict update under a lock: a few times cheaper per sample than the SDK's
    synchronous counter, whose measurement path runs cold after a frame's worth of pixel work.
    """

    __slots__ = ("_lock", "_monotonic", "_name", "_values")

    def __init__(self, name: str, *, monotonic: bool) -> None:
        self._name, self._monotonic = name, monotonic
        self._lock = threading.Lock()
        self._values: dict[tuple[tuple[str, Any], ...], float] = {}

    def _add(self, amount: float, attributes: Attributes) -> None:
        if self._monotonic and amount < 0:
            log.warning("counter %s: ignoring a negative increment (%s)", self._name, amount)
            return
        key = tuple(attributes.items()) if attributes else ()
        with self._lock:
            self._values[key] = self._values.get(key, 0) + amount

    def observations(self) -> list[tuple[float, dict[str, Any]]]:
        """The sums so far (since the process started), one per attribute set."""
        with self._lock:
            items = list(self._values.items())
        merged: dict[frozenset[tuple[str, Any]], float] = {}
        for key, value in items:  # {"a": 1, "b": 2} and {"b": 2, "a": 1} are one series
            series = frozenset(key)
            merged[series] = merged.get(series, 0) + value
        return [(value, dict(series)) for series, value in merged.items()]


class Counter(_Sum):
    """A monotonic count (samples captured, bytes uploaded, errors)."""

    __slots__ = ()

    def add(self, amount: float = 1, attributes: Attributes = None) -> None:
        self._add(amount, attributes)


class UpDownCounter(_Sum):
    """A count that goes both ways (items in flight)."""

    __slots__ = ()

    def add(self, amount: float, attributes: Attributes = None) -> None:
        self._add(amount, attributes)


class Histogram:
    """A distribution (latencies in seconds, sizes in bytes)."""

    def __init__(self, registry: Metrics, spec: _Spec) -> None:
        self._registry, self._spec = registry, spec

    def record(self, value: float, attributes: Attributes = None) -> None:
        self._registry._instrument(self._spec).record(value, attributes)


class Gauge:
    """A current value set when it changes (window open = 1, drift PSI)."""

    def __init__(self, registry: Metrics, spec: _Spec) -> None:
        self._registry, self._spec = registry, spec

    def set(self, value: float, attributes: Attributes = None) -> None:
        self._registry._instrument(self._spec).set(value, attributes)


#: Kinds reported through an observable instrument (read at collection, never pushed).
_OBSERVABLE_KINDS = ("counter", "updown", *_OBSERVED.values())


class Metrics:
    """Instruments by name on the meter in force (``bind`` switches it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._meter: Meter = NoOpMeter("edgeloop")
        self._specs: dict[str, _Spec] = {}
        self._facades: dict[str, Any] = {}
        self._bound: dict[str, Any] = {}
        self._callbacks: dict[str, Callable[[], Observed]] = {}

    # -- what modules call -----------------------------------------------------------------
    def counter(self, name: str, *, unit: str = "1", description: str = "") -> Counter:
        """The counter called ``name`` (created on first use)."""
        facade: Counter = self._facade("counter", name, unit, description)
        return facade

    def updown_counter(self, name: str, *, unit: str = "1", description: str = "") -> UpDownCounter:
        facade: UpDownCounter = self._facade("updown", name, unit, description)
        return facade

    def histogram(
        self, name: str, *, unit: str = "s", description: str = "", buckets: Sequence[float] | None = None
    ) -> Histogram:
        """The histogram called ``name``; seconds by default, with buckets from 1 ms to 2 min
        (``unit="By"`` gets byte buckets from 1 KiB to 64 MiB)."""
        if buckets is None:
            buckets = BYTES_BUCKETS if unit == "By" else SECONDS_BUCKETS if unit == "s" else None
        facade: Histogram = self._facade(
            "histogram", name, unit, description, tuple(buckets) if buckets is not None else None
        )
        return facade

    def gauge(self, name: str, *, unit: str = "1", description: str = "") -> Gauge:
        facade: Gauge = self._facade("gauge", name, unit, description)
        return facade

    def observe(
        self,
        name: str,
        callback: Callable[[], Observed],
        *,
        kind: ObservedKind = "gauge",
        unit: str = "1",
        description: str = "",
    ) -> None:
        """Read ``callback`` at each collection (a scrape, an export): for values the module
        already keeps, e.g. outbox depth or volume use. ``kind="counter"`` for running totals.
        A later call with the same name replaces the callback; ``forget`` removes it. The
        callback runs on a telemetry thread: read, do not mutate; errors are logged."""
        spec = _Spec(_OBSERVED[kind], name, unit, description)
        with self._lock:
            self._check(spec)
            self._callbacks[name] = callback
            if name not in self._specs:
                self._specs[name] = spec
                self._create_observable(spec)

    def forget(self, name: str) -> None:
        """Stop reporting the observed metric ``name``."""
        with self._lock:
            spec = self._specs.get(name)
            if spec is not None and spec.kind.startswith("observed "):
                self._callbacks.pop(name, None)

    # -- wiring ----------------------------------------------------------------------------
    def bind(self, meter: Meter) -> None:
        """Record on ``meter`` from now on (the previous meter's instruments are let go)."""
        with self._lock:
            self._meter = meter
            self._bound = {}
            for spec in self._specs.values():
                if spec.kind in _OBSERVABLE_KINDS:
                    self._create_observable(spec)

    def _facade(self, kind: Kind, name: str, unit: str, description: str, buckets: Any = None) -> Any:
        facade = self._facades.get(name)
        if facade is not None and self._specs[name].kind == kind:
            return facade  # the hot path: no lock
        spec = _Spec(kind, name, unit, description, buckets)
        with self._lock:
            self._check(spec)
            if name not in self._facades:
                self._specs[name] = spec
                self._facades[name] = self._new_facade(spec)
            return self._facades[name]

    def _new_facade(self, spec: _Spec) -> Any:
        if spec.kind in ("counter", "updown"):
            sums = (Counter if spec.kind == "counter" else UpDownCounter)(
                spec.name, monotonic=spec.kind == "counter"
            )
            self._callbacks[spec.name] = sums.observations
            self._create_observable(spec)
            return sums
        return (Histogram if spec.kind == "histogram" else Gauge)(self, spec)

    def _check(self, spec: _Spec) -> None:
        known = self._specs.get(spec.name)
        if known is not None and known.kind != spec.kind:
            raise ValueError(f"metric {spec.name!r} is already a {known.kind}, not a {spec.kind}")

    def _instrument(self, spec: _Spec) -> Any:
        instrument = self._bound.get(spec.name)
        if instrument is None:
            with self._lock:
                instrument = self._bound.get(spec.name)
                if instrument is None:
                    instrument = self._create(spec)
                    self._bound[spec.name] = instrument
        return instrument

    def _create(self, spec: _Spec) -> Any:
        meter = self._meter
        if spec.kind == "histogram":
            return meter.create_histogram(
                spec.name,
                unit=spec.unit,
                description=spec.description,
                explicit_bucket_boundaries_advisory=spec.buckets,
            )
        return meter.create_gauge(spec.name, unit=spec.unit, description=spec.description)

    def _create_observable(self, spec: _Spec) -> None:
        callback = self._observer(spec.name)
        create = {
            "counter": self._meter.create_observable_counter,
            "updown": self._meter.create_observable_up_down_counter,
            "observed gauge": self._meter.create_observable_gauge,
            "observed counter": self._meter.create_observable_counter,
            "observed updown": self._meter.create_observable_up_down_counter,
        }[spec.kind]
        create(spec.name, callbacks=[callback], unit=spec.unit, description=spec.description)

    def _observer(self, name: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
        def _observe(_options: CallbackOptions) -> Iterable[Observation]:
            callback = self._callbacks.get(name)
            if callback is None:
                return []
            try:
                result = callback()
                if isinstance(result, int | float):
                    return [Observation(result)]
                return [Observation(value, dict(attributes)) for value, attributes in result]
            except Exception:
                log.warning("metric %s: its callback failed", name, exc_info=True)
                return []

        return _observe
