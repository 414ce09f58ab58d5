"""The cloud side's configuration: one typed model, every field defaulted and described.

Settings come from a JSON file (``EDGELOOP_CLOUD_CONFIG`` or ``--config``); secrets and key
files come from the environment, read only by the entry points (CLI, Functions app):

- ``EDGELOOP_STORAGE_CONNECTION_STRING``: the storage account (or Azurite) holding the
  ``data``, ``models`` and ``runs`` containers;
- ``EDGELOOP_SAMPLE_KEYS``: private key files (PEM, comma-separated) that open sample envelopes;
- ``EDGELOOP_SIGNING_KEY``: the Ed25519 private key file models are signed with;
- ``EDGELOOP_IOTHUB_CONNECTION_STRING``: an IoT Hub service connection string (rollout).
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeloop.errors import ConfigError
from edgeloop_cloud.gate import GateConfig
from edgeloop_cloud.rollout import RolloutConfig
from edgeloop_cloud.trainers.builtin import BuiltinTrainerConfig
from edgeloop_cloud.trainers.config import TrainerConfig
from edgeloop_cloud.training import TrainingParams
from edgeloop_cloud.trigger import TriggerPolicy


class CloudConfig(BaseModel):
    """Everything the trigger, training, gate and rollout need besides secrets."""

    model_config = ConfigDict(extra="forbid")

    model_name: str = Field(
        default="digits", pattern=r"^[A-Za-z0-9_.-]+$", description="Registry model name."
    )
    data_container: str = Field(default="data", description="Container the uploader writes samples to.")
    models_container: str = Field(default="models", description="Container holding the model registry.")
    runs_container: str = Field(
        default="runs", description="Container holding run records and trigger state."
    )
    summaries_prefix: str = Field(
        default="summaries/", description="Prefix in the data container where device summaries are routed."
    )
    trigger: TriggerPolicy = Field(default_factory=TriggerPolicy, description="When to retrain.")
    trainer: TrainerConfig = Field(
        default_factory=BuiltinTrainerConfig,
        description="Which trainer makes candidates: builtin, command, python or azureml (by 'kind').",
    )
    training: TrainingParams = Field(
        default_factory=TrainingParams,
        description="The built-in trainer's parameters; training.seed is the seed every trainer gets.",
    )
    gate: GateConfig = Field(default_factory=GateConfig, description="When a candidate is promoted.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="How models reach devices.")

    @classmethod
    def load(cls, path: Path | None) -> CloudConfig:
        """The defaults, or the file's settings. Raises ConfigError naming the bad key."""
        if path is None:
            return cls()
        try:
            return cls.model_validate(json.loads(Path(path).read_text(encoding="utf-8")))
        except OSError as exc:
            raise ConfigError(f"cannot read cloud config {str(path)!r}: {exc.strerror}") from exc
        except (ValueError, ValidationError) as exc:
            raise ConfigError(f"cloud config {str(path)!r} is invalid: {exc}") from exc
