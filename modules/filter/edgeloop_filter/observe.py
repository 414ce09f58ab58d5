"""The filter's traces and metrics: one ``select`` span per prediction, counts by strategy and
by drop reason, capture-to-selection latency, window and drift gauges (see docs/observability.md)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import datetime
from typing import TYPE_CHECKING

from edgeloop import telemetry
from edgeloop.contracts import Prediction, SelectedSample
from edgeloop.telemetry import Stage, names

if TYPE_CHECKING:
    from edgeloop_filter.engine import Decision, Engine

_selected = telemetry.metrics.counter(names.M_SELECTED, description="Samples selected, by strategy.")
_dropped = telemetry.metrics.counter(names.M_DROPPED, description="Samples not kept, by module and reason.")
_latency = telemetry.metrics.histogram(
    names.M_CAPTURE_TO_SELECTION, description="From capture to the filter's decision, selected samples."
)
_window = telemetry.metrics.gauge(names.M_WINDOW_OPEN, description="1 while a time window is open.")
_psi = telemetry.metrics.gauge(names.M_DRIFT_PSI, description="Population stability index of the window.")


def select_span(prediction: Prediction) -> AbstractContextManager[Stage]:
    """The ``select`` span of one prediction, a child of the prediction's trace."""
    return telemetry.stage_span(
        names.SPAN_SELECT,
        prediction.traceparent or prediction.frame.traceparent,
        {names.ATTR_SAMPLE_ID: prediction.sample_id},
    )


def record(stage: Stage, prediction: Prediction, decision: Decision, now: datetime) -> SelectedSample | None:
    """Put the decision on the span and the counters; the selected sample carries the span's
    ``traceparent`` on to the uploader."""
    chosen = decision.selected
    if chosen is None:
        reason = decision.dropped or "unknown"
        stage.set(names.ATTR_SELECTED, False)
        stage.set(names.ATTR_REASON, reason)
        _dropped.add(1, {"module": "filter", "reason": reason})
        return None
    stage.set(names.ATTR_SELECTED, True)
    stage.set(names.ATTR_STRATEGY, chosen.strategy)
    _selected.add(1, {"strategy": chosen.strategy})
    _latency.record(max(0.0, (now - prediction.frame.captured_at).total_seconds()))
    if stage.traceparent and stage.traceparent != chosen.traceparent:
        chosen = chosen.model_copy(update={"traceparent": stage.traceparent})
    return chosen


def publish_gauges(engine: Engine, now: datetime) -> None:
    """Window states and drift PSI, set from the runtime thread (where the engine lives)."""
    for name, is_open in engine.gate_states(now).items():
        _window.set(1 if is_open else 0, {"window": name})
    for feature, value in engine.drift.psi().items():
        _psi.set(value, {"feature": feature.removeprefix("psi_")})
