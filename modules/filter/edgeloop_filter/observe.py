"""The filter's traces and metrics: one ``select`` span per prediction (recorded per batch),
counts by strategy and by drop reason, capture-to-selection latency, window and drift gauges
(see docs/observability.md)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from edgeloop import telemetry
from edgeloop.contracts import Prediction, SelectedSample
from edgeloop.telemetry import names

if TYPE_CHECKING:
    from edgeloop_filter.engine import Decision, Engine

_selected = telemetry.metrics.counter(names.M_SELECTED, description="Samples selected, by strategy.")
_dropped = telemetry.metrics.counter(names.M_DROPPED, description="Samples not kept, by module and reason.")
_latency = telemetry.metrics.histogram(
    names.M_CAPTURE_TO_SELECTION, description="From capture to the filter's decision, selected samples."
)
_window = telemetry.metrics.gauge(names.M_WINDOW_OPEN, description="1 while a time window is open.")
_psi = telemetry.metrics.gauge(names.M_DRIFT_PSI, description="Population stability index of the window.")


def record_batch(
    predictions: Sequence[Prediction],
    decisions: Sequence[Decision],
    now: datetime,
    *,
    start_ns: int,
    end_ns: int,
) -> list[SelectedSample]:
    """The decisions of one batch: a finished ``select`` span per prediction (the batch's
    time), the counters added once per batch; the selected samples, each carrying its span's
    ``traceparent`` on to the uploader."""
    chosen: list[SelectedSample] = []
    dropped: Counter[str] = Counter()
    for prediction, decision in zip(predictions, decisions, strict=True):
        sample = decision.selected
        attributes: dict[str, str | bool]
        if sample is None:
            reason = decision.dropped or "unknown"
            dropped[reason] += 1
            attributes = {names.ATTR_SAMPLE_ID: prediction.sample_id, names.ATTR_SELECTED: False,
                          names.ATTR_REASON: reason}  # fmt: skip
        else:
            attributes = {names.ATTR_SAMPLE_ID: prediction.sample_id, names.ATTR_SELECTED: True,
                          names.ATTR_STRATEGY: sample.strategy}  # fmt: skip
        traceparent = telemetry.record_stage(
            names.SPAN_SELECT,
            prediction.traceparent or prediction.frame.traceparent,
            start_ns=start_ns,
            end_ns=end_ns,
            attributes=attributes,
        )
        if sample is None:
            continue
        _selected.add(1, {"strategy": sample.strategy})
        _latency.record(max(0.0, (now - prediction.frame.captured_at).total_seconds()))
        if traceparent and traceparent != sample.traceparent:
            sample = sample.model_copy(update={"traceparent": traceparent})
        chosen.append(sample)
    for reason, count in dropped.items():
        _dropped.add(count, {"module": "filter", "reason": reason})
    return chosen


def publish_gauges(engine: Engine, now: datetime) -> None:
    """Window states and drift PSI, set from the runtime thread (where the engine lives)."""
    for name, is_open in engine.gate_states(now).items():
        _window.set(1 if is_open else 0, {"window": name})
    for feature, value in engine.drift.psi().items():
        _psi.set(value, {"feature": feature.removeprefix("psi_")})
