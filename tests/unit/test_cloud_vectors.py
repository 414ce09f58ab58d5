"""Sensor vectors in the cloud: uploaded vector documents decode, a vector model is scored through
its own preprocess, ``training.base_data`` reads vector files in its folder, labels.csv and
manifest layouts, and a pass with a command trainer on vectors trains, gates against the champion
on the base data's hold-out and the audit share, and promotes."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import pytest
from edgeloop_cloud import features
from edgeloop_cloud.basedata import BaseDataError, load_base_data
from edgeloop_cloud.basedata_config import BaseDataConfig
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.errors import SampleError, TrainingError
from edgeloop_cloud.gate import GateConfig
from edgeloop_cloud.labelling.export import export_for_labelling
from edgeloop_cloud.labelling.images import FolderImages
from edgeloop_cloud.labelling.importer import import_labels
from edgeloop_cloud.labels import load_labels
from edgeloop_cloud.pipeline import CloudServices, run_trigger_once
from edgeloop_cloud.samples import decode_sample
from edgeloop_cloud.trainers.command import CommandTrainerConfig
from edgeloop_cloud.training import TrainingParams
from edgeloop_cloud.trigger import TriggerPolicy

from edgeloop.blobstore import BlobContainer, MemoryContainer
from edgeloop.clock import FakeClock
from edgeloop.model_metadata import Preprocess
from tests.conftest import REPO_ROOT
from tests.unit.test_cloud_pipeline import KEY, XorOpener

TRAINER = REPO_ROOT / "examples" / "trainers" / "gboost" / "train.py"


def _sensor_data() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "sensor_example_data", REPO_ROOT / "examples/sensor/data.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_vector_document_decodes_to_its_float32_values() -> None:
    # given
    doc = json.dumps({"sample_id": "s1", "vector": [1, 2.5, -3], "attributes": {"line": "7"}}).encode()
    # when
    vector = decode_sample(doc, sample_id="s1")
    # then
    assert vector.dtype == np.float32
    assert vector.tolist() == [1.0, 2.5, -3.0]


def test_an_image_still_decodes_as_an_image() -> None:
    ok, png = cv2.imencode(".png", np.full((4, 5), 9, dtype=np.uint8))
    assert ok
    assert decode_sample(png.tobytes()).shape == (4, 5)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"{not json", "not a JSON vector document"),
        (b'{"values": [1]}', "no non-empty 'vector' list"),
        (b'{"vector": []}', "no non-empty 'vector' list"),
        (b'{"vector": [1, "x"]}', "not numbers"),
        (b'{"vector": [1, true]}', "not numbers"),
        (b'{"vector": [1e999]}', "NaN or infinite"),
    ],
)
def test_a_bad_vector_document_is_refused_with_the_reason(body: bytes, words: str) -> None:
    with pytest.raises(SampleError, match="sample s9") as raised:
        decode_sample(body, sample_id="s9")
    assert words in str(raised.value)


def test_vector_rows_follow_the_models_preprocess() -> None:
    # given
    pre = Preprocess(input_kind="vector", vector_size=2, scale=2.0, mean=[1.0, 0.0], std=[2.0, 4.0])
    # when
    x = features.batch([np.array([1.0, 2.0], np.float32), np.array([3.0, -2.0], np.float32)], pre)
    # then: (v * scale - mean) / std per feature
    assert x.dtype == np.float32
    assert x.tolist() == [[0.5, 1.0], [2.5, -1.0]]
    with pytest.raises(TrainingError, match="a vector has 3 values; the model takes 2"):
        features.batch([np.zeros(3, np.float32)], pre)
    with pytest.raises(TrainingError, match="feature vectors"):
        features.batch([np.zeros((2, 2), np.float32)], pre)


def test_base_data_reads_the_sensor_examples_vector_folder_with_its_marked_holdout(tmp_path: Path) -> None:
    # given: labels.csv (file,label,holdout) beside samples/*.json, as data.py base writes it
    _sensor_data().write_base(tmp_path, seed=1, train=30, holdout=10)
    # when
    base = load_base_data(BaseDataConfig(folder=str(tmp_path)))
    # then
    assert (len(base.train_images), len(base.holdout_images)) == (30, 10)
    assert set(base.train_labels) == {"forged", "genuine"}
    assert base.holdout_images[0].dtype == np.float32
    assert base.holdout_images[0].shape == (4,)
    first = json.loads((tmp_path / "samples" / "b00000.json").read_text())["vector"]
    assert base.train_images[0].tolist() == pytest.approx(first)
    assert base.description["holdout_from"] == "the data"
    assert len(str(base.description["sha256"])) == 64


def _vector(path: Path, values: list[float]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"vector": values}))


def test_base_data_reads_vector_files_in_class_folders_and_draws_the_holdout(tmp_path: Path) -> None:
    # given: <class>/<file>.json, no hold-out marked
    for n in range(10):
        _vector(tmp_path / "forged" / f"f{n}.json", [float(n), 0.0])
        _vector(tmp_path / "genuine" / f"g{n}.json", [0.0, float(n)])
    # when
    base = load_base_data(BaseDataConfig(folder=str(tmp_path), holdout_share=0.2, holdout_seed=3))
    # then: 2 of each class held out, the rest trains
    assert sorted(base.holdout_labels) == ["forged", "forged", "genuine", "genuine"]
    assert len(base.train_images) == 16
    assert all(v.shape == (2,) for v in base.train_images + base.holdout_images)


def test_base_data_reads_vector_files_from_a_csv_manifest(tmp_path: Path) -> None:
    _vector(tmp_path / "r" / "a.json", [1.0, 2.0, 3.0])
    _vector(tmp_path / "r" / "b.json", [4.0, 5.0, 6.0])
    _vector(tmp_path / "r" / "c.json", [7.0, 8.0, 9.0])
    (tmp_path / "set.csv").write_text("file,label,holdout\nr/a.json,x,0\nr/b.json,y,0\nr/c.json,y,1\n")
    base = load_base_data(BaseDataConfig(manifest=str(tmp_path / "set.csv")))
    assert [v.tolist() for v in base.train_images] == [[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert (base.train_labels, base.holdout_labels) == (["x", "y"], ["y"])


@pytest.mark.parametrize(
    ("files", "words"),
    [
        ({"x/a.json": '{"vector": [1, 2]}', "x/b.json": "{oops"}, "unreadable vector file x/b.json"),
        ({"x/a.json": '{"vector": [1, 2]}', "x/b.json": '{"vector": []}'}, "no non-empty 'vector' list"),
        ({"x/a.json": '{"vector": [1, 2]}', "y/b.json": '{"vector": [1, 2, 3]}'},
         "vectors of different lengths: x/a.json has 2 values, y/b.json has 3"),
        ({"x/a.json": '{"vector": [1, 2]}', "y/b.png": "png"},
         "mixes vector files (x/a.json) and images (y/b.png)"),
    ],
)  # fmt: skip
def test_bad_vector_base_data_is_refused_naming_the_setting_and_the_file(
    tmp_path: Path, files: dict[str, str], words: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    with pytest.raises(BaseDataError) as raised:
        load_base_data(BaseDataConfig(folder=str(tmp_path)))
    assert str(raised.value).startswith("training.base_data")
    assert words in str(raised.value)


def _upload_vector(data: BlobContainer, sample_id: str, values: np.ndarray, *, audit: bool) -> None:
    plain = json.dumps(
        {"sample_id": sample_id, "vector": [float(v) for v in values], "attributes": {}}
    ).encode()
    metadata = {
        "sealed": "1",
        "plaintext_sha256": hashlib.sha256(plain).hexdigest(),
        "strategy": "audit" if audit else "random",
        "content_type": "application/json",
    }
    data.write(
        f"sensor/v1/2026/01/05/dev1/{sample_id}.json.elenv", bytes(b ^ 0x5A for b in plain), metadata=metadata
    )


def test_a_pass_on_drifted_vectors_retrains_with_a_command_and_beats_the_champion(tmp_path: Path) -> None:
    # given: base data in a folder, a champion trained on it, and labelled drifted readings
    data_mod = _sensor_data()
    data_mod.write_base(tmp_path / "base", seed=1, train=200, holdout=100)
    clock = FakeClock()
    config = CloudConfig(
        model_name="sensor",
        training=TrainingParams(base_data=BaseDataConfig(folder=str(tmp_path / "base"))),
        trigger=TriggerPolicy(min_new_labels=20, cooldown_minutes=0),
        trainer=CommandTrainerConfig(kind="command", timeout_s=120,
                                     command=[sys.executable, str(TRAINER), "{inputs}", "{outputs}"]),
        gate=GateConfig(max_latency_ms=1000.0),
    )  # fmt: skip
    svc = CloudServices(
        data=MemoryContainer("data", clock=clock), models=MemoryContainer("models", clock=clock),
        runs=MemoryContainer("runs", clock=clock), opener=XorOpener(), signing_key=KEY, config=config,
        clock=clock,
    )  # fmt: skip
    first = run_trigger_once(svc, force=True)  # no samples yet: the base data alone, over the floor
    assert first.status == "promoted", first.as_dict()
    values, labels = data_mod.readings(120, seed=5, drift=1.0)
    rows = ["sample_id,label"]
    for n, (row, label) in enumerate(zip(values, labels, strict=True)):
        _upload_vector(svc.data, f"s{n:03d}", row, audit=n % 4 == 0)
        rows.append(f"s{n:03d},{label}")
    svc.data.write("labels/batch-1.csv", "\n".join(rows).encode())
    # when
    outcome = run_trigger_once(svc)
    # then: the candidate learnt the drifted readings and beat v1 on the audit share
    assert outcome.status == "promoted", outcome.as_dict()
    assert outcome.version == "v2"
    assert outcome.counts == {"train": 90, "audit": 30, "skipped": 0}
    assert outcome.gate is not None
    audit, holdout = outcome.gate["audit"], outcome.gate["holdout"]
    assert audit["n"] == 30
    assert audit["champion_accuracy"] < 0.75
    assert audit["candidate_accuracy"] > 0.9
    assert holdout["n"] == 100
    card = svc.registry.card("sensor", "v2")
    assert card["preprocess"]["input_kind"] == "vector"
    assert card["training_manifest"]["trainer"]["kind"] == "command"


def test_vector_samples_are_not_exported_as_images_and_import_from_a_csv(tmp_path: Path) -> None:
    # given: two uploaded vector samples, nothing labelled
    clock = FakeClock()
    svc = CloudServices(
        data=MemoryContainer("data", clock=clock), models=MemoryContainer("models", clock=clock),
        runs=MemoryContainer("runs", clock=clock), opener=XorOpener(), signing_key=KEY,
        config=CloudConfig(model_name="sensor"), clock=clock,
    )  # fmt: skip
    _upload_vector(svc.data, "s1", np.array([1.0, 2.0]), audit=False)
    _upload_vector(svc.data, "s2", np.array([3.0, 4.0]), audit=True)
    # when: exported for Label Studio
    sink = FolderImages(tmp_path / "images")
    report = export_for_labelling(svc, sink=sink, out_dir=tmp_path / "out", classes=["a", "b"])
    # then: neither is exported, each listed with the reason; no image was written
    assert report.exported == []
    assert len(report.problems) == 2
    assert all("a sensor vector has no image to label" in p for p in report.problems), report.problems
    assert list((tmp_path / "images").iterdir()) == []
    # when: labelled from the user's own records as a CSV
    imported = import_labels(svc, name="labels.csv", text="sample_id,label\ns1,a\ns2,b\n", classes=["a", "b"])
    # then
    assert imported.imported == {"s1": "a", "s2": "b"}
    assert {k: v.label for k, v in load_labels(svc.data).labels.items()} == {"s1": "a", "s2": "b"}


def _trainer_inputs(folder: Path, base: Path) -> Path:
    folder.mkdir()
    manifest = {"schema": "edgeloop.training-manifest/1", "model_name": "sensor", "run_id": "r", "seed": 0,
                "base_data": str(base), "champion": None, "samples": []}  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_the_gboost_trainer_reads_class_folders_and_leaves_their_holdout_out(tmp_path: Path) -> None:
    # given: base data as <class>/<file>.json with a holdout/<class>/ folder
    base = tmp_path / "base"
    for n in range(6):
        _vector(base / "forged" / f"f{n}.json", [-1.0 - n, 0.5])
        _vector(base / "genuine" / f"g{n}.json", [1.0 + n, -0.5])
    _vector(base / "holdout" / "forged" / "h1.json", [-2.0, 0.5])
    _vector(base / "holdout" / "genuine" / "h2.json", [2.0, -0.5])
    inputs = _trainer_inputs(tmp_path / "inputs", base)
    # when
    done = subprocess.run([sys.executable, str(TRAINER), str(inputs), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    # then: the 12 training readings, not the 2 held out
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["train_samples"] == 12


def test_the_gboost_trainer_refuses_base_data_that_marks_no_holdout(tmp_path: Path) -> None:
    base = tmp_path / "base"
    _vector(base / "forged" / "f.json", [-1.0, 0.5])
    _vector(base / "genuine" / "g.json", [1.0, -0.5])
    inputs = _trainer_inputs(tmp_path / "inputs", base)
    done = subprocess.run([sys.executable, str(TRAINER), str(inputs), str(tmp_path / "out")],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode != 0
    assert "needs a holdout/<class>/ folder marking the gate's hold-out" in done.stderr
