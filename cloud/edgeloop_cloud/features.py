"""Turn decoded samples into model input rows, following a model's ``edgeloop.preprocess``.

Training and the gate apply exactly the pipeline the device applies (see
``edgeloop.model_metadata``): convert to ``color`` -> resize to ``width`` x ``height`` ->
``float32 * scale`` -> ``(x - mean) / std`` -> ``layout``; a sensor vector (``input_kind``
``vector``) is ``(v * scale - mean) / std`` per feature. Each model is scored through its own
description, so a candidate and a champion with different inputs are compared on the same images.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edgeloop.model_metadata import Preprocess
from edgeloop_cloud.errors import TrainingError

_INTERPOLATION = {"area": 3, "linear": 1, "nearest": 0}  # cv2.INTER_AREA / INTER_LINEAR / INTER_NEAREST


def _to_color(image: np.ndarray, color: str) -> np.ndarray:
    import cv2

    if image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if color == "gray":
        return image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    bgr = image if image.ndim == 3 else cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    return bgr if color == "bgr" else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def image_row(image: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """One input tensor row (no batch axis) for a decoded image (BGR or gray, uint8)."""
    import cv2

    if preprocess.width is None or preprocess.height is None:
        raise TrainingError("edgeloop.preprocess needs width and height to prepare training images")
    pixels = _to_color(np.asarray(image), preprocess.color)
    if pixels.dtype != np.uint8:
        pixels = np.clip(pixels, 0, 255).astype(np.uint8)
    if pixels.shape[1] != preprocess.width or pixels.shape[0] != preprocess.height:
        pixels = cv2.resize(
            pixels,
            (preprocess.width, preprocess.height),
            interpolation=_INTERPOLATION[preprocess.interpolation],
        )
    values = pixels.astype(np.float32) * np.float32(preprocess.scale)
    if values.ndim == 2:
        values = values[:, :, None]
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    values = (values - mean) / std
    if preprocess.layout == "flat":
        return values.reshape(-1)
    if preprocess.layout == "NCHW":
        return np.transpose(values, (2, 0, 1))
    return values


def vector_row(vector: np.ndarray, preprocess: Preprocess) -> np.ndarray:
    """One input row for a sensor vector: ``(v * scale - mean) / std`` per feature."""
    values = np.asarray(vector, dtype=np.float32)
    if values.ndim != 1:
        raise TrainingError(f"the model takes feature vectors; got an array of shape {values.shape}")
    if preprocess.vector_size is not None and values.shape[0] != preprocess.vector_size:
        size = preprocess.vector_size
        raise TrainingError(f"a vector has {values.shape[0]} values; the model takes {size}")
    mean = np.asarray(preprocess.mean, dtype=np.float32)
    std = np.asarray(preprocess.std, dtype=np.float32)
    return np.asarray((values * np.float32(preprocess.scale) - mean) / std, dtype=np.float32)


def batch(images: Sequence[np.ndarray], preprocess: Preprocess) -> np.ndarray:
    """Stack rows for many samples (images, or vectors for a vector model) into one float32 batch."""
    if not images:
        raise TrainingError("no images to prepare")
    row = vector_row if preprocess.input_kind == "vector" else image_row
    return np.stack([row(img, preprocess) for img in images]).astype(np.float32)
