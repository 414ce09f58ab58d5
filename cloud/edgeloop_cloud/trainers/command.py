"""Trainer kind ``command``: any program, in any language, run as a child process.

The command is a list of arguments; these placeholders are replaced in each of them:
``{inputs}`` (the inputs folder), ``{outputs}`` (the folder to write ``model.onnx`` and
``metrics.json`` to), ``{manifest}``, ``{model}``, ``{metrics}``, ``{seed}``, ``{champion}``
(the champion's file, empty when there is none) and ``{base_data}`` (empty when unset); write
``{{`` and ``}}`` for literal braces. The same values are in the environment as
``EDGELOOP_TRAINER_INPUTS``, ``..._OUTPUTS``, ``..._MANIFEST``, ``..._MODEL``, ``..._METRICS``,
``..._SEED``, ``..._CHAMPION`` and ``..._BASE_DATA``.
"""

from __future__ import annotations

import os
import string
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from edgeloop_cloud.trainers.candidate import Candidate
from edgeloop_cloud.trainers.logtail import DEFAULT_LINES, LogTail
from edgeloop_cloud.trainers.manifest import MANIFEST_FILE, TrainerRequest
from edgeloop_cloud.trainers.process import run_process

PLACEHOLDERS = ("inputs", "outputs", "manifest", "model", "metrics", "seed", "champion", "base_data")


class CommandTrainerConfig(BaseModel):
    """Run a program that follows the trainer contract."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["command"] = Field(description="Trainer kind: a command run as a child process.")
    command: list[str] = Field(
        min_length=1,
        description="Program and arguments, e.g. ['python', 'train.py', '{inputs}', '{outputs}']; "
        "placeholders: " + ", ".join("{" + p + "}" for p in PLACEHOLDERS) + ".",
    )
    cwd: str | None = Field(
        default=None, description="Working directory of the command; the cloud process's own when unset."
    )
    env: dict[str, str] = Field(
        default_factory=dict, description="Extra environment variables for the command."
    )
    timeout_s: float = Field(
        default=3600.0, gt=0, le=7 * 86400, description="Seconds the command may run before it is stopped."
    )
    base_data: str | None = Field(
        default=None,
        description="Base data reference handed to the trainer as is (a folder, a URL...); "
        "unset: the reference of training.base_data.",
    )
    log_lines: int = Field(
        default=DEFAULT_LINES, ge=10, le=10_000, description="Last output lines kept in the run record."
    )

    @field_validator("command")
    @classmethod
    def _known_placeholders(cls, command: list[str]) -> list[str]:
        for part in command:
            try:
                names = [name for _, name, _, _ in string.Formatter().parse(part) if name is not None]
            except ValueError as exc:
                raise ValueError(f"argument {part!r}: {exc}; write {{{{ and }}}} for literal braces") from exc
            unknown = [n for n in names if n not in PLACEHOLDERS]
            if unknown:
                raise ValueError(
                    f"argument {part!r} uses unknown placeholder(s) {unknown}; known: {list(PLACEHOLDERS)}"
                )
        return command


def contract_values(request: TrainerRequest) -> dict[str, str]:
    """The placeholder values of a request."""
    champion = request.champion_path
    return {
        "inputs": str(request.inputs),
        "outputs": str(request.outputs),
        "manifest": str(request.inputs / MANIFEST_FILE),
        "model": str(request.model_path),
        "metrics": str(request.metrics_path),
        "seed": str(request.manifest.seed),
        "champion": str(champion) if champion else "",
        "base_data": request.manifest.base_data or "",
    }


def contract_env(request: TrainerRequest) -> dict[str, str]:
    """The same values as ``EDGELOOP_TRAINER_*`` environment variables."""
    return {f"EDGELOOP_TRAINER_{k.upper()}": v for k, v in contract_values(request).items()}


class CommandTrainer:
    """Runs the configured command on a request."""

    def __init__(self, config: CommandTrainerConfig) -> None:
        self.config = config

    def describe(self) -> dict[str, object]:
        return {"kind": "command", "command": self.config.command}

    def launch(self, request: TrainerRequest, tail: LogTail, workdir: Path) -> Path:
        values = contract_values(request)
        argv = [part.format_map(values) for part in self.config.command]
        env = {**os.environ, **self.config.env, **contract_env(request)}
        cwd = Path(self.config.cwd) if self.config.cwd else Path.cwd()
        run_process(argv, cwd=cwd, env=env, timeout_s=self.config.timeout_s, tail=tail,
                    log_file=workdir / "trainer.log")  # fmt: skip
        return request.outputs

    def accepted(self, candidate: Candidate) -> dict[str, object]:
        return {}
