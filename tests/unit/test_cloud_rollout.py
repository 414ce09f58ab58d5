"""Rollout: desired properties, layered deployment, canary then fleet, roll back on failure."""

from __future__ import annotations

from typing import Any

import pytest
from edgeloop_cloud.registry import Registry
from edgeloop_cloud.rollout import (
    MemoryTwinService,
    RolloutConfig,
    RolloutController,
    desired_model,
    device_state,
    layered_deployment,
)
from edgeloop_cloud.storage import MemoryContainer

from edgeloop import signing
from edgeloop.clock import FakeClock

KEY = signing.generate_private_key()
TAGS = {
    "cam-1": {"model": "digits", "ring": "canary"},
    "cam-2": {"model": "digits", "ring": "main"},
    "cam-3": {"model": "digits", "ring": "main"},
    "other": {"model": "faces", "ring": "canary"},
}


def _spec(version: str, sha: str) -> dict[str, Any]:
    return {"name": "digits", "version": version, "url": f"https://x/{version}?sig=s", "sha256": sha * 64,
            "signature": "c2ln"}  # fmt: skip


def _device(service: MemoryTwinService, *, fail_on: str | None = None) -> None:
    """Devices that load what they are told, except ``fail_on`` (a sha256)."""

    def on_desired(device: str, module: str, patch: dict[str, Any]) -> None:
        spec = patch["model"]
        if spec["sha256"] == fail_on:
            report = {
                "status": "failed",
                "sha256": "a" * 64,
                "failed": {"sha256": spec["sha256"], "reason": "x"},
            }
        else:
            report = {"status": "loaded", "sha256": spec["sha256"], "version": spec["version"]}
        service.reports[(device, module)] = {"model": report}

    service.on_desired = on_desired


def test_desired_model_carries_a_read_only_url_and_proofs() -> None:
    # given
    registry = Registry(MemoryContainer("models"))
    version = registry.claim_version("digits")
    registry.publish("digits", version, b"model", private_key_pem=KEY, card={})
    registry.promote("digits", version, expected=None)
    champion = registry.champion("digits")
    assert champion is not None
    # when
    desired = desired_model(registry, champion, sas_hours=1)
    # then
    assert desired["version"] == "v1"
    assert "sp=r" in desired["url"]
    assert desired["sha256"] == champion.sha256
    assert desired["signature"] == champion.signature


@pytest.mark.parametrize(
    ("reported", "state"),
    [
        ({"model": {"status": "loaded", "sha256": "b" * 64}}, "ready"),
        ({"model": {"status": "loading", "sha256": "a" * 64}}, "pending"),
        ({"model": {"status": "loaded", "sha256": "a" * 64, "failed": {"sha256": "b" * 64}}}, "failed"),
        ({}, "pending"),
    ],
)
def test_device_state(reported: dict[str, Any], state: str) -> None:
    assert device_state(reported, _spec("v2", "b")) == state


def test_canary_first_then_fleet_when_canaries_are_ready() -> None:
    # given
    service = MemoryTwinService(TAGS)
    _device(service)
    controller = RolloutController(service, RolloutConfig(), clock=FakeClock())
    # when
    state = controller.start(_spec("v2", "b"), _spec("v1", "a"))
    # then: only the canary was asked first
    assert state.updated == ["cam-1"]
    # when
    controller.step(state)
    # then: widened to the fleet
    assert state.stage == "fleet"
    assert state.updated == ["cam-1", "cam-2", "cam-3"]
    # when
    controller.step(state)
    # then
    assert state.stage == "done"
    assert state.ready == ["cam-1", "cam-2", "cam-3"]


def test_a_failing_canary_rolls_back_and_never_reaches_the_fleet() -> None:
    # given
    service = MemoryTwinService(TAGS)
    _device(service, fail_on="b" * 64)
    controller = RolloutController(service, RolloutConfig(), clock=FakeClock())
    # when
    state = controller.run(controller.start(_spec("v2", "b"), _spec("v1", "a")), poll_s=1)
    # then
    assert state.stage == "rolled_back"
    assert state.failed == ["cam-1"]
    assert service.desired[("cam-1", "inference")]["model"]["version"] == "v1"
    assert ("cam-2", "inference") not in service.desired


def test_silent_devices_time_out_and_roll_back() -> None:
    # given: devices that never report
    service = MemoryTwinService(TAGS)
    clock = FakeClock()
    controller = RolloutController(service, RolloutConfig(timeout_minutes=1), clock=clock)
    # when
    state = controller.run(controller.start(_spec("v2", "b"), _spec("v1", "a")), poll_s=10)
    # then
    assert state.stage == "timed_out"
    assert service.desired[("cam-1", "inference")]["model"]["version"] == "v1"


@pytest.mark.parametrize("canary", [True, False])
def test_layered_deployment_sets_only_the_model_property(canary: bool) -> None:
    # when
    deployment = layered_deployment(_spec("v2", "b"), RolloutConfig(), canary=canary)
    # then
    modules = deployment["content"]["modulesContent"]
    assert list(modules) == ["inference"]
    assert modules["inference"]["properties.desired.model"]["version"] == "v2"
    assert ("ring='canary'" in deployment["targetCondition"]) is canary
    assert set(deployment["metrics"]["queries"]) == {"ready", "failed"}


class _FakeRegistryManager:
    """Stands in for ``azure.iot.hub.IoTHubRegistryManager`` (no hub here): records calls."""

    def __init__(self) -> None:
        self.updates: list[tuple[str, str, Any]] = []
        self.queries: list[str] = []

    def query_iot_hub(self, query: Any, token: str | None, limit: int) -> Any:
        from azure.iot.hub.models import QueryResult, Twin

        self.queries.append(query.query)
        page = [Twin(device_id="cam-2")] if token else [Twin(device_id="cam-1")]
        return QueryResult(items=page, continuation_token=None if token else "next")

    def update_module_twin(self, device_id: str, module_id: str, twin: Any) -> None:
        self.updates.append((device_id, module_id, twin))

    def get_module_twin(self, device_id: str, module_id: str) -> Any:
        from azure.iot.hub.models import Twin, TwinProperties

        return Twin(properties=TwinProperties(reported={"model": {"status": "loaded"}}))


def test_iothub_service_pages_queries_and_patches_desired_properties() -> None:
    # given
    from edgeloop_cloud.iothub import IoTHubTwinService

    service = IoTHubTwinService(
        "HostName=h.azure-devices.net;SharedAccessKeyName=service;SharedAccessKey=eA=="
    )
    fake = _FakeRegistryManager()
    service._manager = fake
    # when
    devices = service.devices("tags.edgeloop.ring='canary'")
    service.set_desired("cam-1", "inference", {"model": _spec("v2", "b")})
    reported = service.reported("cam-1", "inference")
    # then
    assert devices == ["cam-1", "cam-2"]
    assert fake.queries[0] == "SELECT deviceId FROM devices WHERE tags.edgeloop.ring='canary'"
    device, module, twin = fake.updates[0]
    assert (device, module) == ("cam-1", "inference")
    assert twin.properties.desired["model"]["version"] == "v2"
    assert reported == {"model": {"status": "loaded"}}
