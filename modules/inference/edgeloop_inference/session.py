"""A loaded model: its ONNX Runtime session, preprocessing, labels, and the self-test.

``load_model`` opens a session on the chosen providers, reads the model's own metadata, applies
the twin's overrides, checks the input against the preprocessing description, picks the score
output, and runs a self-test (shapes, dtypes, finite values, probabilities in range) on a
neutral sample. Any failure raises ``ModelRejectedError`` with the reason; the model serving
until then is untouched.

A model whose metadata names an embedding output (``edgeloop.embedding``) has it read beside
the scores when it is a float [N, D] output with D <= 64; otherwise the model still serves,
its predictions go without embedding, and the reason is reported (``embedding.problem``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from edgeloop.contracts import MAX_EMBEDDING_VALUES
from edgeloop.errors import EdgeLoopError
from edgeloop.model_metadata import EMBEDDING_KEY, ModelMetadata, ModelMetadataError, read_session_metadata
from edgeloop_inference.preprocess import InputMismatchError, Preprocessor, describe_from_shape
from edgeloop_inference.providers import ProviderChoice
from edgeloop_inference.scoring import as_probabilities, embedding_shape_problem

log = logging.getLogger(__name__)


class ModelRejectedError(EdgeLoopError):
    """A model cannot be served: fetch, hash, signature, load or self-test failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class ModelIdentity:
    """What the module reports about a model."""

    name: str
    version: str
    sha256: str
    source: str
    key_id: str | None = None
    signature: str | None = None
    cached: bool = False

    def brief(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass
class LoadedModel:
    """A model ready to score; ``run`` may be called from any thread."""

    identity: ModelIdentity
    session: Any
    input_name: str
    output_name: str
    preprocessor: Preprocessor
    labels: list[str]
    logits: bool
    max_batch: int | None
    providers: list[str]
    warnings: list[str]
    load_ms: float
    loaded_at: datetime
    metadata: ModelMetadata = field(repr=False)
    embedding_output: str | None = None
    embedding_problem: str | None = None

    def run(self, tensor: np.ndarray) -> np.ndarray:
        """Probabilities (float64, [N, classes]) for an input batch, in chunks the model takes."""
        return self.infer(tensor)[0]

    def infer(self, tensor: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities and, when the model has a usable embedding output, the embeddings
        ([N, D], as the model gave them; checked per batch by ``scoring.embedding_texts``)."""
        limit = self.max_batch or len(tensor)
        names = [self.output_name] + ([self.embedding_output] if self.embedding_output else [])
        scores, embeddings = [], []
        for start in range(0, len(tensor), max(1, limit)):
            outputs = self.session.run(names, {self.input_name: tensor[start : start + limit]})
            scores.append(np.asarray(outputs[0]))
            if self.embedding_output:
                embeddings.append(np.asarray(outputs[1]))
        raw = scores[0] if len(scores) == 1 else np.concatenate(scores)
        probs = as_probabilities(raw.reshape(len(tensor), -1), logits=self.logits)
        if not embeddings:
            return probs, None
        return probs, embeddings[0] if len(embeddings) == 1 else np.concatenate(embeddings)

    def describe(self) -> dict[str, Any]:
        spec = self.preprocessor.spec
        return {
            **self.identity.brief(),
            "source": self.identity.source,
            "keyId": self.identity.key_id,
            "loadTimeMs": round(self.load_ms, 1),
            "loadedAt": self.loaded_at.isoformat(),
            "providers": self.providers,
            "warnings": self.warnings,
            "input": {"name": self.input_name, "shape": list(self.preprocessor.input_shape)},
            "inputKind": spec.input_kind,
            "outputKind": "logits" if self.logits else "probabilities",
            "classes": len(self.labels),
            "embedding": {
                "named": self.metadata.embedding,
                "output": self.embedding_output,
                "problem": self.embedding_problem,
            },
        }


def _open_session(model_bytes: bytes, choice: ProviderChoice, threads: int, spinning: bool) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    options.log_severity_level = 3
    try:
        return onnxruntime.InferenceSession(model_bytes, sess_options=options, providers=choice.providers)
    except Exception as exc:  # ONNX Runtime raises its own Fail/InvalidGraph/... types
        raise ModelRejectedError(f"ONNX Runtime cannot load the model: {exc}") from exc


def _pick_output(session: Any, wanted: str | None) -> tuple[str, int | None]:
    outputs = session.get_outputs()
    if wanted is not None:
        for out in outputs:
            if out.name == wanted:
                return out.name, _classes(out.shape)
        raise ModelRejectedError(
            f"outputName {wanted!r} is not an output of the model (outputs: {[o.name for o in outputs]})"
        )
    for out in outputs:
        if out.type in ("tensor(float)", "tensor(double)", "tensor(float16)") and len(out.shape) == 2:
            return out.name, _classes(out.shape)
    described = [(o.name, o.type, o.shape) for o in outputs]
    raise ModelRejectedError(
        f"the model has no float [N, classes] output to read scores from (outputs: {described}); "
        "export classifiers without ZipMap (skl2onnx option zipmap=False) or set outputName"
    )


def _pick_embedding(session: Any, wanted: str | None) -> tuple[str | None, str | None]:
    """The embedding output the metadata names, or None and why it cannot be forwarded."""
    if wanted is None:
        return None, None
    for out in session.get_outputs():
        if out.name != wanted:
            continue
        if out.type not in ("tensor(float)", "tensor(double)", "tensor(float16)"):
            return (
                None,
                f"{EMBEDDING_KEY} names output {wanted!r} of type {out.type}; a float [N, D] is needed",
            )
        if len(out.shape) != 2:
            return None, f"{EMBEDDING_KEY} output {wanted!r} has shape {out.shape}; [N, D] is needed"
        dims = out.shape[1]
        if isinstance(dims, int) and dims > MAX_EMBEDDING_VALUES:
            return None, (
                f"{EMBEDDING_KEY} output {wanted!r} has {dims} values a sample; "
                f"at most {MAX_EMBEDDING_VALUES} are forwarded"
            )
        return out.name, None
    names = [o.name for o in session.get_outputs()]
    return None, f"{EMBEDDING_KEY} names output {wanted!r}, which the model does not have (outputs: {names})"


def _classes(shape: Sequence[object]) -> int | None:
    last = shape[-1] if shape else None
    return last if isinstance(last, int) and last > 0 else None


def load_model(
    model_bytes: bytes,
    *,
    identity: ModelIdentity,
    choice: ProviderChoice,
    intra_op_threads: int = 0,
    intra_op_spinning: bool = False,
    preprocess_override: Mapping[str, Any] | None = None,
    labels_override: Sequence[str] | None = None,
    output_name: str | None = None,
    loaded_at: datetime,
) -> LoadedModel:
    """Open, describe and self-test a model. Raises ``ModelRejectedError`` with the reason."""
    started = time.perf_counter()
    session = _open_session(model_bytes, choice, intra_op_threads, intra_op_spinning)
    try:
        metadata = read_session_metadata(session)
    except ModelMetadataError as exc:
        raise ModelRejectedError(f"bad model metadata: {exc}") from exc
    inputs = session.get_inputs()
    if len(inputs) != 1:
        raise ModelRejectedError(f"the model takes {len(inputs)} inputs; one input tensor is supported")
    model_input = inputs[0]
    if model_input.type != "tensor(float)":
        raise ModelRejectedError(
            f"model input {model_input.name!r} is {model_input.type}; float32 is supported"
        )
    try:
        spec = metadata.preprocess or describe_from_shape(model_input.shape)
        spec = spec.merged(preprocess_override)
        preprocessor = Preprocessor.build(spec, model_input.shape)
    except (InputMismatchError, ModelMetadataError) as exc:
        raise ModelRejectedError(f"wrong input for this model: {exc}") from exc
    output, classes = _pick_output(session, output_name)
    labels = list(labels_override or metadata.labels or [])
    if labels and classes is not None and len(labels) != classes:
        raise ModelRejectedError(f"the model has {classes} classes but {len(labels)} labels are given")
    batch_dim = model_input.shape[0] if model_input.shape else None
    embedding_output, embedding_problem = _pick_embedding(session, metadata.embedding)
    model = LoadedModel(
        identity=identity,
        session=session,
        input_name=model_input.name,
        output_name=output,
        preprocessor=preprocessor,
        labels=labels,
        logits=spec.output_kind == "logits",
        max_batch=batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None,
        providers=list(session.get_providers()),
        warnings=list(choice.warnings),
        load_ms=0.0,
        loaded_at=loaded_at,
        metadata=metadata,
        embedding_output=embedding_output,
        embedding_problem=embedding_problem,
    )
    self_test(model, classes)
    if model.embedding_problem:
        log.warning("predictions go without embedding: %s", model.embedding_problem)
    model.load_ms = (time.perf_counter() - started) * 1000.0
    log.info(
        "model %s %s (%s) loaded in %.0f ms on %s",
        identity.name,
        identity.version,
        identity.sha256[:12],
        model.load_ms,
        model.providers,
    )
    return model


def self_test(model: LoadedModel, classes: int | None) -> None:
    """Run two neutral samples; check shape, dtype, finiteness and probability range."""
    blank = model.preprocessor.blank()
    tensor = model.preprocessor.to_tensor([blank, blank])
    try:
        raw = model.session.run([model.output_name], {model.input_name: tensor[: model.max_batch or 2]})[0]
    except Exception as exc:
        raise ModelRejectedError(
            f"self-test failed: running a {list(tensor.shape)} input raised {type(exc).__name__}: {exc}"
        ) from exc
    raw = np.asarray(raw)
    rows = min(2, model.max_batch or 2)
    if raw.ndim != 2 or raw.shape[0] != rows:
        raise ModelRejectedError(
            f"self-test failed: output shape {list(raw.shape)}, expected [{rows}, classes]"
        )
    if raw.dtype.kind != "f":
        raise ModelRejectedError(f"self-test failed: output dtype {raw.dtype}, expected float")
    if not np.all(np.isfinite(raw)):
        raise ModelRejectedError("self-test failed: the model output NaN or infinite scores")
    if classes is not None and raw.shape[1] != classes:
        raise ModelRejectedError(
            f"self-test failed: {raw.shape[1]} scores where the graph declares {classes}"
        )
    if not model.labels:
        model.labels = [str(i) for i in range(raw.shape[1])]
    elif len(model.labels) != raw.shape[1]:
        raise ModelRejectedError(f"self-test failed: {raw.shape[1]} scores but {len(model.labels)} labels")
    if not model.logits and (raw.min() < -1e-3 or raw.max() > 1 + 1e-3):
        raise ModelRejectedError(
            f"self-test failed: the model is described as emitting probabilities but output values in "
            f"[{raw.min():.3g}, {raw.max():.3g}]; set output_kind 'logits' in edgeloop.preprocess"
        )
    _test_embedding(model, tensor[:rows])


def _test_embedding(model: LoadedModel, tensor: np.ndarray) -> None:
    """Run the embedding output on the neutral samples; a bad one is turned off with the reason
    (the model still serves: the embedding is an extra)."""
    name = model.embedding_output
    if name is None:
        return
    problem: str | None
    try:
        embeddings = np.asarray(model.session.run([name], {model.input_name: tensor})[0])
    except Exception as exc:
        problem = f"running {EMBEDDING_KEY} output {name!r} raised {type(exc).__name__}: {exc}"
    else:
        problem = embedding_shape_problem(embeddings, len(tensor))
    if problem is not None:
        model.embedding_output = None
        model.embedding_problem = f"self-test: {problem}"
