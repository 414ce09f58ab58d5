"""The ``edgeloop cloud`` command group, the Functions app's registrations and the rollout job."""

from __future__ import annotations

from typing import Any

import pytest
from edgeloop_cloud.pipeline import CloudServices
from edgeloop_cloud.registry import Registry
from edgeloop_cloud.rollout import MemoryTwinService
from edgeloop_cloud.rollout_job import rollout_step
from edgeloop_cloud.samples import SampleRef

from edgeloop import signing
from edgeloop.blobstore import MemoryContainer
from edgeloop.cli import main
from edgeloop.clock import FakeClock

KEY = signing.generate_private_key()


class _NoOpener:
    def open(self, blob: bytes, ref: SampleRef) -> bytes:
        return blob


def test_cloud_group_is_registered(capsys: pytest.CaptureFixture[str]) -> None:
    # when
    with pytest.raises(SystemExit) as exit_info:
        main(["cloud", "--help"])
    # then
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for step in ("trigger", "train", "gate", "rollout"):
        assert step in out


def test_missing_storage_setting_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    monkeypatch.delenv("EDGELOOP_STORAGE_CONNECTION_STRING", raising=False)
    # when
    code = main(["cloud", "trigger", "--once"])
    # then
    assert code == 1
    err = capsys.readouterr().err
    assert err.startswith("edgeloop cloud trigger: error: ")
    assert "EDGELOOP_STORAGE_CONNECTION_STRING" in err


def test_functions_app_registers_blob_and_timer_triggers() -> None:
    # when
    import function_app

    functions = {f.get_function_name(): f for f in function_app.app.get_functions()}
    # then
    assert set(functions) == {"on_upload", "retrain_timer", "rollout_timer"}
    bindings = {name: [b.type for b in f.get_bindings()] for name, f in functions.items()}
    assert bindings["on_upload"] == ["blobTrigger"]
    assert bindings["retrain_timer"] == ["timerTrigger"]


def _champion_chain(svc: CloudServices) -> None:
    registry = svc.registry
    for model in (b"one", b"two"):
        version = registry.claim_version("digits")
        registry.publish("digits", version, model, private_key_pem=KEY, card={})
        registry.promote("digits", version, expected=registry.champion("digits"))


@pytest.mark.parametrize(("fails", "final_champion"), [(False, "v2"), (True, "v1")])
def test_rollout_job_resumes_and_moves_the_alias_back_on_failure(fails: bool, final_champion: str) -> None:
    # given: v1 then v2 promoted; one canary device
    clock = FakeClock()
    svc = CloudServices(
        data=MemoryContainer("data", clock=clock),
        models=MemoryContainer("models", clock=clock),
        runs=MemoryContainer("runs", clock=clock),
        opener=_NoOpener(),
        signing_key=KEY,
        clock=clock,
    )
    _champion_chain(svc)
    twins = MemoryTwinService({"cam-1": {"model": "digits", "ring": "canary"}})

    def device(dev: str, module: str, patch: dict[str, Any]) -> None:
        spec = patch["model"]
        bad = fails and spec["version"] == "v2"
        report = {"status": "failed", "failed": {"sha256": spec["sha256"]}} if bad else {
            "status": "loaded", "sha256": spec["sha256"]}  # fmt: skip
        twins.reports[(dev, module)] = {"model": report}

    twins.on_desired = device
    # when: one step per timer tick
    first = rollout_step(svc, twins)
    second = rollout_step(svc, twins)
    # then
    assert first is not None
    assert second is not None
    assert first["stage"] == "canary"
    assert second["stage"] == ("rolled_back" if fails else "fleet")
    champion = Registry(svc.models).champion("digits")
    assert champion is not None
    assert champion.version == final_champion
    assert "sig=" not in str(second)
    assert "?" not in second["target"]["url"]


@pytest.mark.parametrize(
    ("missing", "named"),
    [("EDGELOOP_SAMPLE_KEYS", "envelope private key"), ("EDGELOOP_SIGNING_KEY", "Ed25519 private key")],
)
def test_factory_names_each_missing_secret(missing: str, named: str) -> None:
    # given
    from edgeloop_cloud.factory import services_from_env

    from edgeloop.errors import ConfigError

    env = {
        "EDGELOOP_STORAGE_CONNECTION_STRING": "UseDevelopmentStorage=true",
        "EDGELOOP_SAMPLE_KEYS": "/nonexistent/envelope.pem",
        "EDGELOOP_SIGNING_KEY": "/nonexistent/signing.pem",
    }
    del env[missing]
    # when / then
    with pytest.raises(ConfigError, match=named):
        services_from_env(env)
