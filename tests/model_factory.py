"""Small ONNX models and samples for tests, built on the spot (no downloads).

- ``digits_model``: a scikit-learn MLP or logistic regression trained on the bundled 8x8
  digits, converted with skl2onnx, carrying ``edgeloop.preprocess`` (grey 8x8, flat, 0-16
  scale) and ``edgeloop.labels``;
- ``tiny_cnn``: a convolutional graph made with ``onnx.helper`` (seeded random weights,
  logits out), for image layouts and colour orders;
- ``vector_model``: a linear softmax model over a few sensor features;
- ``signed``: bytes + sha256 + Ed25519 signature, as the registry publishes them;
- ``signing_keys`` / ``write_signed_initial``: one model-signing key pair per test process and
  an initial model written with its ``.sig`` beside it (inference requires signed models);
- ``write_digit_image``: a digit as a PNG file, the way capture writes frames;
- ``FileServer``: a loopback HTTP server for model download tests.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop import signing
from edgeloop.contracts import FrameRef
from edgeloop.model_metadata import Preprocess, embed_metadata

DIGIT_LABELS = [str(i) for i in range(10)]
#: sklearn's digits are 0-16 intensities; frames on disk are 0-255 pixels.
DIGITS_PREPROCESS = Preprocess(width=8, height=8, color="gray", layout="flat", scale=16.0 / 255.0)


@functools.lru_cache(maxsize=1)
def digits() -> tuple[np.ndarray, np.ndarray]:
    """``(images, targets)``: sklearn's 1,797 digits as (N, 8, 8) float 0-16 and (N,) ints."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.images.astype(np.float32), data.target.astype(np.int64)


