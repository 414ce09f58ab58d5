"""Encoding contracts into edgeHub messages and back.

Outgoing: one item is sent as the bare JSON object; several items of one schema go as a
``edgeloop.batch/1`` envelope, split so that no message exceeds the hub's size limit.
Incoming: either form, and typed batch contracts (``edgeloop.predictions/1``, validated in one
call), decode to a list of typed contract objects.
"""

from __future__ import annotations

import functools
import json
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from edgeloop.contracts import Batch, BatchEnvelope, Contract, contract_for_schema
from edgeloop.errors import ContractError, MessageTooLargeError

#: edgeHub and the SDK refuse messages over 256 KB (body and properties together).
HUB_MESSAGE_LIMIT = 256 * 1024
#: What we allow ourselves: the limit less room for system properties the SDK adds.
MAX_MESSAGE_BYTES = HUB_MESSAGE_LIMIT - 6 * 1024
CONTENT_TYPE = "application/json"
CONTENT_ENCODING = "utf-8"


@dataclass(frozen=True)
class OutboundMessage:
    """A message ready for ``send_message_to_output``."""

    output: str
    body: bytes
    properties: dict[str, str]
    message_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    content_type: str = CONTENT_TYPE
    content_encoding: str = CONTENT_ENCODING

    @property
    def size(self) -> int:
        return len(self.body) + sum(len(k) + len(v) for k, v in self.properties.items())


@dataclass(frozen=True)
class InboundMessage:
    """A message received on one of the module's inputs."""

    input_name: str
    body: bytes
    properties: dict[str, str] = field(default_factory=dict)
    message_id: str | None = None
    content_type: str | None = None

    @property
    def key(self) -> tuple[str, str] | None:
        """(input name, message id): what tells one delivery of a message from another one's,
        to acknowledge it or drop a copy; None for a message without an id."""
        return (self.input_name, self.message_id) if self.message_id else None


