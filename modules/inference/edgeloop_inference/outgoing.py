"""From prediction records to what leaves the module: ``edgeloop.predictions/1`` message
bodies, and single ``Prediction`` objects for HTTP callers.

A record is the plain dict of one prediction's fields (``scoring.prediction_fields``,
``scoring.error_fields``); the output thread holds records, not contract objects, and builds
none on the way out to the hub (below). The fields every record of a message
shares go to its header, as ``PredictionBatch.of`` does. A record that fails its contract (a
model that emitted NaN, say) is replaced by an error record naming the field, so its sample is
still accounted for and its message mates still go out.

Records whose values are valid by construction (the ``ok`` records of rows of finite
probabilities in [0, 1], ``scoring.sound_rows``; error records, made of a validated frame and
plain text) go out as JSON serialized straight from the records in one pydantic-core call
(``encoded_batch``): no ``Prediction`` objects are built, and the bytes are those the contract
would serialize (the tests compare them). A record of any other row is checked against the
contract when it is made (``vetted``): an error record replaces it when it fails, and when it
passes it is marked ``Unvetted``, and its message takes the validated path (``batch_of``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError
from pydantic_core import to_json

from edgeloop.contracts import Prediction, PredictionBatch
from edgeloop.contracts.messages import SHARED_PREDICTION_FIELDS
from edgeloop.runtime.codec import PreEncoded, first_error
from edgeloop_inference.scoring import error_fields

#: One prediction's fields, as ``Prediction`` takes them.
Record = dict[str, Any]


class Unvetted(dict[str, Any]):
    """A record that passed the contract although its row was not sound (``vetted``): its
    message is validated and serialized by the contract, as the values may need it to be."""


class EncodedPredictions(PreEncoded):
    """An ``edgeloop.predictions/1`` message body built from records (``encoded_batch``)."""

    SCHEMA = PredictionBatch.SCHEMA


_HEAD = b'{"schema":"' + PredictionBatch.SCHEMA.encode("ascii") + b'",'


def encoded_batch(records: Sequence[Record]) -> EncodedPredictions | None:
    """One message body holding ``records``, serialized from the records themselves; None when
    one of them is ``Unvetted`` (the caller takes ``batch_of``). The bytes equal those of
    ``PredictionBatch`` holding the same records: shared fields in the header (as
    ``PredictionBatch.of``), fields in the contract's order, None fields left out.

    Raises:
        ValueError: no records.
    """
    if not records:
        raise ValueError("a prediction batch holds at least one prediction")
    if any(type(record) is not dict for record in records):
        return None
    header = _header(records)
    items = [
        {
            name: value
            for name, value in (record if "scores" in record else _complete(record)).items()
            if value is not None and name not in header
        }
        for record in records
    ]
    body = _HEAD + to_json({**header, "items": items}, exclude_none=True)[1:]
    return EncodedPredictions(body=body, first_key=records[0]["sample_id"], count=len(records))


#: A prediction's fields in the contract's order, and those whose default is not None.
_FIELDS = tuple(Prediction.model_fields)
_DEFAULTS: Record = {"top_k": [], "scores": []}


def _complete(record: Record) -> Record:
    """An error record as the contract holds it: its fields in order, empty lists included."""
    return {name: record.get(name, _DEFAULTS.get(name)) for name in _FIELDS}


def vetted(record: Record) -> tuple[Record, str | None]:
    """A record of a row that is not sound, checked against the contract: an error record and
    the reason when it fails, else the record marked ``Unvetted``."""
    checked, problem = checked_record(record)
    return (checked, problem) if problem is not None else (Unvetted(record), None)


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


def _header(records: Sequence[Record]) -> Record:
    """The fields every record shares, not None, in the contract's order."""
    first = records[0]
    header: Record = {}
    for name in SHARED_PREDICTION_FIELDS:
        value = first.get(name)
        if value is not None and all(record.get(name) == value for record in records):
            header[name] = value
    return header


def _validated(records: Sequence[Record]) -> PredictionBatch:
    header = _header(records)
    if header:
        # a C-level copy, then the few header names out: about a third of a comprehension's cost
        items = [dict(record) for record in records]
        for item in items:
            for name in header:
                del item[name]
    else:
        items = list(records)
    return PredictionBatch.model_validate({**header, "items": items})