@functools.lru_cache(maxsize=8)
def digits_model(
    kind: str = "mlp", *, seed: int = 0, samples: int = 600, name: str = "digits", version: str = "1"
) -> bytes:
    """A digits classifier as ONNX bytes with EdgeLoop metadata (probabilities out)."""
    import warnings

    from skl2onnx import to_onnx
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    images, targets = digits()
    x = images.reshape(len(images), -1)[:samples]
    y = targets[:samples]
    clf: Any
    if kind == "mlp":
        clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=200, random_state=seed)
    elif kind == "logreg":
        clf = LogisticRegression(max_iter=300)
    else:
        raise ValueError(f"kind must be 'mlp' or 'logreg', got {kind!r}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(x, y)
    onx = to_onnx(clf, x[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    embed_metadata(onx, preprocess=DIGITS_PREPROCESS, labels=DIGIT_LABELS, name=name, version=version)
    return bytes(onx.SerializeToString())


def tiny_cnn(
    *,
    height: int = 16,
    width: int = 16,
    color: str = "gray",
    layout: str = "NCHW",
    classes: int = 3,
    seed: int = 0,
    batch: int | str = "N",
    metadata: bool = True,
    input_shape: Sequence[int | str] | None = None,
    labels: Sequence[str] | None = None,
) -> bytes:
    """Conv(4 filters 3x3) -> Relu -> GlobalAveragePool -> Flatten -> Gemm: logits."""
    from onnx import TensorProto, helper, numpy_helper

    channels = 1 if color == "gray" else 3
    rng = np.random.default_rng(seed)
    nodes = []
    inp = "input"
    if layout == "NHWC":
        nodes.append(helper.make_node("Transpose", ["input"], ["nchw"], perm=[0, 3, 1, 2]))
        inp = "nchw"
        shape: list[int | str] = [batch, height, width, channels]
    else:
        shape = [batch, channels, height, width]
    if input_shape is not None:
        shape = list(input_shape)
    nodes += [
        helper.make_node("Conv", [inp, "w", "b"], ["conv"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["pool"]),
        helper.make_node("Flatten", ["pool"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fw", "fb"], ["logits"]),
    ]
    inits = [
        numpy_helper.from_array(rng.normal(0, 1, (4, channels, 3, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, (4,)).astype(np.float32), "b"),
        numpy_helper.from_array(rng.normal(0, 1, (4, classes)).astype(np.float32), "fw"),
        numpy_helper.from_array(rng.normal(0, 0.1, (classes,)).astype(np.float32), "fb"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_cnn",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, classes])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata:
        pre = Preprocess(
            width=width,
            height=height,
            color=color,
            layout=layout,
            output_kind="logits",
        )
        names = list(labels) if labels is not None else [f"class{i}" for i in range(classes)]
        embed_metadata(model, preprocess=pre, labels=names, name="cnn", version="1")
    return bytes(model.SerializeToString())


def vector_model(*, features: int = 4, classes: int = 3, seed: int = 0, nan: bool = False) -> bytes:
    """Gemm -> Softmax over ``features`` inputs (``nan``: outputs NaN, to fail the self-test)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    weights = rng.normal(0, 1, (features, classes)).astype(np.float32)
    if nan:
        weights[:] = np.nan
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["z"]),
            helper.make_node("Softmax", ["z"], ["p"], axis=1),
        ],
        "vector",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", features])],
        [helper.make_tensor_value_info("p", TensorProto.FLOAT, ["N", classes])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.zeros(classes, np.float32), "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    pre = Preprocess(input_kind="vector", vector_size=features, scale=1.0)
    embed_metadata(model, preprocess=pre, labels=[f"state{i}" for i in range(classes)], name="sensor")
    return bytes(model.SerializeToString())


@dataclass(frozen=True)
class SignedModel:
    """A model as the registry publishes it."""

    data: bytes
    sha256: str
    signature: str

    def write(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(self.data)
        return path

    def spec(self, url: str, *, name: str = "digits", version: str = "1") -> dict[str, Any]:
        """The twin ``model`` object for this model at ``url``."""
        return {
            "name": name,
            "version": version,
            "url": url,
            "sha256": self.sha256,
            "signature": self.signature,
        }


def signed(data: bytes, private_key_pem: bytes) -> SignedModel:
    return SignedModel(data, hashlib.sha256(data).hexdigest(), signing.sign(private_key_pem, data))


@functools.lru_cache(maxsize=1)
def signing_keys() -> tuple[bytes, bytes]:
    """``(private, public)`` PEM: the model-signing key pair tests sign their models with."""
    return signing.generate_keypair()


def signing_public() -> str:
    """The public half of ``signing_keys`` as the twin's ``public_key`` takes it."""
    return signing_keys()[1].decode("ascii")


def write_signed_initial(models_dir: Path, data: bytes, private_key: bytes | None = None) -> Path:
    """``<models_dir>/initial/model.onnx`` and its ``model.onnx.sig``, as ``edgeloop deploy`` places them."""
    path = models_dir / "initial" / "model.onnx"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    key = private_key if private_key is not None else signing_keys()[0]
    path.with_name(path.name + ".sig").write_text(signing.sign(key, data), encoding="ascii")
    return path


def digit_pixels(index: int) -> np.ndarray:
    """Digit ``index`` as an 8x8 uint8 image (0-255)."""
    images, _ = digits()
    return np.clip(images[index] * 255.0 / 16.0 + 0.5, 0, 255).astype(np.uint8)


def write_digit_image(path: Path, index: int, *, size: int = 8) -> Path:
    """Write digit ``index`` as a PNG (upscaled to ``size`` pixels with nearest neighbour)."""
    import cv2

    pixels = digit_pixels(index)
    if size != 8:
        pixels = cv2.resize(pixels, (size, size), interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, encoded = cv2.imencode(".png", pixels)
    assert ok
    path.write_bytes(encoded.tobytes())
    return path


def frame_ref(
    i: int, *, file_ref: str | None = None, vector: list[float] | None = None, **extra: Any
) -> FrameRef:
    """A frame reference as capture sends it."""
    return FrameRef(
        sample_id=f"s{i:06d}",
        source_id="test",
        seq=i,
        captured_at=datetime(2026, 1, 1, tzinfo=UTC),
        kind="vector" if vector is not None else "image",
        file_ref=file_ref,
        vector=vector,
        traceparent=f"00-{i:032x}-{i + 1:016x}-01",
        **extra,
    )


class FileServer:
    """Serves a directory over HTTP on 127.0.0.1 (a stand-in for Blob Storage)."""

    def __init__(self, directory: Path) -> None:
        handler = functools.partial(_QuietHandler, directory=str(directory))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass
