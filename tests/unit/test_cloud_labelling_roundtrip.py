"""Export the labelling queue and import answers back, over in-memory containers."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from pathlib import Path
from urllib.parse import unquote

import cv2
import numpy as np
import pytest
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.errors import SampleError
from edgeloop_cloud.labelling.classes import champion_classes, given_classes
from edgeloop_cloud.labelling.export import export_for_labelling
from edgeloop_cloud.labelling.images import ContainerImages, FolderImages
from edgeloop_cloud.labelling.importer import import_labels
from edgeloop_cloud.labels import QUEUE_BLOB, load_labels
from edgeloop_cloud.pipeline import CloudServices
from edgeloop_cloud.registry import Registry
from edgeloop_cloud.samples import SampleRef

from edgeloop import signing
from edgeloop.blobstore import MemoryContainer
from edgeloop.clock import FakeClock
from edgeloop.errors import ConfigError
from tests.model_factory import vector_model

CLASSES = ["cat", "dog"]


class XorOpener:
    def open(self, blob: bytes, ref: SampleRef) -> bytes:
        if ref.metadata.get("sealed") != "1":
            raise SampleError("not a sealed sample")
        return bytes(b ^ 0x5A for b in blob)


def _png(value: int) -> bytes:
    ok, png = cv2.imencode(".png", np.full((8, 8), value, np.uint8))
    assert ok
    return bytes(png.tobytes())


@pytest.fixture
def svc() -> CloudServices:
    clock = FakeClock()
    services = CloudServices(
        data=MemoryContainer("data", clock=clock),
        models=MemoryContainer("models", clock=clock),
        runs=MemoryContainer("runs", clock=clock),
        opener=XorOpener(),
        signing_key=signing.generate_private_key(),
        config=CloudConfig(),
        clock=clock,
    )
    for n, sealed in enumerate((True, True, True, False)):
        plain = _png(40 * n)
        metadata = {
            "sealed": "1" if sealed else "0",
            "plaintext_sha256": hashlib.sha256(plain).hexdigest(),
            "content_type": "image/png",
            "label": "cat",
            "confidence": "0.55",
        }
        blob = f"digits/v1/2026/01/05/dev1/s{n}.png.elenv"
        services.data.write(blob, bytes(b ^ 0x5A for b in plain), metadata=metadata)
    services.data.write("labels/0-earlier.csv", b"sample_id,label\ns2,dog\n")
    return services


def test_export_writes_tasks_csv_config_and_images_outside_the_data_container(
    svc: CloudServices, tmp_path: Path
) -> None:
    # given
    before = {info.name for info in svc.data.list()}
    sink = FolderImages(tmp_path / "root" / "images", document_root=tmp_path / "root")
    # when
    report = export_for_labelling(svc, sink=sink, out_dir=tmp_path / "out", classes=CLASSES)
    # then: the unlabelled, openable samples are exported; the unopenable one is listed
    assert report.exported == ["s0", "s1"]
    assert len(report.problems) == 1
    assert "'s3'" in report.problems[0]
    tasks = json.loads((tmp_path / "out" / "tasks.json").read_text())
    assert [t["data"]["sample_id"] for t in tasks] == ["s0", "s1"]
    url = tasks[1]["data"]["image"]
    assert url.startswith("/data/local-files/?d=")
    image = tmp_path / "root" / unquote(url.split("d=", 1)[1])
    assert image.read_bytes() == _png(40)
    assert tasks[1]["predictions"][0]["score"] == 0.55
    rows = (tmp_path / "out" / "queue.csv").read_text().splitlines()
    assert rows[1] == f"s0,{tasks[0]['data']['image']},cat,0.55,"
    assert '<Choice value="dog"/>' in (tmp_path / "out" / "label_config.xml").read_text()
    # and the data container gained only the refreshed queue
    assert {info.name for info in svc.data.list()} - before == {QUEUE_BLOB}


def test_container_images_are_read_only_urls_in_another_container(svc: CloudServices, tmp_path: Path) -> None:
    # given
    images = MemoryContainer("labelling-images")
    sink = ContainerImages(images, data_container="data", expires_in=timedelta(minutes=5))
    # when
    export_for_labelling(svc, sink=sink, out_dir=tmp_path, classes=CLASSES, limit=1)
    # then
    url = json.loads((tmp_path / "tasks.json").read_text())[0]["data"]["image"]
    assert url.startswith("memory://labelling-images/s0.png?sp=r&")
    assert images.read("s0.png")[0] == _png(0)


def test_the_data_container_is_refused_for_images() -> None:
    with pytest.raises(ConfigError, match="is the data container"):
        ContainerImages(MemoryContainer("data"), data_container="data", expires_in=timedelta(minutes=5))


def test_images_dir_outside_the_document_root_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not under --document-root"):
        FolderImages(tmp_path / "a", document_root=tmp_path / "b")


LABEL_STUDIO_EXPORT = [
    {"id": 1, "data": {"sample_id": "s0"}, "annotations": [{"id": 1, "result": [
        {"type": "choices", "value": {"choices": ["dog"]}}]}]},
    {"id": 2, "data": {"sample_id": "s1"}, "annotations": [{"id": 2, "was_cancelled": True, "result": []}]},
    {"id": 3, "data": {"sample_id": "s2"}, "annotations": [{"id": 3, "result": [
        {"type": "choices", "value": {"choices": ["cat"]}}]}]},
    {"id": 4, "data": {"sample_id": "ghost"}, "annotations": [{"id": 4, "result": [
        {"type": "choices", "value": {"choices": ["cat"]}}]}]},
    {"id": 5, "data": {"sample_id": "s3"}, "annotations": [{"id": 5, "result": [
        {"type": "choices", "value": {"choices": ["zebra"]}}]}]},
]  # fmt: skip


def test_import_keeps_good_answers_and_lists_the_rest(svc: CloudServices) -> None:
    # when
    report = import_labels(
        svc, name="/tmp/project-1.json", text=json.dumps(LABEL_STUDIO_EXPORT), classes=CLASSES
    )
    # then: imported into a new labels file the cloud reads, a correction noted
    assert report.imported == {"s0": "dog", "s2": "cat"}
    assert report.labels_blob is not None
    assert report.labels_blob.startswith("labels/")
    loaded = load_labels(svc.data)
    assert {sid: e.label for sid, e in loaded.labels.items()} == {"s0": "dog", "s2": "cat"}
    assert report.corrections == ["sample 's2' relabelled 'dog' -> 'cat'"]
    listed = "\n".join(report.not_imported)
    assert len(report.not_imported) == 3
    assert "'s1' was skipped" in listed
    assert "unknown sample 'ghost'" in listed
    assert "unknown class 'zebra'" in listed
    # and the import record in the runs container lists the same
    assert report.record_blob is not None
    record = json.loads(svc.runs.read(report.record_blob)[0])
    assert record["not_imported"] == report.not_imported
    assert record["labels"] == {"s0": "dog", "s2": "cat"}


def test_csv_duplicates_and_conflicts_are_listed_and_earlier_files_never_overwritten(
    svc: CloudServices,
) -> None:
    # given
    text = "sample_id,label\ns0,cat\ns0,cat\ns1,cat\ns1,dog\n"
    # when: the same file imported twice at the same instant
    first = import_labels(svc, name="answers.csv", text=text, classes=CLASSES)
    second = import_labels(svc, name="answers.csv", text=text, classes=CLASSES)
    # then
    assert first.imported == {"s0": "cat"}
    assert any("labelled 2 times" in p for p in first.not_imported)
    assert any("conflicting labels for sample 's1'" in p for p in first.not_imported)
    assert first.labels_blob != second.labels_blob
    assert svc.data.read(first.labels_blob or "")[0] == b"sample_id,label\ns0,cat\n"


def test_nothing_importable_writes_no_labels_file(svc: CloudServices) -> None:
    report = import_labels(svc, name="a.csv", text="sample_id,label\nghost,cat\n", classes=CLASSES)
    assert report.labels_blob is None
    assert [i.name for i in svc.data.list("labels/")] == ["labels/0-earlier.csv"]


def test_classes_come_from_the_champion(svc: CloudServices) -> None:
    # given
    registry = Registry(svc.models)
    version = registry.claim_version("digits")
    registry.publish("digits", version, vector_model(classes=3), private_key_pem=svc.signing_key, card={})
    assert registry.promote("digits", version, expected=None)
    # then
    assert champion_classes(registry, "digits") == ["state0", "state1", "state2"]


def test_no_champion_asks_for_classes(svc: CloudServices) -> None:
    with pytest.raises(ConfigError, match="--classes"):
        champion_classes(Registry(svc.models), "digits")


@pytest.mark.parametrize("text", ["", " , ", "a,b,a"])
def test_bad_classes_are_refused(text: str) -> None:
    with pytest.raises(ConfigError, match="--classes"):
        given_classes(text)
