"""What a model says about itself: preprocessing and label names in ONNX metadata.

A model exported for EdgeLoop carries two entries in its ONNX ``metadata_props``:

- ``edgeloop.preprocess``: a JSON object (``Preprocess``) telling the inference module how to
  turn a sample into the model's input tensor: image or feature vector, input size, colour
  order, layout, scale, mean/std, and whether the output is logits or probabilities;
- ``edgeloop.labels``: a JSON list of class names, in output order;
- ``edgeloop.embedding`` (optional): the name of an output holding the model's embedding of
  each sample, shape [N, D] float; the inference module forwards it (D <= 64, as float16) for
  the filter's novelty scores.

The device reads them from an ONNX Runtime session (``read_session_metadata``); the cloud
writes them into an ``onnx.ModelProto`` with ``embed_metadata`` (no ``onnx`` import here:
that package is a cloud/dev extra, not on the device). The pixel pipeline is: decode ->
convert to ``color`` -> resize to ``width`` x ``height`` -> ``float32 * scale`` ->
``(x - mean) / std`` per channel -> ``layout``. A feature vector becomes
``(v * scale - mean) / std`` per feature (set ``scale`` to 1 for vector models).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from edgeloop.errors import EdgeLoopError

#: Metadata key holding the ``Preprocess`` JSON object.
PREPROCESS_KEY = "edgeloop.preprocess"
#: Metadata key holding the JSON list of label names.
LABELS_KEY = "edgeloop.labels"
#: Optional metadata keys naming the model and its version (the registry writes them).
MODEL_NAME_KEY = "edgeloop.model_name"
MODEL_VERSION_KEY = "edgeloop.model_version"
#: Optional metadata key naming the output that holds the model's embedding ([N, D] float).
EMBEDDING_KEY = "edgeloop.embedding"

ColorOrder = Literal["gray", "rgb", "bgr"]
Layout = Literal["NCHW", "NHWC", "flat"]
InputKind = Literal["image", "vector"]
OutputKind = Literal["logits", "probabilities"]
Interpolation = Literal["area", "linear", "nearest"]


class ModelMetadataError(EdgeLoopError):
    """A model's ``edgeloop.*`` metadata is missing, not JSON, or not valid."""


class Preprocess(BaseModel):
    """How to build the model's input from a sample (the ``edgeloop.preprocess`` JSON)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input_kind: InputKind = Field(
        default="image", description="'image' (a file on the shared volume) or 'vector' (inline floats)."
    )
    width: int | None = Field(default=None, ge=1, description="Input width in pixels (images).")
    height: int | None = Field(default=None, ge=1, description="Input height in pixels (images).")
    color: ColorOrder = Field(default="rgb", description="Channel order the model expects: gray, rgb, bgr.")
    layout: Layout = Field(
        default="NCHW",
        description="Tensor layout: NCHW, NHWC, or 'flat' (one row of height*width*channels values).",
    )
    scale: float = Field(
        default=1.0 / 255.0, gt=0.0, description="Pixels (0-255) or vector values are multiplied by this."
    )
    mean: list[float] = Field(
        default_factory=lambda: [0.0], description="Subtracted after scaling: one value or one per channel."
    )
    std: list[float] = Field(
        default_factory=lambda: [1.0], description="Divided by after the mean: one value or one per channel."
    )
    interpolation: Interpolation = Field(default="area", description="Resize method: area, linear, nearest.")
    vector_size: int | None = Field(default=None, ge=1, description="Feature count (vectors), if fixed.")
    output_kind: OutputKind = Field(
        default="probabilities",
        description="'logits' (softmax is applied on the device) or 'probabilities'.",
    )

    @model_validator(mode="after")
    def _check(self) -> Preprocess:
        for name, values in (("mean", self.mean), ("std", self.std)):
            if self.input_kind == "image" and len(values) not in (1, self.channels):
                raise ValueError(
                    f"{name} has {len(values)} values; give 1 or {self.channels} "
                    f"(one per channel of {self.color!r})"
                )
            if self.input_kind == "vector" and self.vector_size and len(values) not in (1, self.vector_size):
                raise ValueError(
                    f"{name} has {len(values)} values; give 1 or {self.vector_size} (one per feature)"
                )
        if any(v == 0 for v in self.std):
            raise ValueError(f"std {self.std} contains 0; every std value must be non-zero")
        if (self.width is None) != (self.height is None):
            raise ValueError("give both width and height, or neither (then the model input shape decides)")
        return self

    @property
    def channels(self) -> int:
        return 1 if self.color == "gray" else 3

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str | bytes) -> Preprocess:
        """Parse the metadata JSON.

        Raises:
            ModelMetadataError: not JSON, or a field is out of range (the message names it).
        """
        try:
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelMetadataError(f"{PREPROCESS_KEY} is not JSON: {exc}") from exc
        return cls.from_dict(doc)

    @classmethod
    def from_dict(cls, doc: Any) -> Preprocess:
        """Validate a dict. Raises ``ModelMetadataError`` naming each bad field."""
        if not isinstance(doc, Mapping):
            raise ModelMetadataError(f"{PREPROCESS_KEY} must be a JSON object, got {type(doc).__name__}")
        try:
            return cls.model_validate(dict(doc))
        except ValidationError as exc:
            raise ModelMetadataError(f"{PREPROCESS_KEY} is invalid: {_describe(exc)}") from exc

    def merged(self, override: Mapping[str, Any] | None) -> Preprocess:
        """This description with some fields replaced (a twin override), validated again."""
        if not override:
            return self
        return Preprocess.from_dict({**self.model_dump(), **dict(override)})


class ModelMetadata(BaseModel):
    """Everything EdgeLoop reads from a model's metadata."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    preprocess: Preprocess | None = Field(default=None, description="None when the model carries none.")
    labels: list[str] | None = Field(default=None, description="Class names in output order, if given.")
    name: str | None = Field(default=None, description="Model name written by the registry, if any.")
    version: str | None = Field(default=None, description="Model version written by the registry, if any.")
    embedding: str | None = Field(
        default=None, description="Name of the output holding the model's embedding ([N, D] float), if any."
    )
    extra: dict[str, str] = Field(default_factory=dict, description="Every other metadata entry.")


