"""Helpers shared by the cloud tests: tiny trained models and held-out sets, built once."""

from __future__ import annotations

import atexit
import hashlib
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from edgeloop_cloud.basedata_config import BaseDataConfig
from edgeloop_cloud.gate import EvalItem
from edgeloop_cloud.training import Example, TrainingParams, default_preprocess, train
from edgeloop_demo.basedata import digits_base_set, write_base_folder

from edgeloop import envelope
from edgeloop.blobstore import BlobContainer


@lru_cache(maxsize=8)
def digits_model(steps: int = 150, seed: int = 0, limit: int = 600) -> bytes:
    """ONNX bytes of a digits CNN (the built-in trainer) trained on the first ``limit`` base digits."""
    base = digits_base_set(limit=limit)
    examples = [
        Example(image=i, label=lbl) for i, lbl in zip(base.train_images, base.train_labels, strict=True)
    ]
    params = TrainingParams(scratch_steps=steps, seed=seed)
    return train(base=examples, new=[], preprocess=default_preprocess(), params=params).to_bytes()


@lru_cache(maxsize=2)
def holdout(limit: int = 600) -> tuple[EvalItem, ...]:
    base = digits_base_set(limit=limit)
    return tuple(
        EvalItem(image=i, label=lbl) for i, lbl in zip(base.holdout_images, base.holdout_labels, strict=True)
    )


def upload_sealed(
    container: BlobContainer,
    *,
    public_key: envelope.PublicKey,
    sample_id: str,
    frame: np.ndarray,
    device_id: str = "cam-1",
    day: str = "2026/01/05",
) -> str:
    """Seal a frame as PNG and upload it the way the uploader does (name, metadata, sidecar)."""
    ok, png = cv2.imencode(".png", frame)
    assert ok
    plain = png.tobytes()
    context = envelope.EnvelopeContext(sample_id=sample_id, device_id=device_id, content_type="image/png")
    sealed = envelope.seal_bytes(plain, public_key=public_key, context=context)
    name = f"digits/v1/{day}/{device_id}/{sample_id}.png.elenv"
    metadata = {
        "sample_id": sample_id,
        "kind": "image",
        "device_id": device_id,
        "key_id": public_key.key_id,
        "content_type": "image/png",
        "plaintext_sha256": hashlib.sha256(plain).hexdigest(),
        "blob_sha256": hashlib.sha256(sealed).hexdigest(),
        "strategy": "margin",
    }
    container.write(name, sealed, metadata=metadata, if_none_match="*")
    container.write(name.removesuffix(".png.elenv") + ".json", b'{"schema": "edgeloop.sidecar/1"}')
    return name


#: Cloud settings for the integration tests: a quick training and a lenient gate, so a run
#: over a few dozen samples finishes in seconds and promotes.
@lru_cache(maxsize=1)
def digits_base_folder() -> Path:
    """The demo's digits base set written once per test process as a labelled dataset folder."""
    folder = Path(tempfile.mkdtemp(prefix="edgeloop-base-data-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    return write_base_folder(folder)


def base_data_config() -> BaseDataConfig:
    """``training.base_data`` naming ``digits_base_folder()``."""
    return BaseDataConfig(folder=str(digits_base_folder()))


def cloud_test_config(base_folder: Path) -> dict[str, Any]:
    """Quick cloud settings training on the digits base set written to ``base_folder``."""
    return {
        "trigger": {"min_new_labels": 20, "cooldown_minutes": 0},
        "training": {"scratch_steps": 150, "finetune_steps": 60, "base_data": {"folder": str(base_folder)}},
        "gate": {"floor": 0.5, "max_latency_ms": 1000.0},
    }
