"""Turning samples into model input: decode, colour, resize, scale, normalise, layout.

A ``Preprocessor`` is built once per loaded model from its ``Preprocess`` description and the
session's input shape; it checks that the two agree (a model whose input shape does not match
its own description is refused). ``decode`` works on one sample; ``to_tensor`` turns a list of
decoded samples into one float32 batch with a single vectorised affine step.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgeloop import rawframe
from edgeloop.errors import EdgeLoopError
from edgeloop.fileread import read_whole
from edgeloop.model_metadata import Preprocess


class SampleError(EdgeLoopError):
    """One sample cannot be turned into model input (missing, corrupt, wrong kind or size)."""


class InputMismatchError(EdgeLoopError):
    """A model's input shape disagrees with its preprocessing description."""


def _dim(value: object) -> int | None:
    return value if isinstance(value, int) and value > 0 else None


def describe_from_shape(shape: Sequence[object]) -> Preprocess:
    """A best guess for a model without ``edgeloop.preprocess``: rank 2 is a feature vector,
    rank 4 an image (NCHW when dim 1 is 1 or 3, else NHWC)."""
    if len(shape) == 2:
        return Preprocess(input_kind="vector", vector_size=_dim(shape[1]), scale=1.0)
    if len(shape) == 4:
        if _dim(shape[1]) in (1, 3):
            channels, layout, h, w = _dim(shape[1]), "NCHW", _dim(shape[2]), _dim(shape[3])
        else:
            channels, layout, h, w = _dim(shape[3]), "NHWC", _dim(shape[1]), _dim(shape[2])
        return Preprocess(
            width=w if h and w else None,
            height=h if h and w else None,
            color="gray" if channels == 1 else "rgb",
            layout=layout,
        )
    raise InputMismatchError(
        f"model input has rank {len(shape)} ({list(shape)}) and no edgeloop.preprocess metadata; "
        "expected [N, features] or an image [N, C, H, W] / [N, H, W, C]"
    )


