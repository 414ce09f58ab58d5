"""The uploader module through the module runtime and the in-memory hub: inputs, the
``uploaded`` output, its methods and its twin."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.module import UploaderModule
from edgeloop_uploader.sources import Credential

from edgeloop.blobstore import BlobContainer, MemoryContainer
from edgeloop.contracts import PredictionBatch, UploadedNotice
from edgeloop.runtime import ModuleRuntime
from edgeloop.runtime.fake import FakeHubClient
from tests.support import wait_for
from tests.unit.uploader_support import TRACEPARENT, prediction, public_pem, selected


class Running:
    def __init__(self, tmp_path: Path, desired: dict[str, Any]) -> None:
        self.samples = tmp_path / "samples"
        self.samples.mkdir()
        self.store = MemoryContainer()
        self.credentials: list[Credential] = []
        self.hub = FakeHubClient(desired)
        self.module = UploaderModule(
            samples_dir=self.samples,
            outbox_dir=tmp_path / "outbox",
            store_factory=self._factory,
            env_credential="AccountName=a;AccountKey=ENVSECRET",
        )
        self.runtime = ModuleRuntime(self.module, client=self.hub, device_id="dev-1", tick_interval=0.05)
        self.thread = threading.Thread(target=self.runtime.run)

    def _factory(self, credential: Credential, _config: UploaderConfig) -> BlobContainer:
        self.credentials.append(credential)
        return self.store

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.module.uploader is not None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.request_stop("test over")
        self.thread.join(30)

    def notices(self) -> list[UploadedNotice]:
        return [n for n in self.hub.sent_items("uploaded") if isinstance(n, UploadedNotice)]


DESIRED = {
    "encryption": {"public_key_pem": public_pem(0)},
    "retry": {"initial_backoff_s": 0.05, "max_backoff_s": 0.2, "max_attempts": 2},
}


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    with Running(tmp_path, DESIRED) as r:
        yield r


def test_selected_samples_are_uploaded_and_announced_with_their_trace(running: Running) -> None:
    # when
    running.hub.push_input("selected", [selected(running.samples, f"01S{i}") for i in range(5)])
    # then
    wait_for(lambda: len(running.notices()) == 5)
    assert {n.traceparent for n in running.notices()} == {TRACEPARENT}
    assert all(m.properties.get("traceparent") == TRACEPARENT for m in running.hub.sent)
    assert len(running.store.blobs) == 5  # one blob a sample: no sidecar by default


def test_get_queue_reports_depth_age_bytes_and_storage(running: Running) -> None:
    # given: storage down
    running.store.outage = True
    running.hub.push_input("selected", [selected(running.samples, "01S1")])
    wait_for(lambda: running.hub.call_method("getQueue").payload["depth"] == 1)
    # when
    response = running.hub.call_method("getQueue")
    # then
    assert response.status == 200
    body = response.payload
    assert body["bytes"] > 0
    assert body["oldest_age_s"] >= 0
    assert body["storage"]["credential"] == {
        "kind": "connection_string",
        "source": "env:EDGELOOP_STORAGE_CONNECTION_STRING",
    }
    assert "ENVSECRET" not in json.dumps(body)
    # when the storage returns and a flush is asked for
    running.store.outage = False
    flushed = running.hub.call_method("flush", {"wait_s": 10})
    # then
    assert flushed.status == 200
    assert flushed.payload["depth"] == 0


@pytest.mark.parametrize(
    ("payload", "status", "match"),
    [
        ({}, 400, "exactly one"),
        (
            {"connection_string": "AccountName=a;AccountKey=X1", "container_sas_url": "https://a/b?sig=X2"},
            400,
            "exactly one",
        ),
        ({"sas": "x"}, 400, "unknown key"),
        ({"container_sas_url": "https://acct.blob.core.windows.net/data?sv=1&sig=NEWSECRET"}, 200, "sas_url"),
    ],
)
def test_set_credentials_validates_and_never_echoes_the_secret(
    running: Running, payload: dict[str, str], status: int, match: str
) -> None:
    # when
    response = running.hub.call_method("setCredentials", payload)
    # then
    assert response.status == status
    shown = json.dumps(response.payload)
    assert match in shown
    for secret in ("X1", "X2", "NEWSECRET"):
        assert secret not in shown


def test_retry_quarantined_puts_poison_back(running: Running) -> None:
    # given
    from edgeloop.blobstore import BlobStoreError

    def refuse(operation: str, name: str) -> None:
        raise BlobStoreError("400 InvalidBlobOrBlock")

    running.store.fail_hook = refuse
    running.hub.push_input("selected", [selected(running.samples, "01BAD")])
    wait_for(lambda: running.hub.call_method("getQueue").payload["states"]["quarantined"] == 1)
    quarantined = running.hub.call_method("getQueue").payload["quarantined"]
    assert "InvalidBlobOrBlock" in quarantined[0]["reason"]
    # when
    running.store.fail_hook = None
    response = running.hub.call_method("retryQuarantined", {"sample_ids": ["01BAD"]})
    # then
    assert response.payload == {"requeued": 1}
    wait_for(lambda: len(running.notices()) == 1)


def test_a_bad_public_key_in_a_patch_is_refused_and_the_old_one_stays(running: Running) -> None:
    # when
    running.hub.patch_desired({"encryption": {"public_key_pem": "-----BEGIN PUBLIC KEY-----\nnope\n"}})
    # then
    wait_for(lambda: running.hub.reported.get("configError") is not None)
    assert "encryption.public_key_pem" in running.hub.reported["configError"]["reason"]
    running.hub.push_input("selected", [selected(running.samples, "01S1")])
    wait_for(lambda: len(running.notices()) == 1)


def test_reported_config_masks_secrets(tmp_path: Path) -> None:
    desired = {**DESIRED, "storage": {"connection_string": "AccountName=a;AccountKey=TWINSECRET"}}
    with Running(tmp_path, desired) as running:
        wait_for(lambda: "config" in running.hub.reported)
        assert "TWINSECRET" not in json.dumps(running.hub.reported)
        assert running.credentials[-1].source == "twin:storage.connection_string"


def test_predictions_feed_the_prediction_log(running: Running) -> None:
    # when
    running.hub.push_input("predictions", [prediction(f"01P{i}") for i in range(30)])
    running.hub.call_method("flush", {"wait_s": 10})
    # then
    wait_for(lambda: any(n.strategy == "prediction-log" for n in running.notices()))
    notice = next(n for n in running.notices() if n.strategy == "prediction-log")
    assert notice.blob_name in running.store.blobs
    assert notice.blob_name.startswith("predictions/dev-1/2026/01/05/12/")


def test_a_prediction_batch_is_logged_whole_with_its_header_fields(running: Running) -> None:
    # given: an edgeloop.predictions/1 message, the model said once in its header
    batch = PredictionBatch.of([prediction(f"01Q{i:02d}") for i in range(30)])
    assert batch.model_version == "3"
    # when
    running.hub.push_input("predictions", [batch])
    uploader = running.module.uploader
    assert uploader is not None
    wait_for(lambda: uploader.core.db.pending_count() == 30)
    # then: every line carries the model and its own sample, in order
    lines = uploader.core.db.pending_lines("2026-01-05T12", 100)
    records = [json.loads(line) for _seq, _id, line in lines]
    assert [r["sample_id"] for r in records] == [f"01Q{i:02d}" for i in range(30)]
    assert {(r["model_name"], r["model_version"], r["label"]) for r in records} == {("digits", "3", "7")}
    assert len(running.hub.acknowledged) == 1


def test_the_manifest_twin_defaults_validate_and_hold_no_secrets(repo_root: Path) -> None:
    # given
    manifest = json.loads((repo_root / "deployment.template.json").read_text())
    desired = manifest["modulesContent"]["uploader"]["properties.desired"]
    # when
    config = UploaderConfig.model_validate(desired)
    # then
    assert config.storage.connection_string is None
    assert config.storage.container_sas_url is None
    routes = json.dumps(manifest["modulesContent"]["$edgeHub"]["properties.desired"]["routes"])
    assert "/modules/uploader/inputs/selected" in routes
    assert "/modules/uploader/inputs/predictions" in routes
    assert "uploader/outputs/uploaded INTO $upstream" in routes
