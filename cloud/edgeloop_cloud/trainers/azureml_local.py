"""An ``AzureMLPort`` that runs the job on this machine: try a job before sending it to Azure.

It replaces ``${{inputs.X}}`` and ``${{outputs.model}}`` in the job's command with local paths
and values (quoted for the shell), runs it with ``/bin/sh`` in the job's code folder, and keeps
what was submitted and registered for inspection.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import tempfile
from pathlib import Path

from edgeloop_cloud.trainers.azureml import COMPLETED, JobSpec, ModelSpec
from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.logtail import LogTail
from edgeloop_cloud.trainers.process import run_process

_REFERENCE = re.compile(r"\$\{\{\s*(inputs|outputs)\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


class LocalAzureML:
    """Runs submitted jobs locally, one at a time."""

    def __init__(self) -> None:
        self.submitted: list[JobSpec] = []
        self.registered: list[ModelSpec] = []
        self._outputs: dict[str, Path] = {}
        self._tmp = Path(tempfile.mkdtemp(prefix="edgeloop-azureml-local-"))

    def submit(self, job: JobSpec) -> str:
        self.submitted.append(job)
        return f"local-job-{len(self.submitted)}"

    def wait(self, name: str, *, timeout_s: float, poll_s: float, tail: LogTail) -> str:
        job = self.submitted[int(name.rsplit("-", 1)[1]) - 1]
        outputs = self._tmp / name / "model"
        outputs.mkdir(parents=True)
        self._outputs[name] = outputs

        def value(match: re.Match[str]) -> str:
            kind, key = match.groups()
            if kind == "outputs":
                return shlex.quote(str(outputs))
            return shlex.quote(str(job.inputs[key].value))

        line = _REFERENCE.sub(value, job.command)
        try:
            run_process(
                ["/bin/sh", "-c", line], cwd=Path(job.code), env=dict(os.environ), timeout_s=timeout_s,
                tail=tail, log_file=self._tmp / name / "std_log.txt",
            )  # fmt: skip
        except TrainerFailed as exc:
            tail.add(f"local job {name}: {exc.reason}")
            return "Failed"
        return COMPLETED

    def download_model(self, name: str, dest: Path) -> Path:
        shutil.copytree(self._outputs[name], dest)
        return dest

    def register(self, model: ModelSpec) -> str:
        self.registered.append(model)
        return str(sum(1 for m in self.registered if m.name == model.name))

    def close(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)
