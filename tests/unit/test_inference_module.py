"""The inference module driven through the in-memory hub: scoring, batching, model swaps."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
from edgeloop_inference import scoring
from edgeloop_inference.module import InferenceModule, Job, Scored

from edgeloop import signing
from edgeloop.clock import FakeClock
from edgeloop.contracts import FrameRef, Prediction
from edgeloop.errors import MessageTooLargeError
from edgeloop.runtime import InboundMessage, ModuleRuntime
from edgeloop.runtime.codec import decode
from edgeloop.runtime.fake import FakeHubClient
from tests import model_factory as mf
from tests.support import wait_for


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return mf.signing_keys()


class Harness:
    """The module on a runtime thread with a fake hub, sample and model folders under tmp."""

    def __init__(
        self,
        root: Path,
        desired: dict[str, Any] | None = None,
        *,
        initial: bytes | None = None,
        fetcher: Any = None,
    ) -> None:
        self.samples = root / "samples"
        self.models = root / "models"
        self.published = root / "published"
        for d in (self.samples, self.models, self.published):
            d.mkdir(parents=True, exist_ok=True)
        if initial is not None:
            mf.write_signed_initial(self.models, initial)
        desired = dict(desired or {})
        if not {"public_key", "public_key_file", "allow_unsigned"} & desired.keys():
            desired["public_key"] = mf.signing_public()
        self.hub = FakeHubClient(desired)
        self.module = InferenceModule(
            samples_dir=self.samples, models_dir=self.models, clock=FakeClock(), fetcher=fetcher
        )
        self.runtime = ModuleRuntime(self.module, client=self.hub, tick_interval=0.05)
        self.thread = threading.Thread(target=self.runtime.run, daemon=True)
        self._n = 0

    def __enter__(self) -> Harness:
        self.thread.start()
        wait_for(lambda: self.runtime.ctx is not None and self.module._ctx is not None, what="start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.thread.is_alive():
            self.runtime.request_stop("test over")
            self.thread.join(30)

    # -- helpers ---------------------------------------------------------------------------
    def publish(
        self, data: bytes, private_key: bytes, *, name: str = "digits", version: str = "1"
    ) -> dict[str, Any]:
        model = mf.signed(data, private_key)
        path = model.write(self.published / f"{name}-{version}.onnx")
        return model.spec(path.as_uri(), name=name, version=version)

    def digit_frames(self, indices: list[int], *, size: int = 16) -> list[FrameRef]:
        frames = []
        for i in indices:
            self._n += 1
            ref = f"frames/d{self._n:06d}.png"
            mf.write_digit_image(self.samples / ref, i, size=size)
            frames.append(mf.frame_ref(self._n, file_ref=ref))
        return frames

    def predictions(self) -> list[Prediction]:
        return [p for p in self.hub.sent_items("predictions") if isinstance(p, Prediction)]

    def wait_predictions(self, count: int, timeout: float = 20.0) -> list[Prediction]:
        wait_for(lambda: len(self.predictions()) >= count, timeout, f"{count} predictions")
        return self.predictions()

    def model(self) -> dict[str, Any]:
        return dict(self.hub.reported.get("model", {}))

    def wait_model(self, **expected: Any) -> dict[str, Any]:
        wait_for(lambda: all(self.model().get(k) == v for k, v in expected.items()), what=f"model {expected}")
        return self.model()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        yield h


def reference_labels(indices: list[int]) -> list[str]:
    session = ort.InferenceSession(mf.digits_model(), providers=["CPUExecutionProvider"])
    images, _ = mf.digits()
    probs = session.run(["probabilities"], {"X": images[indices].reshape(len(indices), -1)})[0]
    return [str(int(i)) for i in np.argmax(probs, axis=1)]


# -- scoring -------------------------------------------------------------------------------
def test_scores_digit_frames_like_the_bare_model(harness: Harness) -> None:
    # given
    indices = list(range(1000, 1030))
    frames = harness.digit_frames(indices)
    # when
    harness.hub.push_input("frames", frames, max_batch=10)
    preds = harness.wait_predictions(30)
    # then
    by_id = {p.sample_id: p for p in preds}
    assert [by_id[f.sample_id].label for f in frames] == reference_labels(indices)
    for frame in frames:
        p = by_id[frame.sample_id]
        assert p.status == "ok"
        assert (p.model_name, p.model_version) == ("digits", "1")
        assert p.traceparent == frame.traceparent
        assert p.frame == frame
        assert len(p.top_k) == 3
        assert p.top_k[0].label == p.label
        assert p.confidence == pytest.approx(max(p.scores), abs=1e-5)
        assert p.margin == pytest.approx(p.top_k[0].score - p.top_k[1].score, abs=1e-5)
        assert sum(p.scores) == pytest.approx(1.0, abs=1e-4)
        assert p.labels == mf.DIGIT_LABELS
        assert p.entropy is not None
        assert p.entropy >= 0
        assert p.latency_ms is not None


def test_missing_and_corrupt_files_give_error_predictions(harness: Harness) -> None:
    # given
    good = harness.digit_frames([5])
    (harness.samples / "frames/corrupt.png").write_bytes(b"not a png at all")
    bad = [
        mf.frame_ref(900, file_ref="frames/missing.png"),
        mf.frame_ref(901, file_ref="frames/corrupt.png"),
        mf.frame_ref(902, vector=[1.0, 2.0]),
    ]
    # when
    harness.hub.push_input("frames", [*bad, *good])
    preds = {p.sample_id: p for p in harness.wait_predictions(4)}
    # then
    assert preds[good[0].sample_id].status == "ok"
    reasons = {p.sample_id: p.error or "" for p in preds.values() if p.status == "error"}
    assert "not found" in reasons["s000900"]
    assert "cannot be decoded" in reasons["s000901"]
    assert "vector but the model takes images" in reasons["s000902"]
    assert all(preds[b.sample_id].traceparent == b.traceparent for b in bad)
    assert harness.module.stats()["sample_errors"] == 3


@pytest.mark.parametrize(("color", "layout"), [("gray", "NCHW"), ("rgb", "NHWC"), ("bgr", "NCHW")])
def test_tiny_cnn_layouts_and_softmax(tmp_path: Path, color: str, layout: str) -> None:
    # given: a CNN emitting logits, frames 40x30 colour PNGs resized to its 16x16 input
    import cv2

    cnn = mf.tiny_cnn(color=color, layout=layout, classes=4)
    with Harness(tmp_path, initial=cnn) as h:
        h.wait_model(status="loaded")
        rng = np.random.default_rng(1)
        frames = []
        for i in range(6):
            ref = f"frames/c{i}.png"
            (h.samples / "frames").mkdir(exist_ok=True)
            cv2.imwrite(str(h.samples / ref), rng.integers(0, 255, (30, 40, 3), dtype=np.uint8))
            frames.append(mf.frame_ref(i, file_ref=ref))
        # when
        h.hub.push_input("frames", frames)
        preds = h.wait_predictions(6)
    # then
    assert all(p.status == "ok" for p in preds)
    assert all(sum(p.scores) == pytest.approx(1.0, abs=1e-4) for p in preds)
    assert all(p.label is not None and p.label.startswith("class") for p in preds)


def test_vector_model_scores_inline_vectors(tmp_path: Path) -> None:
    with Harness(tmp_path, initial=mf.vector_model(features=4)) as h:
        h.wait_model(status="loaded")
        # when
        h.hub.push_input(
            "frames", [mf.frame_ref(1, vector=[0.1, 0.2, 0.3, 0.4]), mf.frame_ref(2, vector=[1.0])]
        )
        preds = {p.sample_id: p for p in h.wait_predictions(2)}
    # then
    assert preds["s000001"].status == "ok"
    assert preds["s000001"].label in {"state0", "state1", "state2"}
    assert preds["s000002"].status == "error"
    assert "has 1 values; the model takes 4" in (preds["s000002"].error or "")


def test_a_prediction_failing_its_contract_leaves_as_an_error_and_its_run_mates_as_scored(
    tmp_path: Path,
) -> None:
    # given: a model whose float32 sums overflow for one sample, so its scores are NaN
    desired = {"batching": {"max_batch": 8, "max_wait_ms": 1500}}
    with Harness(tmp_path, desired, initial=mf.vector_model(features=4)) as h:
        h.wait_model(status="loaded")
        frames = [
            mf.frame_ref(1, vector=[0.1, 0.2, 0.3, 0.4]),
            mf.frame_ref(2, vector=[3e38] * 4),
            mf.frame_ref(3, vector=[0.4, 0.3, 0.2, 0.1]),
        ]
        # when: the three are scored in one run
        h.hub.push_input("frames", frames)
        preds = {p.sample_id: p for p in h.wait_predictions(3)}
        wait_for(lambda: len(h.hub.acknowledged) == 1, what="the frames message acknowledged")
        stats = h.module.stats()
    # then: the NaN sample is accounted for with the reason, its mates are scored
    assert [preds[f"s00000{i}"].status for i in (1, 2, 3)] == ["ok", "error", "ok"]
    assert "fails its contract: confidence" in (preds["s000002"].error or "")
    assert stats["sample_errors"] == 1
    assert stats["batchSizes"] == {"3": 1}


def test_without_any_model_every_sample_gets_an_error_record(tmp_path: Path) -> None:
    with Harness(tmp_path) as h:
        h.wait_model(status="none")
        h.hub.push_input("frames", h.digit_frames([1, 2]))
        preds = h.wait_predictions(2)
    assert {p.status for p in preds} == {"error"}
    assert "no model loaded" in (preds[0].error or "")


# -- batching ------------------------------------------------------------------------------
def test_batches_fill_up_to_max_batch(tmp_path: Path) -> None:
    desired = {"batching": {"max_batch": 4, "max_wait_ms": 500}}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        # when: ten frames arrive at once
        h.hub.push_input("frames", h.digit_frames(list(range(10))))
        h.wait_predictions(10)
        sizes = h.module.stats()["batchSizes"]
    # then
    assert sizes == {"2": 1, "4": 2}


def test_a_lone_frame_is_scored_after_max_wait(tmp_path: Path) -> None:
    desired = {"batching": {"max_batch": 64, "max_wait_ms": 30}}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        h.hub.push_input("frames", h.digit_frames([3]))
        preds = h.wait_predictions(1)
    assert preds[0].status == "ok"


def test_frames_from_separate_messages_share_a_batch(tmp_path: Path) -> None:
    desired = {"batching": {"max_batch": 8, "max_wait_ms": 1500}}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        frames = h.digit_frames(list(range(8)))
        # when: eight messages of one frame each
        for frame in frames:
            h.hub.push_input("frames", [frame])
        h.wait_predictions(8)
        sizes = h.module.stats()["batchSizes"]
    assert sizes == {"8": 1}


def test_stop_scores_everything_already_received(tmp_path: Path) -> None:
    # given: batches that would wait 10 s to fill
    desired = {"batching": {"max_batch": 500, "max_wait_ms": 5000}}
    h = Harness(tmp_path, desired, initial=mf.digits_model())
    with h:
        h.wait_model(status="loaded")
        frames = h.digit_frames(list(range(20)))
        h.hub.push_input("frames", frames)
    # then: stopping did not wait for the batch to fill and lost nothing
    ids = [p.sample_id for p in h.predictions()]
    assert sorted(ids) == sorted(f.sample_id for f in frames)
    assert all(p.status == "ok" for p in h.predictions())


def test_a_frames_message_is_acknowledged_once_every_prediction_from_it_is_sent(tmp_path: Path) -> None:
    # given: batches of 4 that cut across messages of 6 and 3 frames
    desired = {"batching": {"max_batch": 4, "max_wait_ms": 200}}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        sent_at_ack: list[set[str]] = []
        record = h.hub.acknowledge

        def acknowledge(message: InboundMessage) -> None:
            sent_at_ack.append({p.sample_id for p in h.predictions()})
            record(message)

        h.hub.acknowledge = acknowledge  # type: ignore[method-assign]
        first, second = h.digit_frames(list(range(6))), h.digit_frames([1, 2, 3])
        # when
        h.hub.push_input("frames", first)
        h.hub.push_input("frames", second)
        h.wait_predictions(9)
        wait_for(lambda: len(h.hub.acknowledged) == 2, what="two acknowledgements")
    # then: each message was acknowledged in order, after all of its own predictions were sent
    assert [len(decode(m.body)) for m in h.hub.acknowledged] == [6, 3]
    assert {f.sample_id for f in first} <= sent_at_ack[0]
    assert {f.sample_id for f in second} <= sent_at_ack[1]


# -- model swaps ---------------------------------------------------------------------------
def test_twin_model_is_fetched_verified_and_swapped_in(harness: Harness, keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    spec = harness.publish(mf.digits_model("logreg", version="2"), private, version="2")
    with mf.FileServer(harness.published) as server:
        spec["url"] = f"{server.url}/digits-2.onnx"
        # when
        harness.hub.patch_desired({"public_key": public.decode(), "model": spec})
        model = harness.wait_model(status="loaded", version="2")
    # then
    assert model["sha256"] == spec["sha256"]
    assert model["keyId"] == signing.key_id(public)
    assert model["previous"]["version"] == "1"
    assert (harness.models / "cache" / f"{spec['sha256']}.onnx").exists()
    harness.hub.push_input("frames", harness.digit_frames([7]))
    assert harness.wait_predictions(1)[0].model_version == "2"


def test_swap_under_load_loses_and_duplicates_nothing(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    desired = {"public_key": public.decode(), "batching": {"max_batch": 8, "max_wait_ms": 5}}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        frames = h.digit_frames([i % 50 for i in range(600)])
        spec = h.publish(mf.digits_model("logreg", version="2"), private, version="2")
        sender_done = threading.Event()

        def feed() -> None:
            for start in range(0, len(frames), 5):
                h.hub.push_input("frames", frames[start : start + 5])
                time.sleep(0.002)
            sender_done.set()

        sender = threading.Thread(target=feed)
        # when: the model changes while frames stream in
        sender.start()
        wait_for(lambda: len(h.predictions()) >= 50, what="first predictions")
        h.hub.patch_desired({"model": spec})
        sender.join(60)
        preds = h.wait_predictions(len(frames), timeout=60)
    # then
    counts = Counter(p.sample_id for p in preds)
    assert sorted(counts) == sorted(f.sample_id for f in frames)
    assert max(counts.values()) == 1
    assert all(p.status == "ok" for p in preds)
    order = {f.sample_id: i for i, f in enumerate(frames)}
    versions = [p.model_version for p in sorted(preds, key=lambda p: order[p.sample_id])]
    switch = versions.index("2")
    assert set(versions[:switch]) == {"1"}
    assert set(versions[switch:]) == {"2"}


def _other_signature(spec: dict[str, Any], data: bytes) -> None:
    other_private, _ = signing.generate_keypair()
    spec["signature"] = signing.sign(other_private, data)


def _wrong_hash(spec: dict[str, Any], data: bytes) -> None:
    spec["sha256"] = "0" * 64


def _unreachable(spec: dict[str, Any], data: bytes) -> None:
    spec["url"] = "http://127.0.0.1:9/model.onnx"


def _no_signature(spec: dict[str, Any], data: bytes) -> None:
    spec["signature"] = None


def _missing_file(spec: dict[str, Any], data: bytes) -> None:
    spec["url"] = spec["url"] + ".gone"


@pytest.mark.parametrize(
    ("model", "mutate", "expected"),
    [
        (lambda: mf.digits_model("logreg"), _other_signature, "bad signature"),
        (lambda: mf.digits_model("logreg"), _wrong_hash, "sha256 mismatch"),
        (lambda: mf.digits_model("logreg"), _unreachable, "download failed"),
        (lambda: mf.digits_model("logreg"), _missing_file, "download failed"),
        (lambda: mf.digits_model("logreg"), _no_signature, "has no signature"),
        (lambda: mf.tiny_cnn(input_shape=["N", 1, 8, 8]), None, "wrong input for this model"),
        (lambda: mf.tiny_cnn(color="rgb", input_shape=["N", 1, 16, 16]), None, "3 channel(s)"),
        (lambda: mf.vector_model(nan=True), None, "NaN"),
        (lambda: b"definitely not onnx", None, "cannot load the model"),
    ],
    ids=[
        "signature",
        "hash",
        "unreachable",
        "missing",
        "unsigned",
        "input-size",
        "channels",
        "nan",
        "garbage",
    ],
)
def test_a_bad_model_never_replaces_the_good_one(
    harness: Harness, keys: tuple[bytes, bytes], model: Any, mutate: Any, expected: str
) -> None:
    # given
    private, public = keys
    data = model()
    spec = harness.publish(data, private, version="9")
    if mutate is not None:
        mutate(spec, data)
    # when
    harness.hub.patch_desired({"public_key": public.decode(), "download_attempts": 1, "model": spec})
    reported = harness.wait_model(status="failed")
    # then
    assert expected in reported["error"]
    assert reported["version"] == "1"
    assert reported["failed"]["version"] == "9"
    harness.hub.push_input("frames", harness.digit_frames([4]))
    pred = harness.wait_predictions(1)[0]
    assert (pred.status, pred.model_version) == ("ok", "1")


def test_rollback_serves_the_previous_model(harness: Harness, keys: tuple[bytes, bytes]) -> None:
    # given: version 2 replaced the initial model
    private, public = keys
    spec = harness.publish(mf.digits_model("logreg"), private, version="2")
    harness.hub.patch_desired({"public_key": public.decode(), "model": spec})
    harness.wait_model(status="loaded", version="2")
    # when
    response = harness.hub.call_method("rollback")
    # then
    assert response.status == 200
    assert response.payload["version"] == "1"
    assert response.payload["previous"]["version"] == "2"
    assert harness.wait_model(status="rolledBack")["version"] == "1"
    harness.hub.push_input("frames", harness.digit_frames([4]))
    assert harness.wait_predictions(1)[0].model_version == "1"


def test_rollback_without_previous_model_is_409(harness: Harness) -> None:
    response = harness.hub.call_method("rollback")
    assert response.status == 409
    assert "no previous model" in response.payload["error"]


def test_load_model_method_answers_with_the_outcome(harness: Harness, keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    assert harness.hub.call_method("setConfig", {"public_key": public.decode()}).status == 200
    good = harness.publish(mf.digits_model("logreg"), private, version="3")
    bad = dict(good, version="4", sha256="1" * 64)
    # when
    ok = harness.hub.call_method("loadModel", good, timeout=60)
    refused = harness.hub.call_method("loadModel", bad, timeout=60)
    invalid = harness.hub.call_method("loadModel", {"name": "x"})
    # then
    assert (ok.status, ok.payload["version"]) == (200, "3")
    assert refused.status == 400
    assert "sha256 mismatch" in refused.payload["error"]
    assert invalid.status == 400
    assert "version" in invalid.payload["error"]
    assert harness.hub.call_method("getModel").payload["version"] == "3"


def test_get_model_reports_latency_percentiles(harness: Harness) -> None:
    harness.hub.push_input("frames", harness.digit_frames(list(range(16))))
    harness.wait_predictions(16)
    payload = harness.hub.call_method("getModel").payload
    run = payload["latencyMs"]["run"]
    assert run["count"] >= 1
    assert 0 <= run["p50"] <= run["p90"] <= run["p99"]
    assert payload["latencyMs"]["sample"]["count"] == 16
    assert payload["providers"] == ["CPUExecutionProvider"]


def test_unavailable_provider_falls_back_to_cpu_with_a_warning(tmp_path: Path) -> None:
    with Harness(tmp_path, {"providers": ["tensorrt", "cuda"]}, initial=mf.digits_model()) as h:
        model = h.wait_model(status="loaded")
    assert model["providers"] == ["CPUExecutionProvider"]
    assert any("TensorrtExecutionProvider is not available" in w for w in model["warnings"])
    assert any("falling back to CPU" in w for w in model["warnings"])


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"public_key": None, "public_key_file": "/nonexistent/key.pub"}, "cannot read key file"),
        ({"public_key_file": "/keys/model-signing.pub"}, "not both"),
        ({"public_key": "hello"}, "PEM public key"),
        (
            {"model": {"name": "m", "version": "1", "url": "http://10.1.2.3/m.onnx", "sha256": "a" * 64}},
            "loopback",
        ),
        ({"batching": {"max_batch": 0}}, "batching.max_batch"),
        ({"preprocess": {"layout": "CHW"}}, "layout"),
    ],
)
def test_bad_settings_are_refused_and_the_old_ones_stay(
    harness: Harness, patch: dict[str, Any], expected: str
) -> None:
    harness.hub.patch_desired(patch)
    wait_for(lambda: harness.hub.reported.get("configError") is not None)
    assert expected in harness.hub.reported["configError"]["reason"]
    assert harness.model()["version"] == "1"


def test_preprocess_override_reloads_the_model(harness: Harness) -> None:
    # when: the twin overrides the scale so every digit looks blank
    harness.hub.patch_desired({"preprocess": {"scale": 1e-6}, "labels": list("abcdefghij")})
    wait_for(
        lambda: harness.module.models.current is not None and harness.module.models.current.labels[0] == "a"
    )
    harness.hub.push_input("frames", harness.digit_frames([1]))
    pred = harness.wait_predictions(1)[0]
    # then
    assert pred.label in list("abcdefghij")
    assert pred.labels == list("abcdefghij")


class GatedFetcher:
    """Copies file URLs, holding any URL containing 'slow' until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.fetched: list[str] = []

    def fetch(self, url: str, dest: Path, *, timeout: float, max_bytes: int) -> None:
        from edgeloop_inference.store import UrlFetcher

        if "slow" in url:
            self.release.wait(20)
        self.fetched.append(url)
        UrlFetcher().fetch(url, dest, timeout=timeout, max_bytes=max_bytes)


