"""The whole cloud path: sealed samples in Azurite -> trained, gated, promoted, signed model ->
rolled out through the dev hub to a real inference module process that reports it loaded; and a
model that fails the device's checks is rolled back."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeloop_cloud.devhub_twins import DevHubTwinService
from edgeloop_cloud.factory import services_from_env
from edgeloop_cloud.pipeline import CloudServices, run_trigger_once
from edgeloop_cloud.rollout import RolloutConfig, RolloutController, RolloutState, desired_model
from edgeloop_demo.scenario import ScenarioConfig, build

from edgeloop import envelope
from edgeloop.devtools.azurite import Azurite
from edgeloop.keys import KeySet
from tests.cloud_support import cloud_test_config, upload_sealed
from tests.integration.azurite_fixtures import azurite  # noqa: F401
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import manifest

pytestmark = pytest.mark.integration


@pytest.fixture
def svc(
    azurite: Azurite,  # noqa: F811
    keys: KeySet,
    tmp_path: Path,
    digits_base_dir: Path,
) -> Iterator[CloudServices]:
    config = tmp_path / "cloud.json"
    config.write_text(json.dumps(cloud_test_config(digits_base_dir)), encoding="utf-8")
    services = services_from_env(
        {
            "EDGELOOP_STORAGE_CONNECTION_STRING": azurite.connection_string,
            "EDGELOOP_SAMPLE_KEYS": str(keys.envelope_private),
            "EDGELOOP_SIGNING_KEY": str(keys.signing_private),
            "EDGELOOP_CLOUD_CONFIG": str(config),
        }
    )
    yield services
    services.close()


def _run(controller: RolloutController, state: RolloutState, timeout: float = 90.0) -> RolloutState:
    deadline = time.monotonic() + timeout
    while not state.finished and time.monotonic() < deadline:
        time.sleep(0.5)
        controller.step(state)
    return state


def test_promoted_model_rolls_out_to_the_inference_module_under_the_dev_hub(
    svc: CloudServices,
    keys: KeySet,
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    tmp_path: Path,
) -> None:
    # given: sealed, labelled samples trained into a promoted champion
    scenario = build(ScenarioConfig(seed=7))
    public = envelope.PublicKey.from_file(keys.envelope_public)
    rows = ["sample_id,label"]
    for n in range(30):
        upload_sealed(
            svc.data, public_key=public, sample_id=f"s{n:03d}", frame=scenario.stream.frames[300 + n]
        )
        rows.append(f"s{n:03d},{int(scenario.stream.labels[300 + n])}")
    svc.data.write("labels/a.csv", "\n".join(rows).encode())
    outcome = run_trigger_once(svc)
    assert outcome.status == "promoted", outcome.as_dict()
    champion = svc.registry.champion("digits")
    assert champion is not None
    # and an inference module running under the dev hub, trusting the signing key
    doc = manifest(["inference"], {}, desired={"inference": {"public_key": keys.signing_public.read_text()}})
    hub = dev_hub(doc)
    env = {"EDGELOOP_MODELS_DIR": str(tmp_path / "models"), "EDGELOOP_SAMPLES_DIR": str(tmp_path / "samples")}
    inference = module_process(hub, "inference", env=env)
    hub.wait_connected("inference", timeout=60)
    service = DevHubTwinService.from_state_dir(hub.state_dir)
    controller = RolloutController(service, RolloutConfig(timeout_minutes=2))
    target = desired_model(svc.registry, champion, sas_hours=1)
    # when
    state = _run(controller, controller.start(target, None))
    # then
    assert state.stage == "done", (state.as_dict(), inference.log()[-3000:])
    reported = service.reported(state.updated[0], "inference")["model"]
    assert reported["status"] == "loaded"
    assert reported["sha256"] == champion.sha256
    assert reported["version"] == champion.version
    # when: a model whose file does not match its sha256 is rolled out
    forged = {**target, "version": "v99", "sha256": "0" * 64}
    bad = _run(controller, controller.start(forged, target))
    # then: the device reports the failure and is sent back to the good model
    assert bad.stage == "rolled_back", (bad.as_dict(), inference.log()[-3000:])
    assert service.reported(state.updated[0], "inference")["model"]["sha256"] == champion.sha256