def parse_labels(text: str | bytes) -> list[str]:
    """Parse the ``edgeloop.labels`` JSON list. Raises ``ModelMetadataError``."""
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelMetadataError(f"{LABELS_KEY} is not JSON: {exc}") from exc
    if not isinstance(doc, list) or not all(isinstance(x, str | int) for x in doc):
        raise ModelMetadataError(f"{LABELS_KEY} must be a JSON list of names, got {str(doc)[:80]!r}")
    return [str(x) for x in doc]


def metadata_from_map(props: Mapping[str, str]) -> ModelMetadata:
    """Build ``ModelMetadata`` from a metadata map (ONNX ``metadata_props`` as a dict).

    Raises:
        ModelMetadataError: an ``edgeloop.*`` entry is present but invalid.
    """
    preprocess = Preprocess.from_json(props[PREPROCESS_KEY]) if PREPROCESS_KEY in props else None
    labels = parse_labels(props[LABELS_KEY]) if LABELS_KEY in props else None
    embedding = props.get(EMBEDDING_KEY)
    if embedding is not None and not embedding.strip():
        raise ModelMetadataError(f"{EMBEDDING_KEY} is empty: name the embedding output or omit the key")
    known = {PREPROCESS_KEY, LABELS_KEY, MODEL_NAME_KEY, MODEL_VERSION_KEY, EMBEDDING_KEY}
    return ModelMetadata(
        preprocess=preprocess,
        labels=labels,
        name=props.get(MODEL_NAME_KEY),
        version=props.get(MODEL_VERSION_KEY),
        embedding=embedding.strip() if embedding is not None else None,
        extra={k: v for k, v in props.items() if k not in known},
    )


class _HasModelMeta(Protocol):
    def get_modelmeta(self) -> Any: ...


def read_session_metadata(session: _HasModelMeta) -> ModelMetadata:
    """Read the metadata of a loaded ``onnxruntime.InferenceSession``.

    Raises:
        ModelMetadataError: an ``edgeloop.*`` entry is present but invalid.
    """
    props = dict(session.get_modelmeta().custom_metadata_map or {})
    return metadata_from_map(props)


def metadata_props(
    *,
    preprocess: Preprocess | None = None,
    labels: Sequence[str] | None = None,
    name: str | None = None,
    version: str | None = None,
    embedding: str | None = None,
) -> dict[str, str]:
    """The ``metadata_props`` entries for these facts (only those given)."""
    props: dict[str, str] = {}
    if preprocess is not None:
        props[PREPROCESS_KEY] = preprocess.to_json()
    if labels is not None:
        props[LABELS_KEY] = json.dumps([str(x) for x in labels])
    if name is not None:
        props[MODEL_NAME_KEY] = name
    if version is not None:
        props[MODEL_VERSION_KEY] = version
    if embedding is not None:
        props[EMBEDDING_KEY] = embedding
    return props


def embed_metadata(
    model: Any,
    *,
    preprocess: Preprocess | None = None,
    labels: Sequence[str] | None = None,
    name: str | None = None,
    version: str | None = None,
    embedding: str | None = None,
) -> Any:
    """Write the entries into an ``onnx.ModelProto`` (in place; also returned), keeping the
    model's other metadata. Works on the protobuf message directly (what
    ``onnx.helper.set_model_props`` does), so this module never imports ``onnx``."""
    props = {p.key: p.value for p in model.metadata_props}
    props.update(
        metadata_props(preprocess=preprocess, labels=labels, name=name, version=version, embedding=embedding)
    )
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    return model


def _describe(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(object)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)
