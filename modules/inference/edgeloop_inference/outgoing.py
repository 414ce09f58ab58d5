"""From prediction records to what leaves the module: ``edgeloop.predictions/1`` messages
validated in one pydantic call each, and single ``Prediction`` objects for HTTP callers.

A record is the plain dict of one prediction's fields (``scoring.prediction_fields``,
``scoring.error_fields``); the output thread holds records, not contract objects, so that each
prediction is validated once, in the message it leaves in. The fields every record of a message
shares go to its header, as ``PredictionBatch.of`` does. A record that fails its contract (a
model that emitted NaN, say) is replaced by an error record naming the field, so its sample is
still accounted for and its message mates still go out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from edgeloop.contracts import Prediction, PredictionBatch
from edgeloop.contracts.messages import SHARED_PREDICTION_FIELDS
from edgeloop.runtime.codec import first_error
from edgeloop_inference.scoring import error_fields

#: One prediction's fields, as ``Prediction`` takes them.
Record = dict[str, Any]


def batch_of(records: Sequence[Record]) -> tuple[PredictionBatch, list[Record], list[str]]:
    """One message holding ``records`` (validated once); the records it holds (``records``
    themselves when all were valid, else with error records in place of the invalid ones); and
    why each replaced record was replaced.

    Raises:
        ValueError: no records.
    """
    if not records:
        raise ValueError("a prediction batch holds at least one prediction")
    try:
        return _validated(records), list(records), []
    except ValidationError:
        pass
    checked, problems = [], []
    for record in records:
        record, problem = checked_record(record)
        checked.append(record)
        if problem is not None:
            problems.append(problem)
    return _validated(checked), checked, problems


def prediction_of(record: Record) -> tuple[Prediction, str | None]:
    """One ``Prediction`` (for an HTTP caller), and why the record was replaced, if it was."""
    try:
        return Prediction.model_validate(record), None
    except ValidationError:
        pass
    record, problem = checked_record(record)
    return Prediction.model_validate(record), problem


def checked_record(record: Record) -> tuple[Record, str | None]:
    """``record`` when it is a valid prediction, else an error record for its frame saying which
    field failed, and that reason."""
    try:
        Prediction.model_validate(record)
    except ValidationError as exc:
        reason = f"prediction for sample {record.get('sample_id')!r} fails its contract: {first_error(exc)}"
        replacement = error_fields(
            record["frame"],
            reason,
            model_name=record.get("model_name"),
            model_version=record.get("model_version"),
            scored_at=record["scored_at"],
        )
        replacement["traceparent"] = record.get("traceparent")
        return replacement, reason
    return record, None


def _validated(records: Sequence[Record]) -> PredictionBatch:
    first = records[0]
    header: Record = {}
    for name in SHARED_PREDICTION_FIELDS:
        value = first.get(name)
        if value is not None and all(record.get(name) == value for record in records):
            header[name] = value
    if header:
        # a C-level copy, then the few header names out: about a third of a comprehension's cost
        items = [dict(record) for record in records]
        for item in items:
            for name in header:
                del item[name]
    else:
        items = list(records)
    return PredictionBatch.model_validate({**header, "items": items})