@dataclass(frozen=True)
class Preprocessor:
    """Sample -> input tensor for one model."""

    spec: Preprocess
    input_shape: tuple[int | None, ...]
    height: int | None
    width: int | None
    features: int | None

    @classmethod
    def build(cls, spec: Preprocess, input_shape: Sequence[object]) -> Preprocessor:
        """Check ``spec`` against the model input shape. Raises ``InputMismatchError``.

        For an image model OpenCV is imported here, with the model (on the loader thread), not
        by the first frame: its import costs about 0.1-0.2 s of CPU, which the first frames
        would otherwise wait for on the scoring thread."""
        shape = tuple(_dim(d) for d in input_shape)
        if spec.input_kind == "vector":
            return cls._vector(spec, shape)
        import cv2  # noqa: F401

        return cls._image(spec, shape)

    @classmethod
    def _vector(cls, spec: Preprocess, shape: tuple[int | None, ...]) -> Preprocessor:
        if len(shape) != 2:
            raise InputMismatchError(f"a vector model needs input [N, features], this one has {list(shape)}")
        features = shape[1] or spec.vector_size
        if spec.vector_size and shape[1] and spec.vector_size != shape[1]:
            raise InputMismatchError(
                f"preprocess vector_size={spec.vector_size} but the model input takes {shape[1]} features"
            )
        return cls(spec, shape, None, None, features)

    @classmethod
    def _image(cls, spec: Preprocess, shape: tuple[int | None, ...]) -> Preprocessor:
        c = spec.channels
        if spec.layout == "flat":
            if len(shape) != 2:
                raise InputMismatchError(f"layout 'flat' needs input [N, H*W*C], this one has {list(shape)}")
            if spec.width is None or spec.height is None:
                raise InputMismatchError("layout 'flat' needs width and height in edgeloop.preprocess")
            size = spec.width * spec.height * c
            if shape[1] is not None and shape[1] != size:
                raise InputMismatchError(
                    f"preprocess gives {spec.height}x{spec.width}x{c} = {size} values but the model "
                    f"input takes {shape[1]}"
                )
            return cls(spec, shape, spec.height, spec.width, None)
        if len(shape) != 4:
            raise InputMismatchError(f"layout {spec.layout} needs a rank-4 input, this one has {list(shape)}")
        if spec.layout == "NCHW":
            mc, mh, mw = shape[1], shape[2], shape[3]
        else:
            mh, mw, mc = shape[1], shape[2], shape[3]
        if mc is not None and mc != c:
            raise InputMismatchError(
                f"preprocess color {spec.color!r} gives {c} channel(s) but the model input "
                f"{list(shape)} ({spec.layout}) takes {mc}"
            )
        h, w = spec.height or mh, spec.width or mw
        if h is None or w is None:
            raise InputMismatchError(
                f"model input {list(shape)} has no fixed height/width; set width and height in preprocess"
            )
        if (mh is not None and mh != h) or (mw is not None and mw != w):
            raise InputMismatchError(
                f"preprocess resizes to {h}x{w} but the model input {list(shape)} ({spec.layout}) "
                f"takes {mh}x{mw}"
            )
        return cls(spec, shape, h, w, None)

    # -- one sample ------------------------------------------------------------------------
    def decode_file(
        self, path: str | Path, *, display: str, sha256: str | None = None, size: int | None = None
    ) -> np.ndarray:
        """Read and decode a sample file; when ``sha256`` is given the bytes must match it (a
        file replaced by another valid image would otherwise score silently). Raises
        ``SampleError``. ``path`` may be a plain string: the scoring thread passes one, which
        spares it building a ``Path`` per frame. ``size``, the size capture recorded, lets the
        file be read in one call (``read_whole``)."""
        try:
            data = read_whole(path, size)
        except FileNotFoundError as exc:
            raise SampleError(f"sample file {display!r} not found") from exc
        except OSError as exc:
            raise SampleError(f"cannot read sample file {display!r}: {exc.strerror or exc}") from exc
        if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
            raise SampleError(
                f"sample file {display!r} ({len(data)} bytes) does not match the sha256 capture "
                "recorded: changed or damaged since capture"
            )
        if _is_npy(path):
            return self.decode_array(_load_npy(data, display), display=display)
        return self.decode_bytes(data, display=display)

    def decode_raw(self, path: Path, *, display: str) -> np.ndarray:
        """Read a raw frame file (the memory-backed path): pixels as capture decoded them, no
        image decode. A torn, short or damaged frame is refused with the reason. Raises
        ``SampleError``."""
        if self.spec.input_kind == "vector":
            raise SampleError(f"sample {display!r} is an image but the model takes feature vectors")
        try:
            image = rawframe.read(path, display=display)
        except FileNotFoundError as exc:
            raise SampleError(
                f"raw frame {display!r} not found (evicted from the frame ring, or already released)"
            ) from exc
        except rawframe.RawFrameError as exc:
            raise SampleError(str(exc)) from exc
        except OSError as exc:
            raise SampleError(f"cannot read raw frame {display!r}: {exc.strerror or exc}") from exc
        import cv2

        gray = image.ndim == 2
        if self.spec.color == "gray":
            return self._resize(image if gray else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY))
        # Resized first, then reordered or widened to three channels: both act on each pixel
        # alone, so the result is the same, on the model's few pixels instead of the frame's.
        resized = self._resize(image)
        if self.spec.color == "rgb":
            return cv2.cvtColor(resized, cv2.COLOR_GRAY2RGB if gray else cv2.COLOR_BGR2RGB)
        return cv2.cvtColor(resized, cv2.COLOR_GRAY2BGR) if gray else resized

    def decode_bytes(self, data: bytes, *, display: str) -> np.ndarray:
        """Decode an encoded image (JPEG, PNG, ...) or a vector given as bytes of an NPY."""
        if self.spec.input_kind == "vector":
            return self.decode_array(_load_npy(data, display), display=display)
        import cv2

        flag = cv2.IMREAD_GRAYSCALE if self.spec.color == "gray" else cv2.IMREAD_COLOR
        buffer = np.frombuffer(data, dtype=np.uint8)
        try:
            image = cv2.imdecode(buffer, flag) if buffer.size else None
        except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV allows
            message = str(exc).strip().splitlines()[-1][-120:]
            raise SampleError(
                f"sample {display!r} ({len(data)} bytes) refused by the decoder: {message}"
            ) from exc
        if image is None:
            raise SampleError(f"sample {display!r} ({len(data)} bytes) cannot be decoded as an image")
        if self.spec.color == "rgb":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        return self._resize(image)

    def decode_array(self, array: np.ndarray, *, display: str) -> np.ndarray:
        """An already-decoded array: a vector (1-D) or image pixels (HxW or HxWxC, RGB order)."""
        if self.spec.input_kind == "vector":
            return self.decode_vector(array.ravel().tolist(), display=display)
        if array.ndim not in (2, 3):
            raise SampleError(f"sample {display!r} is an array of shape {array.shape}, not an image")
        image = np.clip(array, 0, 255).astype(np.uint8) if array.dtype != np.uint8 else array
        image = _to_color(image, self.spec.color)
        return self._resize(image)

    def decode_vector(self, values: Sequence[float], *, display: str) -> np.ndarray:
        if self.spec.input_kind != "vector":
            raise SampleError(f"sample {display!r} is a vector but the model takes images")
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 becomes inf, refused below
            vector = np.asarray(values, dtype=np.float32)
        if self.features is not None and vector.shape != (self.features,):
            raise SampleError(f"sample {display!r} has {vector.size} values; the model takes {self.features}")
        if not np.all(np.isfinite(vector)):
            raise SampleError(f"sample {display!r} holds NaN or infinite values (or values beyond float32)")
        return vector

    def _resize(self, image: np.ndarray) -> np.ndarray:
        import cv2

        assert self.height is not None
        assert self.width is not None
        if image.shape[:2] != (self.height, self.width):
            interpolation = {
                "area": cv2.INTER_AREA,
                "linear": cv2.INTER_LINEAR,
                "nearest": cv2.INTER_NEAREST,
            }[self.spec.interpolation]
            image = cv2.resize(image, (self.width, self.height), interpolation=interpolation)
        if image.ndim == 2:
            image = image[:, :, None]
        return image

    # -- a batch ---------------------------------------------------------------------------
    def to_tensor(self, samples: Sequence[np.ndarray]) -> np.ndarray:
        """Stack decoded samples into the model's float32 input."""
        spec = self.spec
        batch = np.stack(samples).astype(np.float32)
        scale = np.float32(spec.scale)
        mean = np.asarray(spec.mean, dtype=np.float32)
        std = np.asarray(spec.std, dtype=np.float32)
        # (x * scale - mean) / std as one multiply-add, broadcast over the last axis
        batch *= scale / std
        batch -= mean / std
        if spec.input_kind == "vector":
            return batch
        if spec.layout == "NCHW":
            return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))
        if spec.layout == "flat":
            return batch.reshape(len(batch), -1)
        return batch

    def blank(self) -> np.ndarray:
        """A neutral decoded sample, for the self-test."""
        if self.spec.input_kind == "vector":
            return np.zeros(self.features or 1, dtype=np.float32)
        assert self.height is not None
        assert self.width is not None
        return np.full((self.height, self.width, self.spec.channels), 128, dtype=np.uint8)


def _is_npy(path: str | Path) -> bool:
    """Whether ``path`` names an NPY file (``.npy``, any case); ``splitext`` only for the few
    names that end so (it costs about a microsecond a frame)."""
    name = os.fspath(path)
    return name[-4:].lower() == ".npy" and os.path.splitext(name)[1].lower() == ".npy"


def _to_color(image: np.ndarray, color: str) -> np.ndarray:
    gray = image.ndim == 2 or image.shape[2] == 1
    if color == "gray":
        if gray:
            return image
        return np.asarray(
            image[:, :, :3].astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
        ).astype(np.uint8)
    rgb = np.repeat(image.reshape(image.shape[0], image.shape[1], 1), 3, axis=2) if gray else image[:, :, :3]
    return np.ascontiguousarray(rgb[:, :, ::-1]) if color == "bgr" else rgb


def _load_npy(data: bytes, display: str) -> np.ndarray:
    import io

    try:
        return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))
    except (ValueError, OSError, EOFError) as exc:
        raise SampleError(f"sample {display!r} is not a valid .npy array: {exc}") from exc
