"""The message contracts of the loop, as frozen pydantic models.

Every message body is JSON with a ``schema`` field naming the contract and its major version
(``edgeloop.prediction/2``). A message carries either one item (the bare object, so route
``WHERE $body.confidence < 0.5`` works), a batch envelope (``edgeloop.batch/1``) holding
several items of one schema, or a typed batch contract (``edgeloop.predictions/1``: the
predictions of one model run, the fields they share said once) to amortise the per-message
SDK cost and validate a batch in one call. Readers get the items of any form alike
(``Batch.unbatch``).

Frames never travel in messages: capture writes them to the shared volume and ``FrameRef``
carries the path relative to the volume root (``file_ref``). Sensor vectors are small and
travel inline (``vector``).

Older major versions that a newer model reads unchanged stay accepted (``ACCEPTED``): an
``edgeloop.prediction/1`` item is a ``/2`` prediction without ``embedding``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from edgeloop.contracts.embedding import MAX_EMBEDDING_VALUES

_SAFE_REF = re.compile(r"^[A-Za-z0-9_.\-/]+$")


def _check_file_ref(value: str | None) -> str | None:
    if value is None:
        return value
    if value.startswith("/") or ".." in value.split("/") or not _SAFE_REF.match(value):
        raise ValueError(
            f"file_ref {value!r} must be a relative path inside the sample volume "
            "(letters, digits, '_', '-', '.', '/'; no '..')"
        )
    return value


FileRef = Annotated[str, AfterValidator(_check_file_ref)]
HexHash64 = Annotated[str, Field(pattern=r"^[0-9a-f]{16}$", description="64-bit hash as 16 hex digits")]
Sha256Hex = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 as 64 hex digits")]


class Contract(BaseModel):
    """Base of every message contract: frozen, unknown fields rejected, schema-tagged."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    SCHEMA: ClassVar[str] = ""

    @property
    def key(self) -> str:
        """The id used as the ``sample_id`` message property."""
        return str(getattr(self, "sample_id", ""))

    def to_wire(self) -> dict[str, Any]:
        """The JSON-ready dict, with its ``schema`` tag first."""
        return {"schema": self.SCHEMA, **self.model_dump(mode="json", exclude_none=True)}


class RawPixels(BaseModel):
    """How to read a raw frame file (``edgeloop.rawframe``) and what to encode it as on claim."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    channels: Literal[1, 3] = Field(description="1 (gray) or 3 (BGR, as OpenCV decodes).")
    dtype: Literal["uint8"] = Field(default="uint8", description="Pixel type.")
    quality: int = Field(
        ge=0,
        le=100,
        description="Encoding setting for the uploaded file named by content_type: JPEG quality "
        "(1-100) or PNG compression (0-9).",
    )


class FrameRef(Contract):
    """A captured sample: an image file on the shared volume or an inline sensor vector.

    An image is either an encoded file (JPEG/PNG, ``raw`` absent) or, on the memory-backed path,
    a raw frame file (``raw`` set): decoded pixels that readers use without decoding, encoded to
    ``content_type`` only when the uploader claims the sample."""

    SCHEMA: ClassVar[str] = "edgeloop.frame/1"

    sample_id: str = Field(description="Time-sortable unique id (ULID-like), also the file stem.")
    source_id: str = Field(description="The capture source that produced it.")
    seq: int = Field(ge=0, description="Per-source sequence number, from 0 at module start.")
    captured_at: datetime = Field(description="UTC capture time.")
    kind: Literal["image", "vector"] = Field(description="An image file or an inline sensor vector.")
    file_ref: FileRef | None = Field(
        default=None, description="Path of the sample file relative to the shared volume root."
    )
    content_type: str | None = Field(
        default=None,
        description="MIME type of the file (image/jpeg...); for a raw frame, the type it is uploaded as.",
    )
    width: int | None = Field(default=None, ge=1, description="Image width in pixels.")
    height: int | None = Field(default=None, ge=1, description="Image height in pixels.")
    bytes: int | None = Field(default=None, ge=0, description="Size of the sample file.")
    sha256: Sha256Hex | None = Field(default=None, description="SHA-256 of the sample file.")
    dhash: HexHash64 | None = Field(default=None, description="64-bit difference hash of the image.")
    raw: RawPixels | None = Field(
        default=None, description="Set when file_ref is a raw frame file (the memory-backed frame path)."
    )
    vector: list[float] | None = Field(default=None, description="Sensor readings, for kind=vector.")
    attributes: dict[str, str] = Field(
        default_factory=dict, description="Source-specific facts (file name, frame index, sensor unit...)."
    )
    traceparent: str | None = Field(default=None, description="W3C trace context of this sample.")


class LabelScore(BaseModel):
    """One of the top-k labels and its score."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    label: str
    score: float


