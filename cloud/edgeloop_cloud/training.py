"""The built-in trainer: base data plus every newly labelled sample, a small CNN, ONNX out.

The candidate's input is what its ``edgeloop.preprocess`` describes (gray pixels in NCHW layout
for the digits model); the exported ONNX graph carries that description, the label names, the
architecture and the name of its embedding output in its metadata, so the device needs nothing
else to use it. When the champion was made by this trainer (same architecture and labels),
training continues from its weights: a few hundred steps then beat a model trained from
scratch for longer. A run with the same inputs and seed produces the same bytes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeloop.model_metadata import Preprocess, embed_metadata
from edgeloop_cloud import features
from edgeloop_cloud.basedata_config import BaseDataConfig
from edgeloop_cloud.cnn.augment import Augmentation
from edgeloop_cloud.errors import TrainingError

log = logging.getLogger(__name__)

#: Input and output names of exported models.
INPUT_NAME = "input"
OUTPUT_LABEL = "label"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_EMBEDDING = "embedding"


def default_preprocess() -> Preprocess:
    """The digits model's input: frames shrunk to 16x16 gray, scaled to -1..1, NCHW."""
    return Preprocess(
        input_kind="image", width=16, height=16, color="gray", layout="NCHW",
        scale=1.0 / 255.0, mean=[0.5], std=[0.5],
    )  # fmt: skip


class TrainingParams(BaseModel):
    """How candidates are trained."""

    model_config = ConfigDict(extra="forbid")

    seed: int = Field(default=0, description="Random seed (weights, minibatch draws, augmentation).")
    scratch_steps: int = Field(
        default=600, ge=1, le=100_000, description="Minibatch steps when training from scratch."
    )
    finetune_steps: int = Field(
        default=200, ge=1, le=100_000, description="Minibatch steps when continuing from the champion."
    )
    batch_size: int = Field(default=64, ge=2, le=4096, description="Minibatch size.")
    learning_rate: float = Field(
        default=0.01, gt=0, le=1, description="Peak AdamW learning rate from scratch (cosine decay)."
    )
    finetune_learning_rate: float = Field(
        default=0.003, gt=0, le=1, description="Peak AdamW learning rate when continuing from the champion."
    )
    weight_decay: float = Field(default=1e-4, ge=0, le=1, description="AdamW weight decay.")
    label_smoothing: float = Field(default=0.05, ge=0, lt=1, description="Cross-entropy label smoothing.")
    new_share: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description=(
            "Share of each minibatch drawn from newly labelled samples (the world as devices see it "
            "now) once there are any; the rest comes from the base data. Classes are balanced in both."
        ),
    )
    continue_from_champion: bool = Field(
        default=True,
        description="Start from the champion's weights when it has this trainer's architecture and labels.",
    )
    widths: tuple[int, int, int] = Field(
        default=(16, 32, 64), description="Channels of the three convolutions."
    )
    embedding_size: int = Field(
        default=32, ge=2, le=64, description="Size of the embedding output the filter's novelty uses."
    )
    augmentation: Augmentation = Field(
        default_factory=Augmentation, description="Generic camera perturbations of training images."
    )
    base_data: BaseDataConfig | None = Field(
        default=None,
        description=(
            "The labelled dataset every candidate trains on, with the gate's fixed hold-out inside it; "
            "unset: the built-in trainer trains on the labelled samples alone and the gate judges on the "
            "audit items alone. Trainers of other kinds get its reference as base_data."
        ),
    )


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


def _natural(label: str) -> tuple[int, int, str]:
    return (0, int(label), label) if label.isdigit() else (1, 0, label)


def label_order(base_labels: Sequence[str], new_labels: Sequence[str]) -> list[str]:
    """The base data's labels sorted (numbers by value), then labels only new samples carry."""
    order = sorted(set(base_labels), key=_natural)
    return order + sorted(set(new_labels) - set(order), key=_natural)


