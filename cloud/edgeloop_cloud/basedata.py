"""The base data every candidate trains on: the digits scenario's clean camera frames.

The demo camera shows scikit-learn's 8x8 digits rendered by ``edgeloop.demo.scenario`` (upscaled
onto a noisy background); the base set is the scenario's ``base`` split rendered the same way,
so it goes through the same decode -> preprocess path as uploaded samples. The scenario's
``holdout`` split (clean frames of digits never trained on) is the fixed part of the gate's
held-out set.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from edgeloop.demo.scenario import ScenarioConfig, build

DIGIT_LABELS: tuple[str, ...] = tuple(str(d) for d in range(10))


@dataclass(frozen=True)
class BaseSet:
    """Rendered frames with their labels, split into train and fixed held-out parts."""

    train_images: list[np.ndarray]
    train_labels: list[str]
    holdout_images: list[np.ndarray]
    holdout_labels: list[str]
    description: dict[str, object]


@lru_cache(maxsize=4)
def load_base_set(*, seed: int = 7, limit: int | None = None) -> BaseSet:
    """The digits base set of the scenario with ``seed``; ``limit`` keeps only the first frames."""
    scenario = build(ScenarioConfig(seed=seed))
    names = scenario.class_names
    base, hold = scenario.base, scenario.holdout
    n_base = len(base) if limit is None else min(limit, len(base))
    n_hold = len(hold) if limit is None else min(limit, len(hold))
    digest = hashlib.sha256(base.frames[:n_base].tobytes() + hold.frames[:n_hold].tobytes()).hexdigest()
    description: dict[str, object] = {
        "source": "edgeloop.demo.scenario (sklearn digits rendered as camera frames)",
        "seed": seed,
        "train": n_base,
        "holdout": n_hold,
        "sha256": digest,
    }
    return BaseSet(
        train_images=list(base.frames[:n_base]),
        train_labels=[names[int(i)] for i in base.labels[:n_base]],
        holdout_images=list(hold.frames[:n_hold]),
        holdout_labels=[names[int(i)] for i in hold.labels[:n_hold]],
        description=description,
    )