class Prediction(Contract):
    """The inference module's verdict on one sample (or why it could not score it).

    ``/2`` adds ``embedding``; ``/1`` items (without it) are still accepted."""

    SCHEMA: ClassVar[str] = "edgeloop.prediction/2"

    sample_id: str
    frame: FrameRef = Field(description="The sample scored, as capture described it.")
    status: Literal["ok", "error"] = Field(description="'error' when the sample could not be scored.")
    error: str | None = Field(default=None, description="Why scoring failed, for status=error.")
    model_name: str | None = None
    model_version: str | None = None
    label: str | None = Field(default=None, description="Top-1 label.")
    confidence: float | None = Field(default=None, ge=0.0, le=1.0, description="Top-1 probability.")
    margin: float | None = Field(default=None, ge=0.0, le=1.0, description="Top-1 minus top-2 probability.")
    entropy: float | None = Field(default=None, ge=0.0, description="Shannon entropy of the scores (nats).")
    top_k: list[LabelScore] = Field(default_factory=list)
    scores: list[float] = Field(default_factory=list, description="Full probability vector.")
    labels: list[str] | None = Field(default=None, description="Label names for scores, when known.")
    latency_ms: float | None = Field(
        default=None, ge=0.0, description="Model run time for this sample's batch."
    )
    scored_at: datetime | None = None
    traceparent: str | None = None
    embedding: str | None = Field(
        default=None,
        max_length=1024,
        description="The model's embedding of the sample, when its metadata names one: base64 of "
        f"at most {MAX_EMBEDDING_VALUES} little-endian float16 values (edgeloop.contracts."
        "decode_embedding). Readers treat a malformed one as absent, never the prediction as bad.",
    )


#: Prediction fields a ``PredictionBatch`` header may hold for all its items.
SHARED_PREDICTION_FIELDS = ("model_name", "model_version", "labels", "scored_at", "latency_ms")


class Batch(Contract):
    """Base of typed batch contracts: one message, several items of one contract."""

    @property
    def item_count(self) -> int:
        """How many items the batch holds."""
        raise NotImplementedError

    def unbatch(self) -> list[Contract]:
        """The items, as the single-item contract, header fields filled in."""
        raise NotImplementedError


