"""Helpers for the trainer contract tests: labelled digit samples as PNG files, jobs, models."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
from edgeloop_cloud.trainers import LabelledSample
from edgeloop_cloud.trainers.job import TrainingJob

from tests.model_factory import digits

REPO_ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_TRAINER = REPO_ROOT / "examples" / "trainers" / "logreg"


def digit_png(index: int) -> bytes:
    """sklearn digit ``index`` as a 32x32 gray PNG (what a camera sample looks like, small)."""
    images, _ = digits()
    pixels = np.clip(images[index] * (255.0 / 16.0), 0, 255).astype(np.uint8)
    ok, png = cv2.imencode(".png", cv2.resize(pixels, (32, 32), interpolation=cv2.INTER_NEAREST))
    assert ok
    return png.tobytes()


def digit_samples(
    classes: tuple[int, ...] = (0, 1, 2), count: int = 90, audit: int = 12
) -> list[LabelledSample]:
    """``count`` samples of ``classes`` to train on, then ``audit`` audit-share samples."""
    _, targets = digits()
    picked = [i for i in range(len(targets)) if int(targets[i]) in classes][: count + audit]
    samples = []
    for n, index in enumerate(picked):
        data = digit_png(index)
        is_audit = n >= count
        samples.append(
            LabelledSample(
                sample_id=f"s{index:04d}", label=str(int(targets[index])), data=data, suffix=".png",
                device="dev1", strategy="audit" if is_audit else "margin", audit=is_audit,
                blob=f"digits/v1/2026/01/05/dev1/s{index:04d}.png.elenv",
                sha256=hashlib.sha256(data).hexdigest(),
            )
        )  # fmt: skip
    return samples


def job(samples: list[LabelledSample], *, champion: bytes | None = None, seed: int = 0) -> TrainingJob:
    return TrainingJob(
        model_name="digits", run_id="run-test", seed=seed, samples=samples, champion=champion,
        champion_version="v1" if champion else None,
    )  # fmt: skip


def relabelled(model: bytes, labels: list[str] | None) -> bytes:
    """The same ONNX with other ``edgeloop.labels`` (or every EdgeLoop metadata entry removed)."""
    import onnx

    proto = onnx.load_from_string(model)
    props = {p.key: p.value for p in proto.metadata_props}
    if labels is None:
        props = {k: v for k, v in props.items() if not k.startswith("edgeloop.")}
    else:
        props["edgeloop.labels"] = json.dumps(labels)
    onnx.helper.set_model_props(proto, props)
    return bytes(proto.SerializeToString())
