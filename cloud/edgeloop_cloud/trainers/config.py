"""The ``trainer`` setting of the cloud configuration: one of four kinds, chosen by ``kind``."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from edgeloop_cloud.trainers.azureml import AzureMLTrainerConfig
from edgeloop_cloud.trainers.builtin import BuiltinTrainerConfig
from edgeloop_cloud.trainers.command import CommandTrainerConfig
from edgeloop_cloud.trainers.python_entry import PythonTrainerConfig

TrainerConfig = Annotated[
    BuiltinTrainerConfig | CommandTrainerConfig | PythonTrainerConfig | AzureMLTrainerConfig,
    Field(discriminator="kind"),
]
