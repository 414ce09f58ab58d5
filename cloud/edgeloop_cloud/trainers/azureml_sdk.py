"""The Azure ML adapter: ``JobSpec`` / ``ModelSpec`` as ``azure-ai-ml`` objects, and the client.

Only this file imports ``azure.ai.ml``; SDK errors become ``TrainerFailed`` here.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from edgeloop_cloud.trainers.azureml import TERMINAL, AzureMLWorkspace, JobSpec, ModelSpec
from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.logtail import LogTail
from edgeloop_cloud.trainers.manifest import MODEL_FILE

log = logging.getLogger(__name__)

_DATA_TYPES = ("uri_folder", "uri_file", "mltable")


def to_azure_job(spec: JobSpec) -> Any:
    """The ``azure.ai.ml`` command job for ``spec``."""
    from azure.ai.ml import Input, Output, command

    inputs: dict[str, Any] = {
        name: Input(type=value.type, path=str(value.value)) if value.type in _DATA_TYPES else value.value
        for name, value in spec.inputs.items()
    }
    job = command(
        code=spec.code,
        command=spec.command,
        inputs=inputs,
        outputs={name: Output(type=kind) for name, kind in spec.outputs.items()},
        environment=spec.environment,
        compute=spec.compute,
        experiment_name=spec.experiment_name,
        display_name=spec.display_name,
        tags=dict(spec.tags),
    )
    job.set_limits(timeout=spec.timeout_s)
    return job


def to_azure_model(spec: ModelSpec) -> Any:
    """The ``azure.ai.ml`` model entity for ``spec``."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    return Model(
        name=spec.name, path=spec.path, type=AssetTypes.CUSTOM_MODEL, description=spec.description,
        tags=dict(spec.tags),
    )  # fmt: skip


class AzureMLClient:
    """``AzureMLPort`` over ``azure.ai.ml.MLClient`` with ``DefaultAzureCredential``."""

    def __init__(self, workspace: AzureMLWorkspace, *, client: Any = None) -> None:
        if client is None:
            from azure.ai.ml import MLClient
            from azure.identity import DefaultAzureCredential

            client = MLClient(
                DefaultAzureCredential(), subscription_id=workspace.subscription_id,
                resource_group_name=workspace.resource_group, workspace_name=workspace.workspace_name,
            )  # fmt: skip
        self._ml = client

    def submit(self, job: JobSpec) -> str:
        try:
            return str(self._ml.jobs.create_or_update(to_azure_job(job)).name)
        except Exception as exc:  # the SDK raises many types; all mean "not submitted"
            raise TrainerFailed(f"Azure ML refused the job: {type(exc).__name__}: {exc}") from exc

    def wait(self, name: str, *, timeout_s: float, poll_s: float, tail: LogTail) -> str:
        deadline = time.monotonic() + timeout_s
        status = ""
        while time.monotonic() < deadline:
            status = str(self._ml.jobs.get(name).status)
            if status in TERMINAL:
                self._logs(name, tail)
                return status
            time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
        self._ml.jobs.begin_cancel(name)
        self._logs(name, tail)
        raise TrainerFailed(
            f"Azure ML job {name} ran past its timeout of {timeout_s:g} s "
            f"(last status {status or 'unknown'}) and was cancelled",
            log_tail=tail.lines(),
        )

    def _logs(self, name: str, tail: LogTail) -> None:
        """The job's user log, best effort: a job without logs still has a status."""
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            try:
                self._ml.jobs.download(name, download_path=tmp, all=False)
            except Exception as exc:  # logs are a courtesy; their absence must not hide the status
                tail.add(f"(job logs unavailable: {type(exc).__name__}: {exc})")
                return
            for path in sorted(Path(tmp).rglob("std_log*.txt")):
                tail.add_text(path.read_text(encoding="utf-8", errors="replace"))

    def download_model(self, name: str, dest: Path) -> Path:
        try:
            self._ml.jobs.download(name, download_path=str(dest), output_name="model")
        except Exception as exc:
            raise TrainerFailed(f"cannot download output 'model' of Azure ML job {name}: {exc}") from exc
        found = sorted(dest.rglob(MODEL_FILE))
        return found[0].parent if found else dest

    def register(self, model: ModelSpec) -> str:
        try:
            return str(self._ml.models.create_or_update(to_azure_model(model)).version)
        except Exception as exc:
            raise TrainerFailed(f"Azure ML refused to register model {model.name!r}: {exc}") from exc
