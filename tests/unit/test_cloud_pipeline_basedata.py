"""A pass and its base data: the configured set feeds training, the gate and other trainers'
manifests; with none configured, training and the gate use the labelled samples alone."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.gate import GateConfig
from edgeloop_cloud.pipeline import run_trigger_once
from edgeloop_cloud.trainers.command import CommandTrainerConfig
from edgeloop_cloud.training import TrainingParams

from tests.cloud_support import base_data_config, digits_base_folder
from tests.pipeline_support import label_all, memory_services, quick_trigger, scenario_frames
from tests.trainer_support import EXAMPLE_TRAINER


@pytest.fixture(scope="module")
def frames() -> list[tuple[np.ndarray, str]]:
    return scenario_frames(120)


def test_without_base_data_training_and_the_gate_use_the_labelled_samples_alone(
    frames: list[tuple[np.ndarray, str]],
) -> None:
    # given: no training.base_data, 120 labelled samples of which 30 are audit samples
    config = CloudConfig(
        trigger=quick_trigger(),
        training=TrainingParams(scratch_steps=60),
        gate=GateConfig(floor=0.0, max_latency_ms=1000.0),
    )
    svc = memory_services(config)
    label_all(svc, frames, audit_every=4)
    # when
    outcome = run_trigger_once(svc)
    # then: the run says there was no base data; the gate judged on the 30 audit items only
    record = svc.ledger.record(outcome.run_id or "")
    assert record is not None
    assert record["base_data"]["source"] is None
    assert "trains on the labelled samples alone" in record["base_data"]["note"]
    assert outcome.counts == {"train": 90, "audit": 30, "skipped": 0}
    assert outcome.status == "promoted", outcome.as_dict()
    card = svc.registry.card("digits", "v1")
    assert card["gate"]["eval_set"] == {"holdout": 0, "audit": 30, "total": 30}
    assert card["training_manifest"]["base_data"]["source"] is None


def test_configured_base_data_feeds_the_gate_hold_out_and_the_run_record(
    frames: list[tuple[np.ndarray, str]],
) -> None:
    config = CloudConfig(
        trigger=quick_trigger(),
        training=TrainingParams(scratch_steps=60, base_data=base_data_config()),
        gate=GateConfig(floor=0.0, max_latency_ms=1000.0),
    )
    svc = memory_services(config)
    label_all(svc, frames, audit_every=4)
    outcome = run_trigger_once(svc)
    record = svc.ledger.record(outcome.run_id or "")
    assert record is not None
    assert record["base_data"]["source"] == str(digits_base_folder())
    assert (record["base_data"]["train"], record["base_data"]["holdout"]) == (500, 400)
    card = svc.registry.card("digits", outcome.version or "")
    assert card["gate"]["eval_set"] == {"holdout": 400, "audit": 30, "total": 430}


def test_a_command_trainer_gets_the_configured_reference_as_base_data(
    tmp_path: Path, frames: list[tuple[np.ndarray, str]]
) -> None:
    # given: a trainer that reports the base_data of its manifest, then trains like the example
    script = tmp_path / "report_then_train.py"
    script.write_text(
        "import json, runpy, sys\n"
        "print('base_data=' + str(json.load(open(sys.argv[1] + '/manifest.json'))['base_data']))\n"
        f"sys.argv = [{str(EXAMPLE_TRAINER / 'train.py')!r}, *sys.argv[1:]]\n"
        "runpy.run_path(sys.argv[0], run_name='__main__')\n"
    )
    command = [sys.executable, str(script), "{inputs}", "{outputs}"]
    config = CloudConfig(
        trigger=quick_trigger(),
        trainer=CommandTrainerConfig(kind="command", command=command, timeout_s=120),
        training=TrainingParams(base_data=base_data_config()),
        gate=GateConfig(floor=0.0, max_latency_ms=1000.0, min_audit_items=5),
    )
    svc = memory_services(config)
    label_all(svc, frames, audit_every=4)
    # when
    outcome = run_trigger_once(svc)
    # then
    record = svc.ledger.record(outcome.run_id or "")
    assert record is not None, outcome.as_dict()
    assert f"base_data={digits_base_folder()}" in record["trainer"]["log_tail"], record["trainer"]
