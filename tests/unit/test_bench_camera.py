"""The camera-class benchmark's pieces: the locally built MobileNet-class model, the paced
reference, the targets table and the flame graph reader."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest

from bench.camera import paced_reference
from bench.camera_model import LABELS, build_model, multiply_adds
from bench.profiles import parse_flamegraph, self_samples, summary
from bench.targets import TARGETS, Target, load_results, lookup, rows, table
from edgeloop.model_metadata import read_session_metadata


@pytest.fixture(scope="module")
def model() -> bytes:
    return build_model(size=64, width=0.25, seed=3)


def test_the_model_loads_in_onnx_runtime_with_its_metadata(model: bytes) -> None:
    # given
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    # when
    meta = read_session_metadata(session)
    # then
    assert meta.preprocess is not None
    assert (meta.preprocess.width, meta.preprocess.height) == (64, 64)
    assert meta.preprocess.color == "rgb"
    assert meta.preprocess.layout == "NCHW"
    assert meta.labels == list(LABELS)
    assert session.get_inputs()[0].shape[1:] == [3, 64, 64]


@pytest.mark.parametrize("batch", [1, 8])
def test_the_model_gives_one_probability_row_per_image(model: bytes, batch: int) -> None:
    # given
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((batch, 3, 64, 64), dtype=np.float32)
    # when
    (probs,) = session.run(None, {"image": x})
    # then
    assert probs.shape == (batch, len(LABELS))
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs >= 0).all()


def test_the_inference_module_serves_the_model(model: bytes) -> None:
    # given: the module's own loader (it checks the metadata against the input shape)
    from edgeloop_inference.providers import available_providers, choose_providers
    from edgeloop_inference.session import ModelIdentity, load_model

    from edgeloop.clock import SystemClock

    loaded = load_model(
        model,
        identity=ModelIdentity(name="camera", version="v0", sha256="-", source="test"),
        choice=choose_providers(["cpu"], available_providers()),
        loaded_at=SystemClock().now(),
    )
    frame = np.zeros((480, 640, 3), np.uint8)
    # when
    tensor = loaded.preprocessor.to_tensor([loaded.preprocessor.decode_array(frame, display="f")] * 8)
    probs = loaded.run(tensor)
    # then
    assert tensor.shape == (8, 3, 64, 64)
    assert probs.shape == (8, len(LABELS))


def test_the_same_seed_builds_the_same_model_and_another_seed_another() -> None:
    # given / when
    a, b = build_model(size=32, width=0.25, seed=1), build_model(size=32, width=0.25, seed=1)
    c = build_model(size=32, width=0.25, seed=2)
    # then
    assert a == b
    assert a != c


@pytest.mark.parametrize(
    ("kwargs", "message"), [({"size": 100}, "size = 100"), ({"classes": 0}, "classes = 0")]
)
def test_a_bad_size_or_class_count_is_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_model(**kwargs)


def test_the_default_model_is_mobilenet_class() -> None:
    # MobileNet v1 0.5 at 160x160 is about 76 million multiply-adds (v1 1.0 at 224: 569)
    assert 70e6 < multiply_adds() < 80e6
    assert 550e6 < multiply_adds(size=224, width=1.0, classes=1000) < 590e6


@pytest.mark.parametrize(("pace", "bare", "expected"), [(15.0, 150.0, 15.0), (30.0, 20.0, 20.0)])
def test_a_paced_run_is_compared_with_what_the_bare_loop_does_at_that_pace(
    pace: float, bare: float, expected: float
) -> None:
    assert paced_reference(pace, bare) == expected


def test_the_targets_table_shows_missing_results_as_not_available() -> None:
    # given: only the capture benchmark ran, and inference wrote a result without its ratio
    results: dict[str, Any] = {"capture": {"ratio": 0.95}, "inference": {"batch": 8}}
    # when
    found = {r.text: r for r in rows(results)}
    # then
    capture = found["capture >= 0.9x its bare loop (frames stored as read)"]
    assert (capture.figure, capture.status) == ("0.95x", "met")
    inference = found["inference >= 0.9x bare ONNX Runtime at batch 8"]
    assert (inference.figure, inference.status) == ("n/a", "n/a")
    assert all(r.status == "n/a" for t, r in found.items() if not t.startswith(("capture >=", "inference")))
    assert len(table(list(found.values())).splitlines()) == len(TARGETS) + 1


def test_the_targets_table_reads_nested_figures_and_thresholds_both_ways() -> None:
    # given
    results: dict[str, Any] = {
        "devhub": {"throughput": [{"hub_to_sender_cpu": 0.7}]},
        "camera": {"ratios": {"jpeg-saturated": 0.3, "jpeg-15fps": 0.99}},
        "filter": {"decisions_per_s": {"fixed_rule_batched": 104_000.0, "five_strategies_batched": 43_000.0}},
        "pipeline": {
            "paced": {"latency_ms": {"capture_to_decision_selected": {"p50": 31.0}}},
            "plumbing_cpu_ms_per_frame": 0.8,
        },
        "frames": {"raw": {"total_ms": 4.25}},
    }
    # when
    found = {r.text: (r.figure, r.status) for r in rows(results)}
    # then
    assert found["hub CPU per routed message <= 0.5x the sender's"] == ("0.70x", "not met")
    assert found["camera pipeline >= 0.9x bare loop, saturated"] == ("0.30x", "not met")
    assert found["camera pipeline >= 0.9x bare loop, paced 15/s"] == ("0.99x", "met")
    assert found["filter >= 100,000 decisions/s per core fed in batches (fixed rule)"] == ("104,000/s", "met")
    five = next(v for k, v in found.items() if k.startswith("filter decisions/s"))
    assert five == ("43,000/s", "reported")
    assert found["capture -> decision p50 <= 20 ms, paced at 100/s"] == ("31 ms", "not met")
    plumbing = next(v for k, v in found.items() if k.startswith("pipeline plumbing"))
    assert plumbing == ("0.80 ms", "met")
    frames = next(v for k, v in found.items() if k.startswith("raw frame path"))
    assert frames == ("4.25 ms", "reported")


def test_the_filter_target_reads_the_batched_rate_the_filter_bench_writes() -> None:
    # given: the keys bench/filter.py writes (per policy, alone and in batches)
    results: dict[str, Any] = {
        "filter": {"decisions_per_s": {"fixed_rule": 120_000.0, "fixed_rule_batched": 90_000.0}}
    }
    # when
    found = {r.text: (r.figure, r.status) for r in rows(results)}
    # then: the batched rate is the one checked, against the 100,000
    assert next(v for k, v in found.items() if k.startswith("filter >=")) == ("90,000/s", "not met")


def test_the_first_figure_present_of_several_paths_is_used() -> None:
    # given
    target = Target("t", "b", (("a", "new"), ("a", "old")), lambda v: v > 1)
    # when / then
    assert rows({"b": {"a": {"old": 2.0}}}, (target,))[0].figure == "2.00x"
    assert rows({"b": {"a": {"old": 2.0, "new": 0.5}}}, (target,))[0].status == "not met"


@pytest.mark.parametrize("value", ["text", True, None, [1.0]])
def test_a_figure_that_is_not_a_number_counts_as_missing(value: Any) -> None:
    assert lookup({"k": value}, ("k",)) is None


def test_results_that_cannot_be_read_are_left_out(tmp_path: Path) -> None:
    # given
    (tmp_path / "capture.json").write_text(json.dumps({"ratio": 1.0}))
    (tmp_path / "inference.json").write_text("{not json")
    # when / then
    assert load_results(tmp_path, {"capture", "inference", "uploader"}) == {"capture": {"ratio": 1.0}}


SVG = (
    '<g><title>all (10 samples, 100%)</title><rect x="0%" y="84" width="100%" fg:x="0" fg:w="10"/></g>'
    '<g><title>main (app.py:3) (10 samples, 100.00%)</title><rect x="0%" y="100" width="100%" '
    'fg:x="0" fg:w="10"/></g>'
    '<g><title>encode (app.py:9) (6 samples, 60.00%)</title><rect x="0%" y="116" width="60%" '
    'fg:x="0" fg:w="6"/></g>'
    '<g><title>write (io.py:1) (1 samples, 10.00%)</title><rect x="0%" y="132" width="10%" '
    'fg:x="0" fg:w="1"/></g>'
    '<g><title>decode &lt;x&gt; (app.py:12) (3 samples, 30.00%)</title><rect x="60%" y="116" '
    'width="30%" fg:x="6" fg:w="3"/></g>'
)


def test_own_samples_are_a_frames_less_its_callees() -> None:
    # given / when
    own, total = self_samples(parse_flamegraph(SVG))
    # then
    assert total == 10
    assert own == {"main (app.py)": 1, "encode (app.py)": 5, "write (io.py)": 1, "decode <x> (app.py)": 3}


def test_waiting_samples_are_counted_apart_from_the_work(tmp_path: Path) -> None:
    # given: two of ten samples in a thread blocked on a condition
    svg = SVG.replace(
        "decode &lt;x&gt; (app.py:12) (3 samples", "Condition.wait (threading.py:320) (3 samples"
    )
    path = tmp_path / "capture.svg"
    path.write_text(svg)
    # when
    lines = summary(path, top=5)
    # then: shares of the 7 busy samples
    assert lines[0] == "capture: 10 samples, 3 waiting; shares of the 7 busy ones"
    assert lines[1] == "   71.4%  encode (app.py)"
    assert not any("Condition.wait" in line for line in lines)