class PredictionBatch(Batch):
    """Predictions of one model run (or of consecutive runs of one model) in one message.

    The header says once what every item shares (model, label names, scoring time, run
    latency); each item is an ``edgeloop.prediction/2`` object without its ``schema`` tag that
    leaves those fields out. An item's own value of a shared field wins over the header's."""

    SCHEMA: ClassVar[str] = "edgeloop.predictions/1"

    model_name: str | None = Field(default=None, description="Model name of every item.")
    model_version: str | None = Field(default=None, description="Model version of every item.")
    labels: list[str] | None = Field(default=None, description="Label names for every item's scores.")
    scored_at: datetime | None = Field(default=None, description="When every item was scored.")
    latency_ms: float | None = Field(default=None, ge=0.0, description="Model run time of the items' batch.")
    items: list[Prediction] = Field(
        min_length=1, description="The predictions (edgeloop.prediction/2 objects without 'schema')."
    )

    @property
    def key(self) -> str:
        """The first item's sample id (the ``sample_id`` message property)."""
        return self.items[0].sample_id

    @property
    def item_count(self) -> int:
        return len(self.items)

    def unbatch(self) -> list[Contract]:
        header = {name: getattr(self, name) for name in SHARED_PREDICTION_FIELDS}
        header = {name: value for name, value in header.items() if value is not None}
        if not header:
            return list(self.items)
        out: list[Contract] = []
        for item in self.items:
            fill = {name: value for name, value in header.items() if getattr(item, name) is None}
            out.append(item.model_copy(update=fill) if fill else item)
        return out

    @classmethod
    def of(cls, predictions: Sequence[Prediction]) -> PredictionBatch:
        """One batch of ``predictions``; the fields all of them share go to the header.

        Raises:
            ValueError: no predictions.
        """
        if not predictions:
            raise ValueError("a prediction batch holds at least one prediction")
        first = predictions[0]
        shared = {
            name: getattr(first, name)
            for name in SHARED_PREDICTION_FIELDS
            if getattr(first, name) is not None
            and all(getattr(p, name) == getattr(first, name) for p in predictions)
        }
        blank = dict.fromkeys(shared)
        items = [p.model_copy(update=blank) for p in predictions] if shared else list(predictions)
        return cls(**shared, items=items)


class SelectedSample(Contract):
    """A prediction the filter chose to upload, with the strategy that chose it and why."""

    SCHEMA: ClassVar[str] = "edgeloop.selected/1"

    sample_id: str
    prediction: Prediction
    strategy: str = Field(description="Name of the strategy that selected it.")
    reason: str = Field(description="Why, in words (which rule matched, with values).")
    tags: list[str] = Field(default_factory=list)
    priority: int = Field(default=0, description="Higher is kept longer when the uploader must evict.")
    selected_at: datetime
    traceparent: str | None = None


class UploadedNotice(Contract):
    """The uploader shipped a sample (or a prediction-log batch) to Blob Storage."""

    SCHEMA: ClassVar[str] = "edgeloop.uploaded/1"

    sample_id: str
    blob_name: str
    bytes: int = Field(ge=0, description="Ciphertext bytes uploaded.")
    plaintext_sha256: Sha256Hex | None = None
    key_id: str | None = None
    strategy: str | None = None
    uploaded_at: datetime
    traceparent: str | None = None


class Summary(Contract):
    """Periodic counts from a module, sent upstream as IoT Hub telemetry."""

    SCHEMA: ClassVar[str] = "edgeloop.summary/1"

    sample_id: str = Field(description="Summary id (unique per window and module).")
    module: str
    window_start: datetime
    window_end: datetime
    seen: int = Field(ge=0)
    selected_by_strategy: dict[str, int] = Field(default_factory=dict)
    dropped_by_reason: dict[str, int] = Field(default_factory=dict)
    drift: dict[str, float] = Field(default_factory=dict, description="Drift statistics such as PSI.")
    model_version: str | None = None


class BatchEnvelope(BaseModel):
    """Several items of one contract in one message."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    SCHEMA: ClassVar[str] = "edgeloop.batch/1"

    item_schema: str
    items: list[dict[str, Any]]


CONTRACTS: dict[str, type[Contract]] = {
    model.SCHEMA: model
    for model in (FrameRef, Prediction, PredictionBatch, SelectedSample, UploadedNotice, Summary)
}


#: Schema tags still read, beside the current ones: older versions a current model reads as is.
ACCEPTED: dict[str, type[Contract]] = {**CONTRACTS, "edgeloop.prediction/1": Prediction}


def contract_for_schema(schema: str) -> type[Contract] | None:
    """The contract class for a schema tag (current or still accepted), or None when unknown."""
    return ACCEPTED.get(schema)
