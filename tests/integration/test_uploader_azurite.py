"""The uploader against a real Azurite: round trip, tamper and swap detection, an outage, a
SIGKILL mid-upload, the disk budget, and an expired SAS replaced by ``setCredentials``."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from edgeloop_cloud.opener import EnvelopeOpener
from edgeloop_cloud.samples import fetch_plaintext, find_samples, find_samples_by_tags
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.module import UploaderModule
from edgeloop_uploader.sources import Credential
from edgeloop_uploader.storage import azure_store_factory

from edgeloop.blobstore import AzureContainer, BlobContainer, parse_sample_blob_name
from edgeloop.contracts import UploadedNotice
from edgeloop.devtools.azurite import Azurite, connection_string
from edgeloop.envelope import (
    EnvelopeContext,
    EnvelopeContextError,
    EnvelopeIntegrityError,
    PrivateKeyring,
    open_bytes,
)
from edgeloop.runtime import ModuleRuntime
from edgeloop.runtime.fake import FakeHubClient
from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration.azurite_fixtures import azurite, container_sas_url  # noqa: F401
from tests.integration.slow_link import SlowLink
from tests.support import wait_for
from tests.unit.uploader_support import keyring, public_pem, selected

pytestmark = pytest.mark.integration

FAST_RETRY = {"initial_backoff_s": 0.1, "max_backoff_s": 0.5, "max_attempts": 5}


class Running:
    """The module in this process with the real Azure adapter, fed by the in-memory hub."""

    def __init__(self, tmp_path: Path, desired: dict[str, Any], *, env_credential: str | None) -> None:
        self.samples = tmp_path / "samples"
        self.samples.mkdir(parents=True, exist_ok=True)
        self.hub = FakeHubClient(desired)
        self.module = UploaderModule(
            samples_dir=self.samples,
            outbox_dir=tmp_path / "outbox",
            store_factory=self._factory,
            env_credential=env_credential,
        )
        self.runtime = ModuleRuntime(self.module, client=self.hub, device_id="dev-1", tick_interval=0.05)
        self.thread = threading.Thread(target=self.runtime.run)

    @staticmethod
    def _factory(credential: Credential, config: UploaderConfig) -> BlobContainer:
        store = azure_store_factory(credential, config)
        return store

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.module.uploader is not None, what="module start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.request_stop("test over")
        self.thread.join(60)

    def notices(self) -> list[UploadedNotice]:
        return [n for n in self.hub.sent_items("uploaded") if isinstance(n, UploadedNotice)]

    def announced(self) -> set[str]:
        return {n.sample_id for n in self.notices()}


def _desired(**extra: Any) -> dict[str, Any]:
    return {"encryption": {"public_key_pem": public_pem(0)}, "retry": FAST_RETRY, **extra}


def _store(server: Azurite) -> AzureContainer:
    return AzureContainer.from_credential(server.connection_string, container="data")


def _open(store: BlobContainer, name: str, ring: PrivateKeyring | None = None) -> bytes:
    parts = parse_sample_blob_name(name)
    info = store.info(name)
    expected = EnvelopeContext(parts.sample_id, parts.device_id, info.metadata["content_type"])
    return open_bytes(store.read(name)[0], keyring=ring or keyring(0), expected=expected)


@pytest.fixture
def images() -> dict[str, bytes]:
    return {f"01S{i:03d}": os.urandom(20_000 + i * 1000) for i in range(6)}


def test_round_trip_and_tamper_and_swap_detection(
    tmp_path: Path,
    azurite: Azurite,  # noqa: F811
    images: dict[str, bytes],
) -> None:
    # given
    with Running(tmp_path, _desired(), env_credential=azurite.connection_string) as running:
        items = [selected(running.samples, sid, data) for sid, data in images.items()]
        # when
        running.hub.push_input("selected", items)
        wait_for(lambda: running.announced() == set(images), what="all uploaded")
    store = _store(azurite)
    names = {parse_sample_blob_name(n.blob_name).sample_id: n.blob_name for n in running.notices()}
    # then: download and decrypt equals the original; metadata readable without the key
    for sample_id, data in images.items():
        assert _open(store, names[sample_id]) == data
        meta = store.info(names[sample_id]).metadata
        assert meta["reason"] == "margin 0.05 < 0.1"
        assert meta["plaintext_sha256"] == hashlib.sha256(data).hexdigest()
    # and the cloud's reader opens each one from what the blob carries (name, metadata, envelope)
    opener = EnvelopeOpener(keyring(0))
    assert {ref.sample_id: fetch_plaintext(store, ref, opener) for ref in find_samples(store)} == images
    # and one blob a sample, which the cloud finds by its index tags as by listing
    assert sorted(b.name for b in store.list()) == sorted(names.values())
    tagged = list(find_samples_by_tags(store, {"strategy": "uncertainty", "device": "dev-1"}))
    assert sorted(ref.blob_name for ref in tagged) == sorted(names.values())
    assert {ref.metadata["strategy"] for ref in tagged} == {"uncertainty"}
    assert sorted(ref.blob_name for ref in find_samples(store)) == sorted(names.values())
    # tamper: one byte flipped in the stored blob
    a, b = names["01S000"], names["01S001"]
    tampered = bytearray(store.read(a)[0])
    tampered[len(tampered) // 2] ^= 0x40
    store.write(a, bytes(tampered), metadata=store.info(a).metadata)
    with pytest.raises(EnvelopeIntegrityError):
        _open(store, a)
    # swap: B's bytes (and metadata) copied over C's name
    c = names["01S002"]
    store.write(c, store.read(b)[0], metadata=store.info(b).metadata)
    with pytest.raises(EnvelopeContextError):
        _open(store, c)


def test_storage_outage_then_restart_delivers_every_sample_once(
    tmp_path: Path,
    azurite: Azurite,  # noqa: F811
    images: dict[str, bytes],
) -> None:
    with Running(tmp_path, _desired(), env_credential=azurite.connection_string) as running:
        wait_for(lambda: running.module.uploader is not None)
        # given: Azurite goes away
        azurite.stop()
        running.hub.push_input("selected", [selected(running.samples, s, d) for s, d in images.items()])
        wait_for(
            lambda: running.hub.call_method("getQueue").payload["storage"]["error"] is not None, what="error"
        )
        time.sleep(1.5)
        queue = running.hub.call_method("getQueue").payload
        assert queue["depth"] == len(images)
        assert queue["states"]["quarantined"] == 0
        # when: it comes back
        azurite.start()
        wait_for(lambda: running.announced() == set(images), what="all uploaded")
    # then: one blob each (no sidecar by default), all opening to the originals
    store = _store(azurite)
    blobs = sorted(b.name for b in store.list())
    assert len(blobs) == len(images)
    assert sorted(n.sample_id for n in running.notices()) == sorted(images)
    for name in blobs:
        if name.endswith(".elenv"):
            assert _open(store, name) == images[parse_sample_blob_name(name).sample_id]


def _driver(tmp_path: Path, server: Azurite, *, stay: bool, port: int | None = None) -> subprocess.Popen[str]:
    """The uploader driver against ``server`` (through ``port`` on loopback when given)."""
    key_file = tmp_path / "envelope-public.pem"
    key_file.write_text(public_pem(0))
    env = subprocess_env(
        {
            "EDGELOOP_STORAGE_CONNECTION_STRING": connection_string(server.host, port or server.port),
            "EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE": str(key_file),
        }
    )
    command = [
        sys.executable, "-m", "tests.integration.uploader_driver",
        "--samples", str(tmp_path / "samples"), "--outbox", str(tmp_path / "outbox"),
        "--notices", str(tmp_path / "notices.jsonl"), "--desired", json.dumps({"retry": FAST_RETRY}),
    ]  # fmt: skip
    if stay:
        command.append("--stay")
    return subprocess.Popen(
        command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _notices(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "notices.jsonl"
    if not path.exists():
        return []
    docs = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    items: list[dict[str, Any]] = []
    for doc in docs:
        items.extend(doc["items"] if doc.get("schema") == "edgeloop.batch/1" else [doc])
    return items


def test_sigkill_mid_upload_then_restart_delivers_every_sample_once(
    tmp_path: Path,
    azurite: Azurite,  # noqa: F811
) -> None:
    # given: 40 samples of 300 KB on the shared volume
    frames = tmp_path / "samples" / "frames"
    frames.mkdir(parents=True)
    originals = {f"01K{i:03d}": os.urandom(300_000) for i in range(40)}
    for sample_id, data in originals.items():
        (frames / f"{sample_id}.jpg").write_bytes(data)
    _store(azurite).ensure_container()
    # when: the uploader is killed with SIGKILL while uploads are under way (over a 1 MB/s
    # link, so 12 MB cannot all be shipped before the kill however fast the uploader is)
    with SlowLink((azurite.host, azurite.port), bytes_per_s=1_000_000) as link:
        first = _driver(tmp_path, azurite, stay=True, port=link.port)
        try:
            wait_for(lambda: len(_notices(tmp_path)) >= 5, timeout=60, what="first uploads")
        finally:
            first.send_signal(signal.SIGKILL)
            first.communicate(timeout=10)
    shipped_before = len({n["sample_id"] for n in _notices(tmp_path)})
    assert shipped_before < len(originals), "the kill came too late to interrupt anything"
    # and restarted (edgeHub redelivers the unacknowledged messages: the driver feeds all again)
    second = _driver(tmp_path, azurite, stay=False)
    output, _ = second.communicate(timeout=120)
    assert second.returncode == 0, output
    # then: every sample is in storage exactly once and opens to its original
    store = _store(azurite)
    sealed = [b.name for b in store.list() if b.name.endswith(".elenv")]
    assert sorted(parse_sample_blob_name(n).sample_id for n in sealed) == sorted(originals)
    assert [b.name for b in store.list() if not b.name.endswith(".elenv")] == []  # no sidecar by default
    for name in sealed:
        assert _open(store, name) == originals[parse_sample_blob_name(name).sample_id]
    assert {n["sample_id"] for n in _notices(tmp_path)} == set(originals)
    outbox = tmp_path / "outbox"
    assert list((outbox / "sealed").iterdir()) == []
    assert list((outbox / "claims").iterdir()) == []


def test_disk_budget_evicts_lowest_priority_then_oldest_until_storage_is_reachable(
    tmp_path: Path,
    azurite: Azurite,  # noqa: F811
) -> None:
    # given: room for three sealed 50 KB samples, and no credentials yet (nothing can leave)
    desired = _desired(outbox={"max_bytes": 3 * 51_000})
    with Running(tmp_path, desired, env_credential=None) as running:
        low = [selected(running.samples, f"01L{i}", os.urandom(50_000), priority=0) for i in range(3)]
        high = [selected(running.samples, f"01H{i}", os.urandom(50_000), priority=5) for i in range(2)]
        running.hub.push_input("selected", low)
        running.hub.push_input("selected", high)
        wait_for(
            lambda: running.hub.call_method("getQueue").payload["states"]["evicted"] == 2, what="evictions"
        )
        stats = running.hub.call_method("getStats").payload["module"]
        assert stats["counters"]["evicted"] == 2
        assert [e["id"] for e in stats["recent_evictions"]] == ["01L0", "01L1"]
        assert running.hub.call_method("getQueue").payload["bytes"] <= 3 * 51_000
        # when storage becomes reachable
        response = running.hub.call_method("setCredentials", {"connection_string": azurite.connection_string})
        assert response.status == 200
        wait_for(lambda: running.announced() == {"01H0", "01H1", "01L2"}, what="survivors uploaded")
    # then: the evicted never arrive
    store = _store(azurite)
    names = sorted(
        parse_sample_blob_name(b.name).sample_id for b in store.list() if b.name.endswith(".elenv")
    )
    assert names == ["01H0", "01H1", "01L2"]


def test_an_expired_sas_is_replaced_by_set_credentials(
    tmp_path: Path,
    azurite: Azurite,  # noqa: F811
) -> None:
    # given: the twin holds a SAS that expires in 2 seconds
    _store(azurite).ensure_container()
    short = container_sas_url(azurite, "data", expires_in=2)
    desired = _desired(storage={"container_sas_url": short})
    with Running(tmp_path, desired, env_credential=None) as running:
        time.sleep(3)
        running.hub.push_input("selected", [selected(running.samples, "01SAS", b"payload" * 1000)])
        wait_for(
            lambda: "credentials" in (running.hub.call_method("getQueue").payload["storage"]["error"] or ""),
            what="auth error reported",
        )
        assert running.notices() == []
        # when
        fresh = container_sas_url(azurite, "data", expires_in=600)
        response = running.hub.call_method("setCredentials", {"container_sas_url": fresh})
        # then
        assert response.status == 200
        assert "sig=" not in json.dumps(response.payload)
        wait_for(lambda: len(running.notices()) == 1, what="uploaded after new SAS")
        assert "sig=" not in json.dumps(running.hub.reported)
    assert _open(_store(azurite), running.notices()[0].blob_name) == b"payload" * 1000


def test_the_blob_store_reads_back_what_the_uploader_wrote(tmp_path: Path, azurite: Azurite) -> None:  # noqa: F811
    # given
    with Running(tmp_path, _desired(), env_credential=azurite.connection_string) as running:
        running.hub.push_input("selected", [selected(running.samples, "01RB", b"abc" * 100)])
        wait_for(lambda: len(running.notices()) == 1)
    # when
    out = io.BytesIO()
    info = _store(azurite).download_to(running.notices()[0].blob_name, out)
    # then
    assert info.size == len(out.getvalue()) == running.notices()[0].bytes
