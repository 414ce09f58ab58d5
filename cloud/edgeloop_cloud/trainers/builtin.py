"""Trainer kind ``builtin`` (the default): the small CNN of ``edgeloop_cloud.training``, in process.

It trains on the base data the pipeline loads and on the job's decoded training samples, with
the ``training`` parameters of the cloud configuration, continuing from the champion when it
can; its output goes through the same checks as any other trainer's.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from edgeloop_cloud.trainers.candidate import Candidate
from edgeloop_cloud.trainers.job import TrainingJob
from edgeloop_cloud.training import Example, TrainingParams, default_preprocess, train


class BuiltinTrainerConfig(BaseModel):
    """The built-in trainer; its parameters are the configuration's ``training`` section."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["builtin"] = Field(
        default="builtin", description="Trainer kind: the built-in CNN (parameters in 'training')."
    )


class BuiltinTrainer:
    """Fits the built-in CNN on ``base`` plus the job's examples."""

    def __init__(self, *, base: Sequence[Example], params: TrainingParams) -> None:
        self.base = base
        self.params = params

    def describe(self) -> dict[str, object]:
        return {"kind": "builtin"}

    def train(self, job: TrainingJob) -> Candidate:
        trained = train(
            base=self.base,
            new=job.examples,
            preprocess=default_preprocess(),
            params=self.params,
            init=job.champion,
        )
        manifest = trained.manifest
        metrics = {k: manifest[k] for k in ("steps_run", "final_loss", "continued_from_champion")}
        return Candidate(
            model=trained.model,
            labels=trained.labels,
            preprocess=trained.preprocess,
            manifest=manifest,
            metrics=metrics,
        )