def _check_inputs(
    base: Sequence[Example], new: Sequence[Example], preprocess: Preprocess, names: list[str]
) -> None:
    if preprocess.input_kind != "image" or preprocess.layout != "NCHW":
        raise TrainingError(
            "the built-in trainer needs image input in layout 'NCHW', the preprocess says "
            f"{preprocess.input_kind!r} / {preprocess.layout!r}"
        )
    present = {e.label for e in (*base, *new)}
    if len(present) < 2:
        raise TrainingError(f"training needs at least two classes, got {sorted(present)}")
    missing = [n for n in names if n not in present]
    if missing:
        raise TrainingError(f"labels {missing} have no training examples; every label needs at least one")
    unknown = sorted(present - set(names))
    if unknown:
        raise TrainingError(f"examples carry labels {unknown} that are not among the model's labels {names}")


def train(
    *,
    base: Sequence[Example],
    new: Sequence[Example],
    preprocess: Preprocess,
    params: TrainingParams,
    labels: Sequence[str] | None = None,
    init: bytes | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> TrainedModel:
    """Fit the CNN on ``base`` + every ``new`` example and export it to ONNX.

    ``init`` is the champion's ONNX: when it was made by this trainer with the same labels and
    ``params.continue_from_champion`` is on, training continues from its weights.
    ``progress(step, steps, loss)`` is called every 50 steps.

    Raises:
        TrainingError: fewer than two classes, a label without examples, or a preprocess this
            trainer cannot train for.
    """
    from edgeloop_cloud.cnn.export import to_onnx
    from edgeloop_cloud.cnn.fit import FitPlan, fit
    from edgeloop_cloud.cnn.net import NetShape

    names = list(labels) if labels else label_order([e.label for e in base], [e.label for e in new])
    _check_inputs(base, new, preprocess, names)
    ordered_new = sorted(new, key=lambda e: e.sample_id)
    examples = [*base, *ordered_new]
    index = {name: i for i, name in enumerate(names)}
    x = features.batch([e.image for e in examples], preprocess)
    y = np.asarray([index[e.label] for e in examples], dtype=np.int64)
    is_new = np.r_[np.zeros(len(base), bool), np.ones(len(ordered_new), bool)]
    shape = NetShape(
        channels_in=preprocess.channels,
        classes=len(names),
        widths=params.widths,
        embedding=params.embedding_size,
    )
    start = _champion_weights(init, shape, names) if params.continue_from_champion else None
    plan = FitPlan(
        steps=params.finetune_steps if start else params.scratch_steps,
        batch_size=params.batch_size,
        learning_rate=params.finetune_learning_rate if start else params.learning_rate,
        weight_decay=params.weight_decay,
        new_share=params.new_share,
        label_smoothing=params.label_smoothing,
        augmentation=params.augmentation,
    )
    log.info(
        "training on %d base + %d new examples, %d steps %s",
        len(base), len(ordered_new), plan.steps, "from the champion" if start else "from scratch",
    )  # fmt: skip
    result = fit(
        x=x, y=y, is_new=is_new, shape=shape, plan=plan, seed=params.seed, init=start, progress=progress
    )
    model = embed_metadata(
        to_onnx(result.net, height=int(x.shape[2]), width=int(x.shape[3])),
        preprocess=preprocess,
        labels=names,
    )
    manifest = _manifest(
        ordered_new, params, steps=result.steps, loss=result.final_loss, continued=bool(start)
    )
    return TrainedModel(model=model, labels=names, preprocess=preprocess, manifest=manifest)


def _champion_weights(init: bytes | None, shape: Any, names: list[str]) -> Any:
    """The champion's weights to continue from, or None to train from scratch."""
    from edgeloop_cloud.cnn.export import read_weights

    if init is None:
        return None
    found = read_weights(init)
    if found is None:
        log.info("the champion was not made by this trainer; training from scratch")
        return None
    if found.shape != shape or found.labels != names:
        log.info("the champion's architecture or labels differ; training from scratch")
        return None
    return found.weights


def _manifest(
    new: Sequence[Example], params: TrainingParams, *, steps: int, loss: float, continued: bool
) -> dict[str, Any]:
    import torch

    return {
        "trainer": "edgeloop.cnn/1",
        "params": params.model_dump(mode="json"),
        "torch": torch.__version__,
        "steps_run": steps,
        "final_loss": loss,
        "continued_from_champion": continued,
        "samples": [
            {"sample_id": e.sample_id, "blob": e.blob, "sha256": e.sha256, "label": e.label} for e in new
        ],
    }
