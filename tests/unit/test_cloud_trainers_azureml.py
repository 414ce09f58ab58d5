"""The ``azureml`` trainer kind: the command job built and checked offline, run through a local port."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.trainers import TrainerFailed
from edgeloop_cloud.trainers.azureml import AzureMLTrainerConfig, build_job, build_model
from edgeloop_cloud.trainers.azureml_local import LocalAzureML
from edgeloop_cloud.trainers.azureml_sdk import to_azure_job, to_azure_model
from edgeloop_cloud.trainers.factory import make_trainer, run_trainer
from edgeloop_cloud.trainers.manifest import TrainerRequest, write_inputs

from edgeloop.errors import ConfigError
from tests.trainer_support import EXAMPLE_TRAINER, digit_samples, job

COMMAND = "python train.py ${{inputs.training}} ${{outputs.model}}"


def _config(**extra: Any) -> AzureMLTrainerConfig:
    doc = {"kind": "azureml", "code": str(EXAMPLE_TRAINER), "command": COMMAND,
           "environment": "azureml:edgeloop-train:3", "compute": "cpu-cluster", **extra}  # fmt: skip
    return AzureMLTrainerConfig.model_validate(doc)


def _request(tmp_path: Path) -> TrainerRequest:
    manifest = write_inputs(
        tmp_path / "inputs", model_name="digits", run_id="run-1", samples=digit_samples(count=4, audit=1),
        seed=7, base_data=None, champion=None, champion_info=None,
    )  # fmt: skip
    return TrainerRequest(inputs=tmp_path / "inputs", outputs=tmp_path / "outputs", manifest=manifest)


def _needs_sdk() -> None:
    pytest.importorskip("azure.ai.ml", reason="azure-ai-ml (the azureml extra) validates the job it builds")


def test_the_job_specification_holds_the_inputs_outputs_and_limits_of_the_run(tmp_path: Path) -> None:
    # given
    config = _config(base_data="azureml:digits-base:2", timeout_s=3600,
                     command=COMMAND + " --base ${{inputs.base_data}} --seed ${{inputs.seed}}")  # fmt: skip
    # when
    spec = build_job(config, _request(tmp_path))
    # then
    assert spec.command == config.command
    assert Path(spec.code) == EXAMPLE_TRAINER.resolve()
    assert (spec.environment, spec.compute) == ("azureml:edgeloop-train:3", "cpu-cluster")
    assert spec.inputs["training"].type == "uri_folder"
    assert spec.inputs["training"].value == str(tmp_path / "inputs")
    assert (spec.inputs["base_data"].type, spec.inputs["base_data"].value) == (
        "uri_folder",
        "azureml:digits-base:2",
    )
    assert (spec.inputs["seed"].type, spec.inputs["seed"].value) == ("integer", 7)
    assert spec.outputs == {"model": "uri_folder"}
    assert spec.timeout_s == 3600
    assert spec.tags == {"edgeloop.model": "digits", "edgeloop.run_id": "run-1"}


def test_a_missing_code_folder_fails_before_anything_is_submitted(tmp_path: Path) -> None:
    config = _config(code=str(tmp_path / "nowhere"))
    with pytest.raises(TrainerFailed, match=r"trainer.code .*nowhere.* is not a folder"):
        build_job(config, _request(tmp_path))


def test_the_job_specification_is_a_valid_azure_ml_command_job(tmp_path: Path) -> None:
    _needs_sdk()
    # given
    config = _config(base_data="azureml:digits-base:2", register_model="digits-candidates",
                     command=COMMAND + " --base ${{inputs.base_data}} --seed ${{inputs.seed}}")  # fmt: skip
    # when
    job = to_azure_job(build_job(config, _request(tmp_path)))
    # then
    doc = job._to_dict()
    assert doc["type"] == "command"
    assert doc["compute"].endswith("cpu-cluster")
    assert doc["environment"] == "azureml:edgeloop-train:3"
    assert doc["inputs"]["training"]["type"] == "uri_folder"
    assert doc["inputs"]["training"]["path"].endswith(str(tmp_path / "inputs"))
    assert doc["inputs"]["base_data"] == {"type": "uri_folder", "path": "azureml:digits-base:2"}
    assert doc["inputs"]["seed"] == 7
    assert doc["outputs"] == {"model": {"type": "uri_folder"}}
    assert doc["component"]["command"] == config.command
    assert Path(doc["component"]["code"]) == EXAMPLE_TRAINER
    assert doc["limits"]["timeout"] == 86400
    assert job.experiment_name == "edgeloop-training"
    assert job.tags == {"edgeloop.model": "digits", "edgeloop.run_id": "run-1"}
    assert job._validate().passed


def test_the_registered_model_points_at_the_jobs_model_output() -> None:
    _needs_sdk()
    # given
    from edgeloop_cloud.trainers.candidate import Candidate

    from edgeloop.model_metadata import Preprocess

    candidate = Candidate(model=None, labels=["0", "1"], preprocess=Preprocess())
    # when
    spec = build_model(_config(register_model="digits-candidates"), "job-42", candidate)
    assert spec is not None
    model = to_azure_model(spec)
    # then
    assert model.name == "digits-candidates"
    assert model.type == "custom_model"
    assert model.path == "azureml://jobs/job-42/outputs/model/paths/model.onnx"
    assert model.tags["edgeloop.labels"] == "0,1"
    assert build_model(_config(), "job-42", candidate) is None


def test_a_job_run_through_the_local_port_gives_a_checked_candidate_and_registers_it() -> None:
    # given
    port = LocalAzureML()
    config = _config(command=COMMAND.replace("python", sys.executable), register_model="digits-candidates")
    # when
    try:
        candidate = run_trainer(make_trainer(config, azureml=port), job(digit_samples()))
    finally:
        port.close()
    # then
    assert candidate.labels == ["0", "1", "2"]
    assert candidate.metrics["train_samples"] == 90
    assert [j.compute for j in port.submitted] == ["cpu-cluster"]
    assert [m.path for m in port.registered] == ["azureml://jobs/local-job-1/outputs/model/paths/model.onnx"]
    assert candidate.manifest["azureml_model"] == "digits-candidates:1"
    assert candidate.manifest["trainer"]["job"] == "local-job-1"


def test_a_failed_job_fails_the_run_with_its_log_and_registers_nothing() -> None:
    port = LocalAzureML()
    failing = f"{sys.executable} -c 'import sys; sys.exit(\"no GPU\")'"
    config = _config(
        command=failing + " ${{inputs.training}} ${{outputs.model}}", register_model="candidates"
    )
    try:
        with pytest.raises(TrainerFailed) as failed:
            run_trainer(make_trainer(config, azureml=port), job(digit_samples(count=3, audit=0)))
    finally:
        port.close()
    assert failed.value.reason == "Azure ML job local-job-1 ended Failed"
    assert "no GPU" in failed.value.log_tail
    assert port.registered == []


def test_without_a_workspace_nothing_is_submitted_and_the_setting_is_named() -> None:
    with pytest.raises(TrainerFailed, match=r"trainer.workspace is not set.*not submitted"):
        run_trainer(make_trainer(_config()), job(digit_samples(count=3, audit=0)))


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"compute": None}, "compute"),
        ({"environment": None}, "environment"),
        ({"workspace": {"subscription_id": "sub", "workspace_name": "ws"}}, "resource_group"),
        ({"command": "python train.py ${{outputs.model}}"}, "must use ${{inputs.training}}"),
        ({"command": COMMAND + " ${{inputs.base_data}}"}, "set base_data"),
        ({"command": COMMAND + " ${{outputs.metrics}}"}, "${{outputs.metrics}}"),
    ],
)
def test_an_incomplete_azure_ml_configuration_names_the_missing_setting(
    tmp_path: Path, change: dict[str, Any], named: str
) -> None:
    # given
    doc = {"kind": "azureml", "code": str(EXAMPLE_TRAINER), "command": COMMAND,
           "environment": "azureml:e:1", "compute": "c", **change}  # fmt: skip
    doc = {k: v for k, v in doc.items() if v is not None}
    path = tmp_path / "cloud.json"
    path.write_text(__import__("json").dumps({"trainer": doc}))
    # when
    with pytest.raises(ConfigError) as bad:
        CloudConfig.load(path)
    # then
    assert named in str(bad.value)
    assert "trainer" in str(bad.value)
