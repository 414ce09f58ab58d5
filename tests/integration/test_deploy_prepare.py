"""The documented path to a first device, against the dev hub and Azurite: ``edgeloop deploy
prepare`` makes the keys, containers, SAS and the signed initial model; the prepared template
runs the four modules; a selected sample arrives sealed and the cloud's private key opens it."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from edgeloop.blobstore import SEALED_SUFFIX
from edgeloop.devtools.azurite import Azurite
from edgeloop.envelope import PrivateKeyring, open_bytes
from edgeloop.keys import ENVELOPE_PRIVATE, SIGNING_PRIVATE
from tests import model_factory as mf
from tests.conftest import subprocess_env
from tests.integration.azurite_fixtures import azurite  # noqa: F401
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.support import wait_for

pytestmark = pytest.mark.integration

MODULES = ("uploader", "filter", "inference", "capture")
#: For this check only: select every prediction, so the first frame makes a sample.
SELECT_ALL = {
    "version": "deploy-it",
    "strategies": [{"name": "all", "rules": [{"type": "every_nth", "n": 1}]}],
}


def deploy_prepare(cwd: Path, *args: str, connection_string: str) -> subprocess.CompletedProcess[str]:
    """``edgeloop deploy prepare`` as a user runs it, the connection string in the environment."""
    env = subprocess_env({"AZURE_STORAGE_CONNECTION_STRING": connection_string})
    command = [sys.executable, "-m", "edgeloop", "deploy", "prepare", *args]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120)


def blobs(server: Azurite, container: str) -> list[str]:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(server.connection_string).get_container_client(
        container
    )
    try:
        return [b.name for b in client.list_blobs()]
    except Exception:
        return []


def test_a_prepared_device_uploads_a_selected_sample_the_cloud_opens(
    tmp_path: Path,
    repo_root: Path,
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    azurite: Azurite,  # noqa: F811
) -> None:
    # given: the cloud side, prepared as docs/deploy.md says
    (tmp_path / "digits.onnx").write_bytes(mf.digits_model())
    shutil.copy(repo_root / "deployment.template.json", tmp_path / "deployment.template.json")
    done = deploy_prepare(
        tmp_path,
        "--model",
        "digits.onnx",
        "--keys",
        "cloud-keys",
        connection_string=azurite.connection_string,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    keys = tmp_path / "cloud-keys"
    for private in (ENVELOPE_PRIVATE, SIGNING_PRIVATE):
        assert stat.S_IMODE((keys / private).stat().st_mode) == 0o600
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    secret = tmp_path / "edgeloop-deploy" / "device-secrets" / "storage-sas-url"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert summary["storage"]["sas_permissions"] == "cw"
    assert summary["model"]["origin"] == "published"
    assert "digits/v1/model.onnx" in blobs(azurite, "models")
    device_sig = parse_qs(urlsplit(secret.read_text().strip()).query)["sig"][0]
    layer_text = (tmp_path / "edgeloop-deploy" / "edgeloop.layered.json").read_text()
    assert device_sig not in layer_text
    prepared: dict[str, Any] = json.loads(
        (tmp_path / "edgeloop-deploy" / "deployment.prepared.template.json").read_text()
    )
    prepared["modulesContent"]["filter"]["properties.desired"]["policy"] = SELECT_ALL
    # and: the device, prepared as prepare-device.sh does, the secret file copied into its folder
    hub = dev_hub(prepared)
    env = {m: hub.module_env(m) for m in MODULES}
    for values in env.values():
        for name in (
            "EDGELOOP_SAMPLES_DIR",
            "EDGELOOP_STATE_DIR",
            "EDGELOOP_MODELS_DIR",
            "EDGELOOP_OUTBOX_DIR",
        ):
            if name in values:
                Path(values[name]).mkdir(parents=True, exist_ok=True)
    secrets = Path(env["uploader"]["EDGELOOP_SECRETS_DIR"])
    secrets.mkdir(parents=True, exist_ok=True)
    shutil.copy(secret, secrets / "storage-sas-url")
    stream = Path(env["capture"]["EDGELOOP_SAMPLES_DIR"]) / "input" / "stream"
    for i in range(3):
        mf.write_digit_image(stream / f"frame_{i:04d}.png", i, size=32)
    # when: the modules start from the prepared deployment
    procs = [module_process(hub, module) for module in MODULES]
    sealed = wait_for(
        lambda: [b for b in blobs(azurite, "data") if b.endswith(SEALED_SUFFIX)],
        120,
        "a sealed sample in data/",
    )
    # then: the model served is the signed one, and the sample opens with the cloud's private key
    model = hub.twin("inference")["properties"]["reported"]["model"]
    assert (model["status"], model["version"], model["keyId"]) == (
        "loaded",
        "v1",
        summary["keys"]["signing"]["key_id"],
    )
    from azure.storage.blob import BlobServiceClient

    data = BlobServiceClient.from_connection_string(azurite.connection_string).get_blob_client(
        "data", sealed[0]
    )
    plain = open_bytes(
        data.download_blob().readall(),
        keyring=PrivateKeyring.from_files(keys / ENVELOPE_PRIVATE),
        expected=None,
    )
    assert plain.startswith(b"\x89PNG")
    reported = hub.twin("uploader")["properties"]["reported"]
    assert device_sig not in json.dumps(reported)
    assert device_sig not in "".join(proc.log() for proc in procs) + hub.log_tail(1_000_000)
