"""Trainer kind ``azureml``: the trainer contract as an Azure ML command job.

The job gets the inputs folder as ``${{inputs.training}}`` (a ``uri_folder`` the SDK uploads),
the seed as ``${{inputs.seed}}``, the configured base data as ``${{inputs.base_data}}`` and
writes ``model.onnx`` and ``metrics.json`` into ``${{outputs.model}}``. The job specification
(``JobSpec``) is plain data, checked before anything is sent; ``azureml_sdk`` turns it into the
``azure-ai-ml`` objects. A candidate that passes the cloud's checks is registered as an Azure ML
model when ``register_model`` is set. Nothing is submitted unless ``workspace`` is configured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, model_validator

from edgeloop_cloud.trainers.candidate import Candidate
from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.logtail import DEFAULT_LINES, LogTail
from edgeloop_cloud.trainers.manifest import MODEL_FILE, TrainerRequest

_REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
#: Terminal job statuses; only the first is a success.
COMPLETED = "Completed"
TERMINAL = frozenset({COMPLETED, "Failed", "Canceled", "NotResponding"})


class AzureMLWorkspace(BaseModel):
    """The Azure ML workspace jobs are submitted to (credentials come from DefaultAzureCredential)."""

    model_config = ConfigDict(extra="forbid")

    subscription_id: str = Field(min_length=1, description="Azure subscription id of the workspace.")
    resource_group: str = Field(min_length=1, description="Resource group of the workspace.")
    workspace_name: str = Field(min_length=1, description="Name of the Azure ML workspace.")


class AzureMLTrainerConfig(BaseModel):
    """Run the trainer as an Azure ML command job."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["azureml"] = Field(description="Trainer kind: an Azure ML command job.")
    workspace: AzureMLWorkspace | None = Field(
        default=None, description="Where to submit; without it the job is built and checked, never sent."
    )
    code: str = Field(min_length=1, description="Local folder with the training code, uploaded with the job.")
    command: str = Field(
        min_length=1,
        description="Command line run in the job, e.g. 'python train.py ${{inputs.training}} "
        "${{outputs.model}}'; it must use ${{inputs.training}} and ${{outputs.model}}.",
    )
    environment: str = Field(
        min_length=1, description="Azure ML environment, e.g. 'azureml:edgeloop-train:1' or a registry path."
    )
    compute: str = Field(min_length=1, description="Compute cluster name the job runs on.")
    experiment_name: str = Field(default="edgeloop-training", min_length=1, description="Experiment name.")
    base_data: str | None = Field(
        default=None,
        description="Base data as an Azure ML path or asset ('azureml:digits-base:1', "
        "'azureml://datastores/...'); given to the job as ${{inputs.base_data}}.",
    )
    base_data_type: Literal["uri_folder", "uri_file", "mltable"] = Field(
        default="uri_folder", description="Azure ML input type of base_data."
    )
    register_model: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{1,255}$",
        description="Azure ML model name to register each accepted candidate under; none when unset.",
    )
    timeout_s: float = Field(
        default=86_400.0, gt=0, le=30 * 86_400, description="Seconds the job may run before it is cancelled."
    )
    poll_s: float = Field(default=30.0, gt=0, le=3600, description="Seconds between job status checks.")
    log_lines: int = Field(
        default=DEFAULT_LINES, ge=10, le=10_000, description="Last log lines kept in the run record."
    )

    @model_validator(mode="after")
    def _command_references(self) -> AzureMLTrainerConfig:
        inputs = {"training", "seed"} | ({"base_data"} if self.base_data else set())
        found = {(kind, name) for kind, name in _REFERENCE.findall(self.command)}
        unknown = sorted(
            f"${{{{{k}.{n}}}}}" for k, n in found if (k == "inputs" and n not in inputs) or
            (k == "outputs" and n != "model")
        )  # fmt: skip
        if unknown:
            hint = "" if self.base_data else " (set base_data to use ${{inputs.base_data}})"
            raise ValueError(
                f"command uses {unknown}; the job has inputs {sorted(inputs)} and output 'model'{hint}"
            )
        for needed in (("inputs", "training"), ("outputs", "model")):
            if needed not in found:
                raise ValueError(f"command must use ${{{{{needed[0]}.{needed[1]}}}}}")
        return self


@dataclass(frozen=True)
class JobInput:
    """One job input: an Azure ML data type with a path, or a literal value."""

    type: str  # uri_folder | uri_file | mltable | integer | string
    value: str | int


