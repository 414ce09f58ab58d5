"""The base data set every candidate trains on: scikit-learn's 8x8 digits rendered as camera images.

Each digit (ink 0-16) is drawn bright on a dark background and upscaled to ``size`` pixels,
which is how the demo camera shows them before drift, so the base data goes through the same
decode -> preprocess path as uploaded samples. A fixed share (every ``holdout_every``-th digit)
is never trained on and forms the fixed part of the gate's held-out set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

DIGIT_LABELS: tuple[str, ...] = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class BaseSet:
    """Rendered images with their labels, split into train and fixed held-out parts."""

    train_images: list[np.ndarray]
    train_labels: list[str]
    holdout_images: list[np.ndarray]
    holdout_labels: list[str]
    description: dict[str, object]


def render_digit(pixels: np.ndarray, *, size: int = 32) -> np.ndarray:
    """An 8x8 digit (values 0-16) as a ``size`` x ``size`` gray uint8 image, ink bright."""
    gray = np.clip(np.asarray(pixels, dtype=np.float32).reshape(8, 8) * (255.0 / 16.0), 0, 255)
    scale = max(1, size // 8)
    return np.kron(gray, np.ones((scale, scale), dtype=np.float32)).astype(np.uint8)


@lru_cache(maxsize=4)
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return np.asarray(data.images), np.asarray(data.target)


def load_base_set(*, size: int = 32, holdout_every: int = 5, limit: int | None = None) -> BaseSet:
    """The digits base set; ``limit`` keeps only the first digits (quick tests)."""
    images, targets = _digits()
    if limit is not None:
        images, targets = images[:limit], targets[:limit]
    train_images, train_labels, hold_images, hold_labels = [], [], [], []
    for index, (digit, target) in enumerate(zip(images, targets, strict=True)):
        image, label = render_digit(digit, size=size), str(int(target))
        if index % holdout_every == 0:
            hold_images.append(image)
            hold_labels.append(label)
        else:
            train_images.append(image)
            train_labels.append(label)
    digest = hashlib.sha256(np.ascontiguousarray(images).tobytes() + targets.tobytes()).hexdigest()
    description: dict[str, object] = {
        "source": "sklearn.datasets.load_digits",
        "rendered_size": size,
        "holdout_every": holdout_every,
        "count": len(targets),
        "train": len(train_labels),
        "holdout": len(hold_labels),
        "sha256": digest,
    }
    return BaseSet(train_images, train_labels, hold_images, hold_labels, description)
