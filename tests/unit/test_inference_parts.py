"""Pieces of the inference module on their own: preprocessing, scoring maths, providers,
the model store, the batcher, the config and the HTTP endpoint."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgeloop_inference.batcher import MicroBatcher
from edgeloop_inference.config import InferenceConfig, ModelSpec, redact_url
from edgeloop_inference.preprocess import InputMismatchError, Preprocessor, SampleError, describe_from_shape
from edgeloop_inference.providers import choose_providers
from edgeloop_inference.scoring import as_probabilities, summarise
from edgeloop_inference.session import ModelRejectedError
from edgeloop_inference.store import FetchError, FetchSettings, ModelStore, UrlFetcher

from edgeloop.clock import FakeClock
from edgeloop.model_metadata import Preprocess
from edgeloop.runtime.config import validate_config
from tests import model_factory as mf


# -- preprocessing -------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("shape", "kind", "layout", "color"),
    [
        (["N", 64], "vector", "NCHW", "rgb"),
        (["N", 1, 28, 28], "image", "NCHW", "gray"),
        (["N", 3, 32, 32], "image", "NCHW", "rgb"),
        (["N", 96, 96, 3], "image", "NHWC", "rgb"),
    ],
)
def test_a_model_without_metadata_is_described_from_its_input(
    shape: list[Any], kind: str, layout: str, color: str
) -> None:
    spec = describe_from_shape(shape)
    assert (spec.input_kind, spec.color) == (kind, color)
    if kind == "image":
        assert spec.layout == layout


def test_rank_3_input_without_metadata_is_refused() -> None:
    with pytest.raises(InputMismatchError, match="rank 3"):
        describe_from_shape(["N", 8, 8])


@pytest.mark.parametrize(
    ("spec", "shape", "expected"),
    [
        (Preprocess(width=8, height=8, color="gray", layout="flat"), [None, 63], "= 64 values"),
        (Preprocess(color="gray", layout="flat"), [None, 64], "needs width and height"),
        (Preprocess(width=16, height=16, color="gray"), ["N", 1, 8, 8], "resizes to 16x16"),
        (Preprocess(color="rgb"), ["N", 1, 8, 8], "3 channel(s)"),
        (Preprocess(color="gray"), ["N", 1, "h", "w"], "no fixed height/width"),
        (Preprocess(input_kind="vector", vector_size=3), ["N", 4], "vector_size=3"),
        (Preprocess(input_kind="vector"), ["N", 1, 2, 2], "[N, features]"),
    ],
)
def test_preprocess_that_disagrees_with_the_input_is_refused(
    spec: Preprocess, shape: list[Any], expected: str
) -> None:
    with pytest.raises(InputMismatchError, match=re.escape(expected)):
        Preprocessor.build(spec, shape)


def test_image_pipeline_scales_normalises_and_lays_out() -> None:
    # given: a 2x2 RGB image, mean/std per channel, NCHW
    spec = Preprocess(width=2, height=2, color="rgb", scale=1 / 255, mean=[0.5, 0.5, 0.5], std=[0.5, 0.25, 1])
    pre = Preprocessor.build(spec, ["N", 3, 2, 2])
    pixels = np.array([[[255, 0, 51], [0, 0, 0]], [[255, 255, 255], [0, 255, 0]]], dtype=np.uint8)
    # when
    tensor = pre.to_tensor([pre.decode_array(pixels, display="x")])
    # then
    expected = ((pixels / 255.0 - 0.5) / np.array([0.5, 0.25, 1.0])).transpose(2, 0, 1)[None]
    assert tensor.shape == (1, 3, 2, 2)
    assert tensor.dtype == np.float32
    np.testing.assert_allclose(tensor, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("color", "channel0"), [("rgb", 10), ("bgr", 30), ("gray", None)])
def test_colour_order_of_decoded_files(tmp_path: Path, color: str, channel0: int | None) -> None:
    import cv2

    # given: a PNG whose pixels are R=10 G=20 B=30 (cv2 writes BGR)
    path = tmp_path / "c.png"
    cv2.imwrite(str(path), np.full((4, 4, 3), (30, 20, 10), dtype=np.uint8))
    spec = Preprocess(width=4, height=4, color=color, layout="NHWC", scale=1.0)
    pre = Preprocessor.build(spec, ["N", 4, 4, 1 if color == "gray" else 3])
    # when
    image = pre.decode_file(path, display="c.png")
    # then
    if channel0 is None:
        assert image.shape == (4, 4, 1)
        assert 15 <= int(image[0, 0, 0]) <= 22
    else:
        assert int(image[0, 0, 0]) == channel0


def test_npy_files_and_corrupt_npy(tmp_path: Path) -> None:
    pre = Preprocessor.build(Preprocess(input_kind="vector", scale=1.0), ["N", 3])
    good, bad = tmp_path / "v.npy", tmp_path / "bad.npy"
    np.save(good, np.array([1.0, 2.0, 3.0]))
    bad.write_bytes(b"\x93NUMPY garbage")
    np.testing.assert_array_equal(pre.decode_file(good, display="v.npy"), [1, 2, 3])
    with pytest.raises(SampleError, match=r"not a valid \.npy"):
        pre.decode_file(bad, display="bad.npy")
    with pytest.raises(SampleError, match="NaN"):
        pre.decode_vector([1.0, float("nan"), 2.0], display="v")


# -- scoring maths -------------------------------------------------------------------------
def test_softmax_confidence_margin_entropy() -> None:
    # given
    logits = np.array([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    # when
    probs = as_probabilities(logits, logits=True)
    order, confidence, margin, entropy = summarise(probs, top_k=2)
    # then
    expected = np.exp([2.0, 1.0, 0.0]) / np.exp([2.0, 1.0, 0.0]).sum()
    np.testing.assert_allclose(probs[0], expected)
    assert order.tolist()[0] == [0, 1]
    assert confidence[0] == pytest.approx(expected[0])
    assert margin[0] == pytest.approx(expected[0] - expected[1])
    assert margin[1] == pytest.approx(0.0)
    assert entropy[1] == pytest.approx(np.log(3))
    assert entropy[0] < entropy[1]


def test_probabilities_out_of_range_are_clipped() -> None:
    probs = as_probabilities(np.array([[1.0000001, -1e-7]]), logits=False)
    assert probs.min() >= 0.0
    assert probs.max() <= 1.0


# -- providers -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("requested", "available", "chosen", "warned"),
    [
        (["cpu"], ["CPUExecutionProvider"], ["CPUExecutionProvider"], False),
        (
            ["cuda", "cpu"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            False,
        ),
        (
            ["tensorrt", "cuda"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            ["CUDAExecutionProvider", "CPUExecutionProvider"],
            True,
        ),
        (["openvino"], ["CPUExecutionProvider"], ["CPUExecutionProvider"], True),
        (["CPUExecutionProvider", "cuda"], ["CPUExecutionProvider"], ["CPUExecutionProvider"], True),
    ],
)
def test_provider_choice(requested: list[str], available: list[str], chosen: list[str], warned: bool) -> None:
    choice = choose_providers(requested, available)
    assert choice.providers == chosen
    assert bool(choice.warnings) == warned


# -- config --------------------------------------------------------------------------------
def test_empty_twin_and_the_manifest_defaults_validate(repo_root: Path) -> None:
    manifest = json.loads((repo_root / "deployment.template.json").read_text())
    desired = manifest["modulesContent"]["inference"]["properties.desired"]
    assert validate_config(InferenceConfig, {}) == InferenceConfig()
    assert validate_config(InferenceConfig, desired).batching.max_batch == 8


@pytest.mark.parametrize(
    ("url", "ok"),
    [
        ("https://acct.blob.core.windows.net/models/m/1/model.onnx?sv=x&sig=y", True),
        ("http://127.0.0.1:10000/devstoreaccount1/models/m.onnx", True),
        ("http://localhost:8000/m.onnx", True),
        ("http://[::1]:8000/m.onnx", True),
        ("file:///models/m.onnx", True),
        ("http://example.com/m.onnx", False),
        ("ftp://127.0.0.1/m.onnx", False),
        ("file://relative/m.onnx", False),
        ("models/m.onnx", False),
    ],
)
def test_model_url_schemes(url: str, ok: bool) -> None:
    doc = {"name": "m", "version": "1", "url": url, "sha256": "a" * 64}
    if ok:
        assert ModelSpec.model_validate(doc).url == url
    else:
        with pytest.raises(ValueError, match="url"):
            ModelSpec.model_validate(doc)


def test_sas_token_never_shows_in_the_reported_config() -> None:
    spec = {
        "name": "m",
        "version": "1",
        "url": "https://a.blob.core.windows.net/m.onnx?sig=SECRET",
        "sha256": "a" * 64,
    }
    config = InferenceConfig.model_validate({"model": spec})
    assert "SECRET" not in json.dumps(config.model_dump(mode="json"))
    assert "SECRET" not in redact_url(spec["url"])
    assert config.model is not None
    assert config.model.url.endswith("SECRET")


# -- store ---------------------------------------------------------------------------------
class CountingFetcher:
    def __init__(self) -> None:
        self.calls = 0
        self.inner = UrlFetcher()

    def fetch(self, url: str, dest: Path, *, timeout: float, max_bytes: int) -> None:
        self.calls += 1
        self.inner.fetch(url, dest, timeout=timeout, max_bytes=max_bytes)


def _spec(path: Path, data: bytes, version: str = "1") -> ModelSpec:
    import hashlib

    return ModelSpec.model_validate(
        {"name": "m", "version": version, "url": path.as_uri(), "sha256": hashlib.sha256(data).hexdigest()}
    )


def test_cached_model_is_not_fetched_again(tmp_path: Path) -> None:
    # given
    data = mf.vector_model()
    source = tmp_path / "pub" / "m.onnx"
    source.parent.mkdir()
    source.write_bytes(data)
    fetcher = CountingFetcher()
    store = ModelStore(tmp_path / "models", fetcher=fetcher, clock=FakeClock())
    # when
    first = store.obtain(_spec(source, data), FetchSettings())
    source.unlink()
    second = store.obtain(_spec(source, data), FetchSettings())
    # then
    assert first == second == data
    assert fetcher.calls == 1


def test_download_retries_with_backoff_then_gives_up(tmp_path: Path) -> None:
    clock = FakeClock()
    start = clock.monotonic()
    store = ModelStore(tmp_path, fetcher=UrlFetcher(), clock=clock)
    spec = ModelSpec.model_validate(
        {"name": "m", "version": "1", "url": "http://127.0.0.1:9/m", "sha256": "a" * 64}
    )
    with pytest.raises(ModelRejectedError, match="after 3 attempt"):
        store.obtain(spec, FetchSettings(timeout_s=2, attempts=3, backoff_s=1))
    assert clock.monotonic() - start == pytest.approx(3.0)
    assert list((tmp_path / "cache").glob("*.part")) == []


def test_oversized_model_is_refused(tmp_path: Path) -> None:
    source = tmp_path / "big.onnx"
    source.write_bytes(b"x" * 2048)
    with pytest.raises(FetchError, match="over the 1024-byte limit"):
        UrlFetcher().fetch(source.as_uri(), tmp_path / "out", timeout=1, max_bytes=1024)


def test_prune_keeps_models_in_use(tmp_path: Path) -> None:
    store = ModelStore(tmp_path, fetcher=UrlFetcher(), clock=FakeClock())
    store.cache.mkdir()
    for i, name in enumerate(["a", "b", "c", "d"]):
        path = store.cache / f"{name}.onnx"
        path.write_bytes(b"x")
        import os

        os.utime(path, (1000 + i, 1000 + i))
    removed = store.prune({"a"}, keep_count=2)
    assert sorted(removed) == ["b"]
    assert sorted(p.stem for p in store.cache.glob("*.onnx")) == ["a", "c", "d"]


# -- batcher -------------------------------------------------------------------------------
def test_batcher_processes_each_item_once_even_when_stopped_mid_stream() -> None:
    # given: a slow consumer
    seen: list[int] = []

    def process(batch: list[int]) -> None:
        time.sleep(0.01)
        seen.extend(batch)

    batcher: MicroBatcher[int] = MicroBatcher(process, max_batch=4, max_wait_s=0.001)
    batcher.start()
    for i in range(200):
        batcher.submit(i)
    # when: stop with a drain deadline too short for everything
    left = batcher.stop(timeout=0.05)
    # then: each item was processed or handed back, never both
    assert sorted(seen + left) == list(range(200))
    assert left
    with pytest.raises(RuntimeError, match="stopping"):
        batcher.submit(1)


def test_batcher_survives_a_failing_batch() -> None:
    seen: list[int] = []
    calls = threading.Event()

    def process(batch: list[int]) -> None:
        if 0 in batch:
            calls.set()
            raise ValueError("boom")
        seen.extend(batch)

    batcher: MicroBatcher[int] = MicroBatcher(process, max_batch=1, max_wait_s=0)
    batcher.start()
    batcher.submit(0)
    batcher.submit(1)
    assert batcher.stop() == []
    assert seen == [1]
    assert batcher.errors == 1
