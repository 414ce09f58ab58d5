"""Build the trainer a configuration names, and run it behind the contract's checks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from edgeloop_cloud.trainers.azureml import AzureMLPort, AzureMLTrainer, AzureMLTrainerConfig
from edgeloop_cloud.trainers.builtin import BuiltinTrainer, BuiltinTrainerConfig
from edgeloop_cloud.trainers.candidate import Candidate
from edgeloop_cloud.trainers.command import CommandTrainer, CommandTrainerConfig
from edgeloop_cloud.trainers.config import TrainerConfig
from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.folder import FolderTrainer, Launcher, champion_info
from edgeloop_cloud.trainers.job import TrainingJob
from edgeloop_cloud.trainers.output import label_problem
from edgeloop_cloud.trainers.python_entry import PythonTrainer, PythonTrainerConfig
from edgeloop_cloud.training import Example, TrainingParams


class Trainer(Protocol):
    """Anything that turns a ``TrainingJob`` into a ``Candidate`` (or raises ``TrainerFailed``)."""

    def describe(self) -> dict[str, object]: ...

    def train(self, job: TrainingJob) -> Candidate: ...


def make_trainer(
    config: TrainerConfig,
    *,
    base: Sequence[Example] = (),
    params: TrainingParams | None = None,
    azureml: AzureMLPort | None = None,
    base_data: str | None = None,
) -> Trainer:
    """The trainer for ``config``; ``base`` and ``params`` feed the built-in one, ``azureml`` (a port
    to Azure ML) replaces the real client of the ``azureml`` kind. ``base_data`` is the reference of
    ``training.base_data``: command and python trainers get it in their manifest unless their own
    ``base_data`` names the same data where they run; an ``azureml`` job sees only its own
    ``base_data`` (an Azure ML path or asset)."""
    if isinstance(config, BuiltinTrainerConfig):
        return BuiltinTrainer(base=base, params=params or TrainingParams())
    if isinstance(config, CommandTrainerConfig):
        launcher: Launcher = CommandTrainer(config)
    elif isinstance(config, PythonTrainerConfig):
        launcher = PythonTrainer(config)
    elif isinstance(config, AzureMLTrainerConfig):
        aml = AzureMLTrainer(config, azureml)
        return FolderTrainer(aml, base_data=config.base_data, log_lines=config.log_lines)
    else:
        raise TypeError(f"unknown trainer config {type(config).__name__}")
    return FolderTrainer(launcher, base_data=config.base_data or base_data, log_lines=config.log_lines)


def run_trainer(trainer: Trainer, job: TrainingJob) -> Candidate:
    """Train and check the candidate's labels against the champion's, for every kind.

    Raises:
        TrainerFailed: the trainer failed or its output is unusable (reason and log tail inside).
        TrainingError: the built-in trainer refused its inputs.
    """
    candidate = trainer.train(job)
    info = champion_info(job.champion, job.champion_version)
    problem = label_problem(candidate.labels, info.labels if info else None, job.training_labels())
    if problem:
        raise TrainerFailed(problem, log_tail=candidate.log_tail)
    return candidate
