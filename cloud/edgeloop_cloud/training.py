"""Train a candidate: base data plus newly labelled samples, a seeded scikit-learn MLP, ONNX out.

The candidate's input is what its ``edgeloop.preprocess`` describes (a flat row of gray pixels
for the digits model); the exported ONNX graph carries that description and the label names in
its metadata, so the device needs nothing else to use it. A run with the same inputs and seed
produces the same bytes.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeloop.model_metadata import Preprocess, embed_metadata
from edgeloop_cloud import features
from edgeloop_cloud.errors import TrainingError

#: Input and output names of exported models.
INPUT_NAME = "input"
OUTPUT_LABEL = "label"
OUTPUT_PROBABILITIES = "probabilities"


def default_preprocess() -> Preprocess:
    """The digits model's input: 8x8 gray pixels scaled to 0-1, one flat row of 64 values."""
    return Preprocess(input_kind="image", width=8, height=8, color="gray", layout="flat", scale=1.0 / 255.0)


class TrainingParams(BaseModel):
    """How candidates are trained."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="Random seed of the MLP (weights and shuffling).")
    hidden_units: int = Field(default=64, ge=1, le=4096, description="Units of the single hidden layer.")
    max_iter: int = Field(default=60, ge=1, le=5000, description="Training epochs (adam).")
    batch_size: int = Field(default=64, ge=1, description="Minibatch size.")
    learning_rate: float = Field(default=0.01, gt=0, le=1, description="Initial adam learning rate.")
    new_sample_repeat: int = Field(
        default=3,
        ge=1,
        le=100,
        description="Each newly labelled sample counts this many times (drift weight).",
    )
    holdout_fraction: float = Field(
        default=0.25,
        ge=0,
        lt=1,
        description="Share of newly labelled samples kept for the gate (by id hash).",
    )
    base_seed: int = Field(default=7, description="Seed of the digits scenario the base data comes from.")


@dataclass(frozen=True)
class Example:
    """One training or evaluation image with its label and where it came from."""

    image: np.ndarray
    label: str
    sample_id: str = ""
    blob: str = ""
    sha256: str = ""


@dataclass
class TrainedModel:
    """A trained candidate before it enters the registry."""

    model: Any  # onnx.ModelProto
    labels: list[str]
    preprocess: Preprocess
    manifest: dict[str, Any] = field(default_factory=dict)

    def to_bytes(self, *, name: str | None = None, version: str | None = None) -> bytes:
        """The ONNX bytes, with the model's name and version written into its metadata."""
        embed_metadata(self.model, name=name, version=version)
        return bytes(self.model.SerializeToString())


def in_holdout(sample_id: str, fraction: float) -> bool:
    """Whether a sample belongs to the gate's held-out slice (stable: decided by its id)."""
    if fraction <= 0:
        return False
    bucket = int(hashlib.sha256(sample_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
    return bucket < fraction


def _natural(label: str) -> tuple[int, int, str]:
    return (0, int(label), label) if label.isdigit() else (1, 0, label)


def label_order(base_labels: Sequence[str], new_labels: Sequence[str]) -> list[str]:
    """The base data's labels sorted (numbers by value), then labels only new samples carry."""
    order = sorted(set(base_labels), key=_natural)
    return order + sorted(set(new_labels) - set(order), key=_natural)


def train(
    *,
    base: Sequence[Example],
    new: Sequence[Example],
    preprocess: Preprocess,
    params: TrainingParams,
    labels: Sequence[str] | None = None,
) -> TrainedModel:
    """Fit an MLP on ``base`` + ``new`` (each new example repeated) and export it to ONNX.

    Raises:
        TrainingError: fewer than two classes, or no examples.
    """
    from sklearn.neural_network import MLPClassifier

    if preprocess.layout != "flat":
        raise TrainingError(f"the MLP trainer needs layout 'flat', the preprocess says {preprocess.layout!r}")
    names = list(labels) if labels else label_order([e.label for e in base], [e.label for e in new])
    examples = list(base) + [
        e for e in sorted(new, key=lambda e: e.sample_id) for _ in range(params.new_sample_repeat)
    ]
    classes = {e.label for e in examples}
    if len(classes) < 2:
        raise TrainingError(f"training needs at least two classes, got {sorted(classes)}")
    index = {name: i for i, name in enumerate(names)}
    x = features.batch([e.image for e in examples], preprocess)
    y = np.asarray([index[e.label] for e in examples], dtype=np.int64)
    clf = MLPClassifier(
        hidden_layer_sizes=(params.hidden_units,),
        max_iter=params.max_iter,
        batch_size=params.batch_size,
        learning_rate_init=params.learning_rate,
        random_state=params.seed,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning: the epoch budget is deliberate
        clf.fit(x, y)
    missing = [n for i, n in enumerate(names) if i not in set(clf.classes_.tolist())]
    if missing:
        raise TrainingError(f"labels {missing} have no training examples; every label needs at least one")
    model = export_onnx(clf, n_features=x.shape[1], preprocess=preprocess, labels=names)
    return TrainedModel(
        model=model, labels=names, preprocess=preprocess, manifest=_manifest(new, params, clf)
    )


def export_onnx(clf: Any, *, n_features: int, preprocess: Preprocess, labels: Sequence[str]) -> Any:
    """An ``onnx.ModelProto`` of a fitted classifier with EdgeLoop's metadata."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = convert_sklearn(
            clf,
            initial_types=[(INPUT_NAME, FloatTensorType([None, n_features]))],
            options={id(clf): {"zipmap": False}},
            target_opset={"": 17, "ai.onnx.ml": 3},
            name="edgeloop_mlp",  # a fixed graph name (the default is random) keeps exports byte-identical
        )
    return embed_metadata(model, preprocess=preprocess, labels=list(labels))


def _manifest(new: Sequence[Example], params: TrainingParams, clf: Any) -> dict[str, Any]:
    import sklearn

    return {
        "params": params.model_dump(),
        "sklearn": sklearn.__version__,
        "epochs_run": int(clf.n_iter_),
        "samples": [
            {"sample_id": e.sample_id, "blob": e.blob, "sha256": e.sha256, "label": e.label}
            for e in sorted(new, key=lambda e: e.sample_id)
        ],
    }
