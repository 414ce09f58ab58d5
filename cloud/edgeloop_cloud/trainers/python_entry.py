"""Trainer kind ``python``: a function ``package.module:function`` that takes a ``TrainerRequest``.

The function runs in a child Python process (``python -m edgeloop_cloud.trainers.entry``), so
that a crash or a hang cannot take the trigger down and the timeout holds; the child imports
with the cloud process's import path, so whatever the cloud can import, the trainer can too.
It writes ``request.model_path`` and ``request.metrics_path``; an exception fails the run with
its traceback in the log tail.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeloop_cloud.trainers.candidate import Candidate
from edgeloop_cloud.trainers.command import contract_env
from edgeloop_cloud.trainers.logtail import DEFAULT_LINES, LogTail
from edgeloop_cloud.trainers.manifest import TrainerRequest
from edgeloop_cloud.trainers.process import run_process

ENTRY_POINT = r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"


class PythonTrainerConfig(BaseModel):
    """Call a Python function that follows the trainer contract."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["python"] = Field(description="Trainer kind: a Python entry point.")
    entry_point: str = Field(
        pattern=ENTRY_POINT,
        description="'package.module:function'; the function takes one TrainerRequest argument.",
    )
    python: str | None = Field(
        default=None, description="Python interpreter to run it with; the cloud's own when unset."
    )
    env: dict[str, str] = Field(default_factory=dict, description="Extra environment variables.")
    timeout_s: float = Field(
        default=3600.0, gt=0, le=7 * 86400, description="Seconds the function may run before it is stopped."
    )
    base_data: str | None = Field(
        default=None,
        description="Base data reference handed to the trainer as is (a folder, a URL...); "
        "unset: the reference of training.base_data.",
    )
    log_lines: int = Field(
        default=DEFAULT_LINES, ge=10, le=10_000, description="Last output lines kept in the run record."
    )


class PythonTrainer:
    """Runs the entry point in a child interpreter on a request."""

    def __init__(self, config: PythonTrainerConfig) -> None:
        self.config = config

    def describe(self) -> dict[str, object]:
        return {"kind": "python", "entry_point": self.config.entry_point}

    def launch(self, request: TrainerRequest, tail: LogTail, workdir: Path) -> Path:
        argv = [
            self.config.python or sys.executable, "-m", "edgeloop_cloud.trainers.entry",
            self.config.entry_point, str(request.inputs), str(request.outputs),
        ]  # fmt: skip
        path = [p for p in (os.environ.get("PYTHONPATH", ""), *sys.path) if p]
        env = {
            **os.environ, **self.config.env, **contract_env(request),
            "PYTHONPATH": os.pathsep.join(dict.fromkeys(path)),
        }  # fmt: skip
        run_process(argv, cwd=Path.cwd(), env=env, timeout_s=self.config.timeout_s, tail=tail,
                    log_file=workdir / "trainer.log")  # fmt: skip
        return request.outputs

    def accepted(self, candidate: Candidate) -> dict[str, object]:
        return {}