def test_a_newer_twin_model_supersedes_one_still_waiting(tmp_path: Path, keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    fetcher = GatedFetcher()
    with Harness(tmp_path, {"public_key": public.decode()}, initial=mf.digits_model(), fetcher=fetcher) as h:
        h.wait_model(status="loaded")
        slow = h.publish(mf.digits_model("logreg"), private, name="slow", version="2")
        v3 = h.publish(mf.digits_model("logreg", seed=1, samples=500), private, version="3")
        v4 = h.publish(mf.digits_model("mlp", seed=2, samples=500), private, version="4")
        # when: v2 hangs in download while the twin moves on to v3, then v4
        h.hub.patch_desired({"model": slow})
        wait_for(lambda: h.module.models.loading, what="v2 loading")
        h.hub.patch_desired({"model": v3})
        h.hub.patch_desired({"model": v4})
        # the runtime thread applies patches in turn: let it take in v4 before v2 finishes
        wait_for(lambda: h.hub.reported.get("configVersion") == h.hub.desired["$version"], what="v4 applied")
        fetcher.release.set()
        model = h.wait_model(status="loaded", version="4")
    # then: v3 was never fetched; v2 was (it was under way) but never served
    assert not any("digits-3" in url for url in fetcher.fetched)
    assert h.module.models.skipped == 2
    assert h.module.models.loads == 2
    assert model["name"] == "digits"
    assert model["previous"]["version"] == "1"


@pytest.mark.parametrize(("verify", "status"), [(True, "error"), (False, "ok")])
def test_a_file_changed_since_capture_is_caught_by_the_frames_sha256(
    tmp_path: Path, verify: bool, status: str
) -> None:
    import hashlib

    with Harness(tmp_path, {"verify_sample_hash": verify}, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        # given: capture hashed digit 1, then the file was replaced by digit 2
        original = mf.write_digit_image(h.samples / "frames" / "t.png", 1).read_bytes()
        mf.write_digit_image(h.samples / "frames" / "t.png", 2)
        frame = mf.frame_ref(1, file_ref="frames/t.png", sha256=hashlib.sha256(original).hexdigest())
        # when
        h.hub.push_input("frames", [frame])
        pred = h.wait_predictions(1)[0]
    # then
    assert pred.status == status
    if status == "error":
        assert "does not match the sha256" in (pred.error or "")


def test_a_rollback_outlives_a_restart_until_the_twin_changes(
    tmp_path: Path, keys: tuple[bytes, bytes]
) -> None:
    private, public = keys
    initial = mf.digits_model()
    with Harness(tmp_path, {"public_key": public.decode()}, initial=initial) as h:
        v2 = h.publish(mf.digits_model("logreg"), private, version="2")
        v3 = h.publish(mf.digits_model("logreg", seed=1, samples=500), private, version="3")
        h.hub.patch_desired({"model": v2})
        h.wait_model(status="loaded", version="2")
        h.hub.patch_desired({"model": v3})
        h.wait_model(status="loaded", version="3")
        # given: v3 was rolled back to v2 (a cached twin model)
        assert h.hub.call_method("rollback").status == 200
        desired = dict(h.hub.desired)
    # when: the module restarts and its twin still names v3
    with Harness(tmp_path, desired, initial=initial) as h:
        model = h.wait_model(status="rolledBack", version="2")
        h.hub.push_input("frames", h.digit_frames([3]))
        assert h.wait_predictions(1)[0].model_version == "2"
        # and when: the twin names another model, the rollback ends
        h.hub.patch_desired({"model": dict(v3, version="3b")})
        after = h.wait_model(status="loaded", version="3b")
    # then
    assert model["rolledBackFrom"]["version"] == "3"
    assert after.get("rolledBackFrom") is None
    assert not (tmp_path / "models" / "rollback.json").exists()


# -- output messages -----------------------------------------------------------------------
def test_a_runs_predictions_travel_as_one_batch_message(tmp_path: Path) -> None:
    # given: runs of 8 frames
    desired = {"batching": {"max_batch": 8, "max_wait_ms": 1500}}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        frames = h.digit_frames(list(range(16)))
        # when
        h.hub.push_input("frames", frames, max_batch=16)
        preds = h.wait_predictions(16)
    # then: each message is an edgeloop.predictions/1 holding at least a whole run
    messages = [m for m in h.hub.sent if m.output == "predictions"]
    schemas = {json.loads(m.body)["schema"] for m in messages}
    assert schemas == {"edgeloop.predictions/1"}
    sizes = [int(m.properties["batch_size"]) for m in messages]
    assert sum(sizes) == 16
    assert all(size % 8 == 0 for size in sizes)
    assert sorted(p.sample_id for p in preds) == sorted(f.sample_id for f in frames)
    assert all(p.model_version == "1" for p in preds)
    assert all(json.loads(m.body)["model_version"] == "1" for m in messages)


class _SizeLimitedContext:
    """A context whose hub takes at most ``limit`` predictions a message, as the size limit would."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent: list[int] = []

    def send(self, output: str, items: list[Any], *, max_batch: int = 64) -> int:
        [batch] = items
        if batch.item_count > self.limit:
            raise MessageTooLargeError(f"{batch.item_count} predictions are over the limit")
        self.sent.append(batch.item_count)
        return 1


def test_a_batch_over_the_size_limit_is_split_and_nothing_is_lost(tmp_path: Path) -> None:
    # given
    module = InferenceModule(samples_dir=tmp_path, models_dir=tmp_path, clock=FakeClock())
    ctx = _SizeLimitedContext(limit=3)
    module._ctx = ctx  # type: ignore[assignment]
    frames = [mf.frame_ref(i, file_ref=f"f/{i}.png") for i in range(10)]
    records = [
        scoring.error_fields(f, "x", model_name=None, model_version="1", scored_at=FakeClock().now())
        for f in frames
    ]
    # when
    module._send(records)
    # then
    assert sum(ctx.sent) == 10
    assert max(ctx.sent) <= 3


class _Queued:
    """Stands in for the batcher: how many frames wait in its queue."""

    def __init__(self, pending: int) -> None:
        self.pending = pending


def test_predictions_are_held_for_the_next_run_only_while_frames_wait(tmp_path: Path) -> None:
    # given: the output side of a module whose batcher has a full run of 8 queued
    module = InferenceModule(samples_dir=tmp_path, models_dir=tmp_path, clock=FakeClock())
    ctx = _SizeLimitedContext(limit=1000)
    module._ctx = ctx  # type: ignore[assignment]
    module._batcher = _Queued(8)  # type: ignore[assignment]
    now = FakeClock().now()

    def run(first: int) -> Scored:
        jobs = [Job(mf.frame_ref(i, file_ref=f"f/{i}.png"), 0.0) for i in range(first, first + 4)]
        return Scored(model=None, now=now, failed=[(job, "no model") for job in jobs])

    # when: a run's predictions are ready
    module._emit([run(0)])
    # then: held, nothing sent
    assert ctx.sent == []
    # when: a partial run waits (the rest of a message): held again
    module._batcher = _Queued(3)  # type: ignore[assignment]
    module._emit([run(4)])
    assert ctx.sent == []
    # when: the next run's are ready and nothing more waits
    module._batcher = _Queued(0)  # type: ignore[assignment]
    module._emit([run(8)])
    # then: the three runs in one message
    assert ctx.sent == [12]
    # when: a run comes while a full run waits, then the module stops
    module._batcher = _Queued(8)  # type: ignore[assignment]
    module._emit([run(12)])
    module._stopping.set()
    module._emit([])
    # then: nothing held is lost
    assert ctx.sent == [12, 4]


def test_a_frame_coming_after_a_pause_is_scored_without_waiting_for_a_full_batch(tmp_path: Path) -> None:
    # given: batches that would wait 3 s to fill, and frames that came before
    desired = {"batching": {"max_batch": 8, "max_wait_ms": 3000}}
    with Harness(tmp_path, desired, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        for index in range(2):
            h.hub.push_input("frames", h.digit_frames(list(range(8))))
            h.wait_predictions(8 * (index + 1))
        # when: after a pause far longer than a run, one frame comes (a paced camera)
        time.sleep(0.5)
        sent = time.monotonic()
        h.hub.push_input("frames", h.digit_frames([5]))
        h.wait_predictions(17, timeout=10.0)
        took = time.monotonic() - sent
        stats = h.module.stats()
    # then: it was scored at once, alone, instead of after the 3 s wait
    assert took < 1.5
    assert stats["batchSizes"]["1"] == 1
    assert stats["eagerBatches"] >= 1
