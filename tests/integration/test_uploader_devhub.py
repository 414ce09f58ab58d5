"""``python -m edgeloop_uploader`` under the dev hub with the real SDK, uploading to Azurite."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from edgeloop.blobstore import AzureContainer, parse_sample_blob_name
from edgeloop.devtools.azurite import Azurite, connection_string
from edgeloop.envelope import EnvelopeContext, open_bytes
from tests.integration.azurite_fixtures import azurite  # noqa: F401
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import manifest
from tests.integration.slow_link import SlowLink
from tests.integration.uploader_feeder import trace
from tests.support import wait_for
from tests.unit.uploader_support import keyring, public_pem

pytestmark = pytest.mark.integration


def _manifest() -> dict[str, Any]:
    sink = 'BrokeredEndpoint("/modules/uploader/inputs/{0}")'
    return manifest(
        ["feeder", "uploader"],
        {
            "selected": f"FROM /messages/modules/feeder/outputs/selected INTO {sink.format('selected')}",
            "predictions": "FROM /messages/modules/feeder/outputs/predictions "
            f"INTO {sink.format('predictions')}",
            "uploaded": "FROM /messages/modules/uploader/outputs/uploaded INTO $upstream",
        },
        desired={
            "uploader": {
                "encryption": {"public_key_pem": public_pem(0)},
                "retry": {"initial_backoff_s": 0.2, "max_backoff_s": 1.0},
                "prediction_log": {"max_age_s": 1.0},
            }
        },
    )


def test_the_uploader_module_under_the_dev_hub_ships_sealed_samples_and_announces_them(
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    tmp_path: Path,
    azurite: Azurite,  # noqa: F811
) -> None:
    # given
    samples = tmp_path / "samples"
    samples.mkdir()
    hub = dev_hub(_manifest())
    env = {"EDGELOOP_SAMPLES_DIR": str(samples)}
    uploader = module_process(
        hub,
        "uploader",
        env={
            **env,
            "EDGELOOP_OUTBOX_DIR": str(tmp_path / "outbox"),
            "EDGELOOP_STORAGE_CONNECTION_STRING": azurite.connection_string,
        },
    )
    module_process(hub, "feeder", package="tests.integration.uploader_feeder", env=env)
    hub.wait_connected("uploader", inputs=True)
    hub.wait_connected("feeder")
    # when
    fed = hub.invoke("feeder", "feed", {"count": 8, "size": 30_000}, timeout=30)
    assert fed["status"] == 200, fed
    digests: dict[str, str] = fed["payload"]["sha256"]

    # then: one uploaded notice per sample upstream, with the sample's trace context
    def notices() -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        for message in hub.upstream():
            body = message["body"]
            if message["module"] == "uploader":
                items.extend(body["items"] if body["schema"] == "edgeloop.batch/1" else [body])
        return [n for n in items if n.get("strategy") != "prediction-log"]

    wait_for(lambda: len(notices()) >= 8, what="eight uploaded notices", timeout=90)
    bodies = {n["sample_id"]: n for n in notices()}
    assert sorted(bodies) == sorted(digests)
    for sample_id, notice in bodies.items():
        assert notice["traceparent"] == trace(sample_id)
        assert notice["plaintext_sha256"] == digests[sample_id]
    # and the blobs open to the originals
    store = AzureContainer.from_credential(azurite.connection_string, container="data")
    for sample_id, notice in bodies.items():
        name = notice["blob_name"]
        parts = parse_sample_blob_name(name)
        expected = EnvelopeContext(parts.sample_id, parts.device_id, "image/jpeg")
        plain = open_bytes(store.read(name)[0], keyring=keyring(0), expected=expected)
        assert hashlib.sha256(plain).hexdigest() == digests[sample_id]
    # and the prediction log arrives, the queue drains, the methods answer
    wait_for(
        lambda: any(b.name.startswith("predictions/") for b in store.list()),
        timeout=60,
        what="prediction log",
    )
    queue = hub.invoke("uploader", "getQueue")
    assert queue["status"] == 200
    assert queue["payload"]["states"]["quarantined"] == 0
    reported = hub.wait_reported("uploader", lambda r: "config" in r)
    assert reported["config"]["encryption"]["public_key_pem"].startswith("-----BEGIN PUBLIC KEY")
    assert uploader.running


def test_sigkill_mid_upload_under_the_dev_hub_then_restart_delivers_every_sample_once(
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    tmp_path: Path,
    azurite: Azurite,  # noqa: F811
) -> None:
    # given: thirty accepted samples being uploaded over a slow link (about 9 MB at 1 MB/s,
    # so the kill lands mid-upload however fast the machine is)
    samples = tmp_path / "samples"
    samples.mkdir()
    hub = dev_hub(_manifest())
    env = {
        "EDGELOOP_SAMPLES_DIR": str(samples),
        "EDGELOOP_OUTBOX_DIR": str(tmp_path / "outbox"),
        "EDGELOOP_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }
    store = AzureContainer.from_credential(azurite.connection_string, container="data")

    def states() -> dict[str, int]:
        answer = hub.invoke("uploader", "getQueue")
        return answer["payload"]["states"] if answer["status"] == 200 else {}

    with SlowLink((azurite.host, azurite.port), bytes_per_s=1_000_000) as link:
        slow = connection_string(azurite.host, link.port)
        first = module_process(hub, "uploader", env={**env, "EDGELOOP_STORAGE_CONNECTION_STRING": slow})
        module_process(hub, "feeder", package="tests.integration.uploader_feeder", env=env)
        hub.wait_connected("uploader", inputs=True)
        hub.wait_connected("feeder")
        fed = hub.invoke("feeder", "feed", {"count": 30, "size": 300_000}, timeout=60)
        digests: dict[str, str] = fed["payload"]["sha256"]
        wait_for(
            lambda: sum(states().values()) == 30 and states()["done"] >= 2,
            timeout=60,
            what="accepted, uploads begun",
        )
        # when: killed with SIGKILL while uploads are under way, then started again
        first.kill()
    before = [b.name for b in store.list() if b.name.endswith(".elenv")]
    assert len(before) < 30, "the kill came too late to interrupt anything"
    module_process(hub, "uploader", env=env)
    hub.wait_connected("uploader", inputs=True)
    wait_for(lambda: states().get("done") == 30, what="all done after the restart", timeout=120)
    # then: every sample exactly once in storage, opening to its original
    sealed = [
        b.name for b in store.list() if b.name.endswith(".elenv") and not b.name.startswith("predictions/")
    ]
    assert sorted(parse_sample_blob_name(n).sample_id for n in sealed) == sorted(digests)
    for name in sealed:
        parts = parse_sample_blob_name(name)
        expected = EnvelopeContext(parts.sample_id, parts.device_id, "image/jpeg")
        plain = open_bytes(store.read(name)[0], keyring=keyring(0), expected=expected)
        assert hashlib.sha256(plain).hexdigest() == digests[parts.sample_id]
    assert states()["quarantined"] == 0
