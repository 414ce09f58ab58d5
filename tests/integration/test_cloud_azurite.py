"""The cloud side against real Azurite: encrypted samples in, a promoted, signed model out.

Also the registry's alias race and the run lease on real Blob Storage semantics (ETags, leases),
and the ``edgeloop cloud`` CLI as a process.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
from edgeloop_cloud.basedata import load_base_data
from edgeloop_cloud.basedata_config import BaseDataConfig
from edgeloop_cloud.factory import services_from_env
from edgeloop_cloud.pipeline import CloudServices, run_trigger_once
from edgeloop_cloud.registry import Registry
from edgeloop_cloud.rollout import desired_model
from edgeloop_cloud.runs import RunLedger
from edgeloop_demo.scenario import ScenarioConfig, build

from edgeloop import envelope, signing
from edgeloop.blobstore import AzureContainer
from edgeloop.devtools.azurite import Azurite
from edgeloop.keys import KeySet
from tests.cloud_support import cloud_test_config, digits_base_folder, upload_sealed
from tests.conftest import subprocess_env
from tests.integration.azurite_fixtures import azurite  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture
def env(azurite: Azurite, keys: KeySet, tmp_path: Path, digits_base_dir: Path) -> dict[str, str]:  # noqa: F811
    config = tmp_path / "cloud.json"
    config.write_text(json.dumps(cloud_test_config(digits_base_dir)), encoding="utf-8")
    return {
        "EDGELOOP_STORAGE_CONNECTION_STRING": azurite.connection_string,
        "EDGELOOP_SAMPLE_KEYS": str(keys.envelope_private),
        "EDGELOOP_SIGNING_KEY": str(keys.signing_private),
        "EDGELOOP_CLOUD_CONFIG": str(config),
    }


@pytest.fixture
def svc(env: dict[str, str]) -> Iterator[CloudServices]:
    services = services_from_env(env)
    yield services
    services.close()


@pytest.fixture
def request_closing() -> Iterator[Callable[[AzureContainer], None]]:
    opened: list[AzureContainer] = []
    yield opened.append
    for container in opened:
        container.close()


def _drifted_stream(count: int) -> list[tuple[np.ndarray, str]]:
    scenario = build(ScenarioConfig(seed=7))
    idx = [i for i in range(len(scenario.stream)) if scenario.stream.drifted[i]][:count]
    return [(scenario.stream.frames[i], str(int(scenario.stream.labels[i]))) for i in idx]


def test_encrypted_samples_train_into_a_promoted_signed_model(
    svc: CloudServices, keys: KeySet, env: dict[str, str], tmp_path: Path
) -> None:
    # given: 50 sealed, labelled samples; one tampered, one renamed onto another sample's name
    public = envelope.PublicKey.from_file(keys.envelope_public)
    names = {}
    for n, (frame, _label) in enumerate(_drifted_stream(50)):
        names[n] = upload_sealed(svc.data, public_key=public, sample_id=f"s{n:03d}", frame=frame)
    stream = _drifted_stream(50)
    labels = "sample_id,label\n" + "".join(f"s{n:03d},{lbl}\n" for n, (_f, lbl) in enumerate(stream))
    svc.data.write("labels/round-1.csv", labels.encode())
    tampered, info = svc.data.read(names[0])
    svc.data.write(names[0], tampered[:-5] + bytes(5), metadata=info.metadata)
    other, _ = svc.data.read(names[2])
    svc.data.write(names[1], other, metadata=svc.data.read(names[1])[1].metadata)
    # when
    outcome = run_trigger_once(svc)
    # then: promoted, signed, and the skipped samples say why
    assert outcome.status == "promoted", outcome.as_dict()
    registry = Registry(svc.models)
    champion = registry.champion("digits")
    assert champion is not None
    assert champion.version == outcome.version
    model = registry.read_model("digits", champion.version)
    signing.verify(keys.signing_public.read_bytes(), model, champion.signature)
    card = registry.card("digits", champion.version)
    skipped = {s["sample_id"]: s["reason"] for s in card["training_manifest"]["skipped_samples"]}
    assert set(skipped) == {"s000", "s001"}
    assert "EnvelopeIntegrityError" in skipped["s000"]
    assert "EnvelopeContextError" in skipped["s001"]
    assert card["gate"]["decision"] == "promote"
    assert card["metrics"]["overall"]["accuracy"] > 0.5
    # and the rollout URL reads the model, and only reads it
    url = desired_model(registry, champion, sas_hours=1)["url"]
    with urllib.request.urlopen(url, timeout=10) as response:
        assert hashlib.sha256(response.read()).hexdigest() == champion.sha256
    put = urllib.request.Request(url, data=b"evil", method="PUT", headers={"x-ms-blob-type": "BlockBlob"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(put, timeout=10)
    refused.value.close()
    assert refused.value.code == 403
    # and the CLI, as a process, finds nothing new to train on
    done = subprocess.run(
        [sys.executable, "-m", "edgeloop", "cloud", "trigger", "--once"],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "idle"
    # and the fleet deployment files for az are written for the champion
    out = tmp_path / "deploy"
    written = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeloop",
            "cloud",
            "rollout",
            "--deployment-dir",
            str(out),
            "--hub",
            "my-hub",
        ],
        env=subprocess_env(env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert written.returncode == 0, written.stderr
    commands = json.loads(written.stdout)["commands"]
    assert "--layered --hub-name my-hub" in commands[0]
    assert "ring='canary'" in commands[0]
    content = json.loads((out / f"digits-{champion.version}-fleet.content.json").read_text())
    model_spec = content["content"]["modulesContent"]["inference"]["properties.desired.model"]
    assert model_spec["sha256"] == champion.sha256
    assert "sig=" in model_spec["url"]


def test_alias_race_on_blob_storage_has_one_winner(
    azurite: Azurite,  # noqa: F811
    request_closing: Callable[[AzureContainer], None],
) -> None:
    # given
    container = AzureContainer.from_connection_string(azurite.connection_string, "models")
    request_closing(container)
    registry = Registry(container)
    key = signing.generate_private_key()
    versions = []
    for body in (b"one", b"two", b"three"):
        version = registry.claim_version("digits")
        registry.publish("digits", version, body, private_key_pem=key, card={})
        versions.append(version)
    assert registry.promote("digits", versions[0], expected=None)
    seen = registry.champion("digits")
    results: dict[str, bool] = {}
    barrier = threading.Barrier(2)

    def promoter(version: str) -> None:
        barrier.wait()
        results[version] = registry.promote("digits", version, expected=seen)

    # when
    threads = [threading.Thread(target=promoter, args=(v,)) for v in versions[1:]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then
    assert sorted(results.values()) == [False, True]
    champion = registry.champion("digits")
    assert champion is not None
    assert results[champion.version] is True


def test_run_lease_on_blob_storage_admits_one_instance(
    azurite: Azurite,  # noqa: F811
    request_closing: Callable[[AzureContainer], None],
) -> None:
    # given
    runs = AzureContainer.from_connection_string(azurite.connection_string, "runs")
    request_closing(runs)
    first, second = RunLedger(runs, "digits"), RunLedger(runs, "digits")
    # when
    run = first.claim("run-x", {})
    blocked = second.claim("run-x", {})
    # then
    assert run is not None
    assert blocked is None
    run.finish("rejected", consumed=["a"])
    assert second.claim("run-x", {}) is None
    assert second.state().consumed == {"a"}


def test_base_data_under_a_blob_prefix_reads_as_the_same_folder(svc: CloudServices, tmp_path: Path) -> None:
    # given: part of the demo's base folder (labels.csv and its images) under a prefix, and a
    # neighbouring prefix that must not be read
    source = digits_base_folder()
    rows = (source / "labels.csv").read_text().splitlines()
    train = rows[1:31]
    labels = {r.split(",")[1] for r in train}
    held = [r for r in rows if r.endswith(",1") and r.split(",")[1] in labels][:10]
    kept = [rows[0], *train, *held]
    local = tmp_path / "base"
    (local / "train").mkdir(parents=True)
    (local / "holdout").mkdir()
    (local / "labels.csv").write_text("\n".join(kept) + "\n")
    svc.data.write("base/digits/labels.csv", (local / "labels.csv").read_bytes())
    for row in kept[1:]:
        name = row.split(",")[0]
        (local / name).write_bytes((source / name).read_bytes())
        svc.data.write(f"base/digits/{name}", (source / name).read_bytes())
    svc.data.write("base/digits-old/labels.csv", b"file,label\n")
    # when
    from_blobs = load_base_data(
        BaseDataConfig(blob_prefix="base/digits"), data=svc.data, data_container="data"
    )
    from_folder = load_base_data(BaseDataConfig(folder=str(local)))
    # then
    assert (len(from_blobs.train_labels), len(from_blobs.holdout_labels)) == (30, 10)
    assert from_blobs.train_labels == from_folder.train_labels
    assert from_blobs.holdout_labels == from_folder.holdout_labels
    assert from_blobs.description["sha256"] == from_folder.description["sha256"]
    assert from_blobs.description["source"] == "blob:data/base/digits"
