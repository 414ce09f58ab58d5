"""A trigger pass with a trainer other than the built-in one: its candidate is gated like any other,
and a failing trainer ends the run ``failed`` with its log tail while the champion stays."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.gate import GateConfig
from edgeloop_cloud.pipeline import CloudServices, run_trigger_once
from edgeloop_cloud.trainers.command import CommandTrainerConfig
from edgeloop_cloud.training import TrainingParams

from edgeloop.clock import FakeClock
from tests.cloud_support import base_data_config
from tests.pipeline_support import label_all, memory_services, quick_trigger, scenario_frames
from tests.trainer_support import EXAMPLE_TRAINER


def _services(clock: FakeClock, command: list[str], **gate: float) -> CloudServices:
    config = CloudConfig(
        trigger=quick_trigger(),
        trainer=CommandTrainerConfig(kind="command", command=command, timeout_s=120),
        training=TrainingParams(base_data=base_data_config()),
        gate=GateConfig(**{"floor": 0.0, "max_latency_ms": 1000.0, "min_audit_items": 5, **gate}),
    )
    return memory_services(config, clock)


@pytest.fixture(scope="module")
def frames() -> list[tuple[np.ndarray, str]]:
    return scenario_frames(160)


def test_a_command_trainer_makes_the_candidate_of_a_pass(frames: list[tuple[np.ndarray, str]]) -> None:
    # given: 160 labelled samples, 20 of them from the audit share
    clock = FakeClock()
    svc = _services(clock, [sys.executable, str(EXAMPLE_TRAINER / "train.py"), "{inputs}", "{outputs}"])
    label_all(svc, frames, audit_every=8)
    # when
    outcome = run_trigger_once(svc)
    # then
    assert outcome.status == "promoted", outcome.as_dict()
    card = svc.registry.card("digits", "v1")
    manifest = card["training_manifest"]
    assert manifest["trainer"]["kind"] == "command"
    assert manifest["metrics"]["train_samples"] == 140  # audit samples evaluate, never train
    assert manifest["metrics"]["audit_samples"] == 20
    assert card["preprocess"]["layout"] == "flat"
    record = svc.ledger.record(outcome.run_id or "")
    assert record is not None
    assert record["status"] == "promoted"
    assert any("trained on 140 samples" in line for line in record["trainer"]["log_tail"])


def test_a_crashing_trainer_fails_the_run_and_the_champion_stays(
    tmp_path: Path, frames: list[tuple[np.ndarray, str]]
) -> None:
    # given: a champion, then a trainer that crashes
    clock = FakeClock()
    good = [sys.executable, str(EXAMPLE_TRAINER / "train.py"), "{inputs}", "{outputs}"]
    svc = _services(clock, good)
    label_all(svc, frames[:80], audit_every=8)
    assert run_trigger_once(svc).status == "promoted"
    script = tmp_path / "crash.py"
    script.write_text("import sys\nprint('loading 80 samples')\nsys.exit('CUDA out of memory')\n")
    svc.config = svc.config.model_copy(
        update={"trainer": CommandTrainerConfig(kind="command", command=[sys.executable, str(script)])}
    )
    label_all(svc, frames, audit_every=8)
    # when
    outcome = run_trigger_once(svc)
    # then
    assert outcome.status == "failed"
    assert outcome.reasons == ["the trainer exited with code 1"]
    record = svc.ledger.record(outcome.run_id or "")
    assert record is not None
    assert (record["status"], record["error"]) == ("failed", "the trainer exited with code 1")
    assert record["trainer"]["log_tail"] == ["loading 80 samples", "CUDA out of memory"]
    champion = svc.registry.champion("digits")
    assert champion is not None
    assert champion.version == "v1"
    assert svc.registry.versions("digits") == ["v1"]
