"""The metrics facade modules call by name.

``metrics.counter("edgeloop.samples.captured").add(1, {"source": "cam0"})`` works at any
time: before telemetry is set up, while it runs and after it stopped (then it records nothing).
Each call resolves the instrument on the meter in force, so a module may keep the returned
object in an attribute. Instruments are created once per name and meter.

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


class Counter:
    """A monotonic count (samples captured, bytes uploaded, errors)."""

    def __init__(self, registry: Metrics, spec: _Spec) -> None:
        self._registry, self._spec = registry, spec

    def add(self, amount: float = 1, attributes: Attributes = None) -> None:
        self._registry._instrument(self._spec).add(amount, attributes)


class UpDownCounter:
    """A count that goes both ways (items in flight)."""

    def __init__(self, registry: Metrics, spec: _Spec) -> None:
        self._registry, self._spec = registry, spec

    def add(self, amount: float, attributes: Attributes = None) -> None:
        self._registry._instrument(self._spec).add(amount, attributes)


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


_FACADES: dict[Kind, type[Counter | UpDownCounter | Histogram | Gauge]] = {
    "counter": Counter,
    "updown": UpDownCounter,
    "histogram": Histogram,
    "gauge": Gauge,
}


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
            self._callbacks.pop(name, None)

    # -- wiring ----------------------------------------------------------------------------
    def bind(self, meter: Meter) -> None:
        """Record on ``meter`` from now on (the previous meter's instruments are let go)."""
        with self._lock:
            self._meter = meter
            self._bound = {}
            for spec in self._specs.values():
                if spec.kind.startswith("observed "):
                    self._create_observable(spec)

    def _facade(self, kind: Kind, name: str, unit: str, description: str, buckets: Any = None) -> Any:
        facade = self._facades.get(name)
        if facade is not None and self._specs[name].kind == kind:
            return facade  # the hot path: no lock
        spec = _Spec(kind, name, unit, description, buckets)
        with self._lock:
            self._check(spec)
            self._specs.setdefault(name, spec)
            facade = self._facades.setdefault(name, _FACADES[kind](self, self._specs[name]))
        return facade

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
        if spec.kind == "counter":
            return meter.create_counter(spec.name, unit=spec.unit, description=spec.description)
        if spec.kind == "updown":
            return meter.create_up_down_counter(spec.name, unit=spec.unit, description=spec.description)
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
