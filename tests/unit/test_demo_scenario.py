"""The digits drift scenario: deterministic, disjoint, really drifting."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from edgeloop_demo.scenario import ScenarioConfig, build, frame_name, write_stream_folder
from sklearn.neural_network import MLPClassifier

SMALL = ScenarioConfig(base_size=300, stream_size=200, test_size=200, seed=3)


def features(frames: np.ndarray) -> np.ndarray:
    import cv2

    small = [
        cv2.resize(cv2.cvtColor(f, cv2.COLOR_BGR2GRAY), (8, 8), interpolation=cv2.INTER_AREA) for f in frames
    ]
    return np.stack(small).reshape(len(frames), -1) / 255.0


def test_same_seed_same_scenario_and_other_seed_differs() -> None:
    a, b = build(SMALL), build(SMALL)
    c = build(ScenarioConfig(base_size=300, stream_size=200, test_size=200, seed=4))
    assert np.array_equal(a.stream.frames, b.stream.frames)
    assert not np.array_equal(a.stream.frames, c.stream.frames)
    assert a.base.frames.shape == (300, 64, 64, 3)
    assert a.base.frames.dtype == np.uint8


def test_stream_is_clean_then_drifted() -> None:
    s = build(SMALL)
    assert not s.stream.drifted[:50].any()
    assert s.stream.drifted[50:].all()
    assert s.test.drifted.all()
    assert not s.holdout.drifted.any()


def test_drift_hurts_a_model_trained_on_clean_frames() -> None:
    # given a model trained on the clean base set
    s = build(SMALL)
    model = MLPClassifier(hidden_layer_sizes=(64,), max_iter=2000, random_state=0)
    model.fit(features(s.base.frames), s.base.labels)
    # when scored on clean and drifted held-out frames
    clean = model.score(features(s.holdout.frames), s.holdout.labels)
    drifted = model.score(features(s.test.frames), s.test.labels)
    # then the drift costs real accuracy
    assert clean > 0.8
    assert drifted < clean - 0.2


def test_stream_folder_holds_frames_and_the_truth(tmp_path: Path) -> None:
    s = build(ScenarioConfig(base_size=10, stream_size=12, test_size=10))
    truth_path = write_stream_folder(s, tmp_path / "stream")
    truth = json.loads(truth_path.read_text())
    assert sorted(p.name for p in (tmp_path / "stream").iterdir()) == [frame_name(i) for i in range(12)]
    assert truth[frame_name(0)]["label"] == s.class_names[int(s.stream.labels[0])]
    assert truth[frame_name(11)]["drifted"] is True


def test_asking_for_more_digits_than_bundled_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="only 1797 are bundled"):
        build(ScenarioConfig(base_size=1500, stream_size=500, test_size=100))
