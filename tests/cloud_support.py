"""Helpers shared by the cloud tests: tiny trained models and held-out sets, built once."""

from __future__ import annotations

from functools import lru_cache

from edgeloop_cloud.basedata import load_base_set
from edgeloop_cloud.gate import EvalItem
from edgeloop_cloud.training import Example, TrainingParams, default_preprocess, train


@lru_cache(maxsize=8)
def digits_model(max_iter: int = 40, seed: int = 0, limit: int = 600) -> bytes:
    """ONNX bytes of a digits MLP trained on the first ``limit`` base digits."""
    base = load_base_set(limit=limit)
    examples = [
        Example(image=i, label=lbl) for i, lbl in zip(base.train_images, base.train_labels, strict=True)
    ]
    params = TrainingParams(max_iter=max_iter, seed=seed)
    return train(base=examples, new=[], preprocess=default_preprocess(), params=params).to_bytes()


@lru_cache(maxsize=2)
def holdout(limit: int = 600) -> tuple[EvalItem, ...]:
    base = load_base_set(limit=limit)
    return tuple(
        EvalItem(image=i, label=lbl) for i, lbl in zip(base.holdout_images, base.holdout_labels, strict=True)
    )