class PreEncoded(Batch):
    """Items their producer has already encoded as one message body (the JSON object of a
    subclass's ``SCHEMA``, its ``schema`` tag first), with what the message properties need.
    ``encode`` sends ``body`` as it is: the producer answers for its matching the contract (its
    tests decode it with the contract); nothing validates or serializes it again. A subclass
    names the contract in ``SCHEMA``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    body: bytes = Field(description="The message body: the contract's JSON object, schema tag first.")
    first_key: str = Field(description="The first item's sample id (the ``sample_id`` property).")
    count: int = Field(ge=1, description="How many items the body holds (the ``batch_size`` property).")

    @property
    def key(self) -> str:
        return self.first_key

    @property
    def item_count(self) -> int:
        return self.count

    def unbatch(self) -> list[Contract]:
        return decode(self.body)


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _properties(items: Sequence[Contract]) -> dict[str, str]:
    first = items[0]
    size = first.item_count if len(items) == 1 and isinstance(first, Batch) else len(items)
    props = {"schema": first.SCHEMA, "sample_id": first.key, "batch_size": str(size)}
    traceparent = getattr(first, "traceparent", None)
    if traceparent:
        props["traceparent"] = traceparent
    return props


def _wire(item: Contract) -> bytes:
    """The item's JSON with its ``schema`` tag first; pydantic's own serializer is about three
    times faster than ``json.dumps`` of ``model_dump`` on the per-sample hot path, and its bytes
    are taken as they are (``model_dump_json`` would make a str of them, to be encoded again).
    A ``PreEncoded`` item is its body."""
    if isinstance(item, PreEncoded):
        return item.body
    fields = item.__pydantic_serializer__.to_json(item, exclude_none=True)
    head = _schema_head(item.SCHEMA)
    return head + (b"," + fields[1:] if fields != b"{}" else b"}")


@functools.cache
def _schema_head(schema: str) -> bytes:
    return b'{"schema":' + json.dumps(schema).encode("ascii")


def _message(output: str, items: Sequence[Contract]) -> OutboundMessage:
    if len(items) == 1:
        body = _wire(items[0])
    else:
        head = _dumps({"schema": BatchEnvelope.SCHEMA, "item_schema": items[0].SCHEMA})[:-1]
        body = head + b',"items":[' + b",".join(_wire(item) for item in items) + b"]}"
    return OutboundMessage(output=output, body=body, properties=_properties(items))


def encode(
    output: str, items: Sequence[Contract], *, max_batch: int = 64, max_bytes: int = MAX_MESSAGE_BYTES
) -> list[OutboundMessage]:
    """Pack ``items`` into as few messages as the batch and size limits allow.

    Raises:
        MessageTooLargeError: one item alone is over ``max_bytes``.
        ValueError: the items are of different contracts, or ``max_batch`` < 1.
    """
    if max_batch < 1:
        raise ValueError(f"max_batch must be >= 1, got {max_batch}")
    if not items:
        return []
    schemas = {item.SCHEMA for item in items}
    if len(schemas) > 1:
        raise ValueError(f"one batch holds one contract, got {sorted(schemas)}")
    return list(_pack(output, list(items), max_batch, max_bytes))


def _pack(output: str, items: list[Contract], max_batch: int, max_bytes: int) -> Iterator[OutboundMessage]:
    start = 0
    while start < len(items):
        count = min(max_batch, len(items) - start)
        message = _message(output, items[start : start + count])
        while message.size > max_bytes and count > 1:
            count = max(1, count // 2)
            message = _message(output, items[start : start + count])
        if message.size > max_bytes:
            raise MessageTooLargeError(
                f"sample {items[start].key!r} encodes to {message.size} bytes, over the "
                f"{max_bytes}-byte message limit (edgeHub refuses messages over 256 KB); "
                "write large payloads to the shared volume and send a reference"
            )
        yield message
        start += count


def decode(body: bytes | str) -> list[Contract]:
    """Decode a message body (one item or a batch) into contract objects.

    Raises:
        ContractError: the body is not JSON, names no known schema, or fails validation.
    """
    items, problems = decode_each(body)
    if problems:
        raise ContractError(problems[0])
    return items


def decode_each(body: bytes | str) -> tuple[list[Contract], list[str]]:
    """Like ``decode``, but a batch item that fails validation is left out with its reason
    instead of failing the whole message: one bad item must not drop its batch mates.

    Raises:
        ContractError: the body itself is not JSON, not an object, or not a valid envelope.
    """
    try:
        doc = from_json(body)
    except ValueError as exc:
        if "recursion" in str(exc):  # a hostile body nested beyond the parser's depth
            raise ContractError("message body is JSON nested too deeply to decode") from exc
        raise ContractError(f"message body is not JSON: {exc}") from exc
    if not isinstance(doc, Mapping):
        raise ContractError(f"message body must be a JSON object, got {type(doc).__name__}")
    schema = doc.get("schema")
    if schema == BatchEnvelope.SCHEMA:
        return _envelope(doc)
    if not isinstance(schema, str):
        raise ContractError("message body has no 'schema' field naming its contract")
    model = contract_for_schema(schema)
    if model is not None and issubclass(model, Batch):
        return _batch(model, schema, doc)
    return [_item(schema, doc)], []


def _envelope(doc: Mapping[str, Any]) -> tuple[list[Contract], list[str]]:
    """A batch envelope's items: validated in one call when they are all of a plain contract
    and all valid (about half the cost of one call per item); otherwise item by item, so that
    one bad item is left out with its reason and its batch mates kept."""
    item_schema, raw_items = doc.get("item_schema"), doc.get("items")
    if (
        len(doc) != 3
        or not isinstance(item_schema, str)
        or not isinstance(raw_items, list)
        or not all(isinstance(raw, dict) for raw in raw_items)
    ):
        try:
            envelope = BatchEnvelope.model_validate({k: v for k, v in doc.items() if k != "schema"})
        except ValidationError as exc:
            raise ContractError(f"bad batch envelope: {first_error(exc)}") from exc
        item_schema, raw_items = envelope.item_schema, envelope.items
    model = contract_for_schema(item_schema)
    if model is not None and not issubclass(model, Batch):
        for raw in raw_items:  # the parser's own dicts: the tag can go in place
            raw.pop("schema", None)
        try:
            return list(_list_adapter(model).validate_python(raw_items)), []
        except ValidationError:
            pass  # at least one bad item: find which, item by item
    items: list[Contract] = []
    problems: list[str] = []
    for raw in raw_items:
        try:
            item = _item(item_schema, raw)
            items.extend(item.unbatch() if isinstance(item, Batch) else [item])
        except ContractError as exc:
            problems.append(str(exc))
    return items, problems


@functools.cache
def _list_adapter(model: type[Contract]) -> TypeAdapter[list[Contract]]:
    """One validator for a list of ``model`` items, built once per contract."""
    return TypeAdapter(list[model])  # type: ignore[valid-type]


def _batch(model: type[Batch], schema: str, doc: Mapping[str, Any]) -> tuple[list[Contract], list[str]]:
    """A typed batch: validated in one call; when that fails, the header alone and then each
    item, so that one bad item is left out with its reason and its batch mates kept."""
    fields = {k: v for k, v in doc.items() if k != "schema"}
    try:
        return model.model_validate(fields).unbatch(), []
    except ValidationError as exc:
        whole = exc
    raw_items = fields.get("items")
    if not isinstance(raw_items, list) or not raw_items:
        raise ContractError(f"{schema}: {first_error(whole)}") from whole
    good: list[Any] = []
    problems: list[str] = []
    for raw in raw_items:
        try:
            model.model_validate({**fields, "items": [raw]})
        except ValidationError as exc:
            where = raw.get("sample_id", "?") if isinstance(raw, Mapping) else "?"
            problems.append(f"{schema} item {where!r}: {first_error(exc)}")
        else:
            good.append(raw)
    if len(problems) == len(raw_items) and len(raw_items) > 1:
        # every item fails alone too: most likely the header itself
        raise ContractError(f"{schema}: {first_error(whole)}") from whole
    if not good:
        return [], problems
    return model.model_validate({**fields, "items": good}).unbatch(), problems


def _item(schema: str, doc: Mapping[str, Any]) -> Contract:
    model = contract_for_schema(schema)
    if model is None:
        raise ContractError(f"unknown message schema {schema!r}")
    fields = {k: v for k, v in doc.items() if k != "schema"}
    try:
        return model.model_validate(fields)
    except ValidationError as exc:
        raise ContractError(f"{schema} item {fields.get('sample_id', '?')!r}: {first_error(exc)}") from exc


def first_error(exc: ValidationError) -> str:
    """The first validation error as ``where: what`` (``(root)`` for the whole object)."""
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "(root)"
    return f"{where}: {err['msg']}"