@dataclass(frozen=True)
class JobSpec:
    """Everything the Azure ML command job is made of."""

    command: str
    code: str
    environment: str
    compute: str
    experiment_name: str
    display_name: str
    inputs: dict[str, JobInput]
    outputs: dict[str, str]  # output name -> type
    timeout_s: int
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelSpec:
    """The Azure ML model an accepted candidate is registered as."""

    name: str
    path: str
    description: str
    tags: dict[str, str] = field(default_factory=dict)


def build_job(config: AzureMLTrainerConfig, request: TrainerRequest) -> JobSpec:
    """The job for one request. Raises TrainerFailed when the code folder is missing."""
    code = Path(config.code)
    if not code.is_dir():
        raise TrainerFailed(f"trainer.code {config.code!r} is not a folder; it must hold the training code")
    manifest = request.manifest
    inputs = {
        "training": JobInput("uri_folder", str(request.inputs)),
        "seed": JobInput("integer", manifest.seed),
    }
    if config.base_data:
        inputs["base_data"] = JobInput(config.base_data_type, config.base_data)
    return JobSpec(
        command=config.command, code=str(code.resolve()), environment=config.environment,
        compute=config.compute, experiment_name=config.experiment_name,
        display_name=f"{manifest.model_name} {manifest.run_id}".strip(), inputs=inputs,
        outputs={"model": "uri_folder"}, timeout_s=int(config.timeout_s),
        tags={"edgeloop.model": manifest.model_name, "edgeloop.run_id": manifest.run_id},
    )  # fmt: skip


def build_model(config: AzureMLTrainerConfig, job_name: str, candidate: Candidate) -> ModelSpec | None:
    """The registered model for an accepted candidate, or None when registration is off."""
    if not config.register_model:
        return None
    return ModelSpec(
        name=config.register_model,
        path=f"azureml://jobs/{job_name}/outputs/model/paths/{MODEL_FILE}",
        description="EdgeLoop candidate (gated by the EdgeLoop registry before any rollout)",
        tags={"edgeloop.labels": ",".join(candidate.labels), "edgeloop.job": job_name},
    )


class AzureMLPort(Protocol):
    """Azure ML as the trainer needs it; ``azureml_sdk.AzureMLClient`` is the real adapter."""

    def submit(self, job: JobSpec) -> str:
        """Submit the job; its name."""
        ...

    def wait(self, name: str, *, timeout_s: float, poll_s: float, tail: LogTail) -> str:
        """Wait for a terminal status (cancel it past ``timeout_s``); the status. Logs go to ``tail``."""
        ...

    def download_model(self, name: str, dest: Path) -> Path:
        """Download output ``model`` under ``dest``; the folder holding ``model.onnx``."""
        ...

    def register(self, model: ModelSpec) -> str:
        """Register the model; its version."""
        ...


class AzureMLTrainer:
    """Launches the job through the port (the real client when none is given)."""

    def __init__(self, config: AzureMLTrainerConfig, port: AzureMLPort | None = None) -> None:
        self.config = config
        self.port = port
        self.job_name: str | None = None

    def describe(self) -> dict[str, object]:
        return {"kind": "azureml", "job": self.job_name, "compute": self.config.compute,
                "environment": self.config.environment}  # fmt: skip

    def _client(self) -> AzureMLPort:
        if self.port is not None:
            return self.port
        if self.config.workspace is None:
            raise TrainerFailed(
                "trainer.workspace is not set, so the Azure ML job was built and checked but not "
                "submitted: set trainer.workspace.subscription_id, .resource_group and .workspace_name"
            )
        from edgeloop_cloud.trainers.azureml_sdk import AzureMLClient

        self.port = AzureMLClient(self.config.workspace)
        return self.port

    def launch(self, request: TrainerRequest, tail: LogTail, workdir: Path) -> Path:
        spec = build_job(self.config, request)
        port = self._client()
        self.job_name = port.submit(spec)
        tail.add(f"submitted Azure ML job {self.job_name} to compute {spec.compute}")
        cfg = self.config
        status = port.wait(self.job_name, timeout_s=cfg.timeout_s, poll_s=cfg.poll_s, tail=tail)
        if status != COMPLETED:
            raise TrainerFailed(f"Azure ML job {self.job_name} ended {status}", log_tail=tail.lines())
        return port.download_model(self.job_name, workdir / "downloaded")

    def accepted(self, candidate: Candidate) -> dict[str, object]:
        """Register an accepted candidate; what the model card records about it."""
        if self.job_name is None:
            return {}
        spec = build_model(self.config, self.job_name, candidate)
        if spec is None:
            return {"azureml_job": self.job_name}
        version = self._client().register(spec)
        return {"azureml_job": self.job_name, "azureml_model": f"{spec.name}:{version}"}
