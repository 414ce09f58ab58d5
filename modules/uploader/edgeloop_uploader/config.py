"""The uploader's configuration: module twin desired properties, validated into one model.

Secrets (a connection string, a SAS URL) are ``SecretStr``: reported properties and logs show
them masked; on a device they belong in a mounted file (``storage.credentials_file``) or an
environment variable the twin names (``storage.credential_env``), not in the twin.
Every field has a default, so an empty twin validates.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from edgeloop.secrets import check_env_name


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class StorageConfig(_Section):
    container: str = Field(
        default="data",
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9][a-z0-9-]*[a-z0-9]$",
        description="Blob container for samples and prediction logs (a SAS URL names its own).",
    )
    connection_string: SecretStr | None = Field(
        default=None, description="Storage connection string; prefer a container SAS URL on devices."
    )
    container_sas_url: SecretStr | None = Field(
        default=None,
        description="Container SAS URL with create and write permission (read lets retries compare).",
    )
    credentials_file: str | None = Field(
        default=None,
        description="Path of a mounted secret file holding a SAS URL or a connection string; read at start "
        "and whenever the twin has no credentials.",
    )
    credential_env: str | None = Field(
        default=None,
        description="Name of an environment variable holding a SAS URL or a connection string (set in "
        "the deployment's env, e.g. from a secret store); read when the twin and the file give none.",
    )
    create_container: bool = Field(
        default=True, description="Try to create the container once (needs account-level credentials)."
    )
    sidecar: bool = Field(
        default=False,
        description="Also write <sample_id>.json beside each sample, a second request per sample (the "
        "sample blob carries its facts as metadata and index tags anyway); for readers of sidecars.",
    )
    timeout_s: float = Field(default=60.0, gt=0, le=3600, description="Socket read timeout of one request.")

    @field_validator("credential_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        return check_env_name(name)

    @model_validator(mode="after")
    def _one_credential(self) -> StorageConfig:
        if self.connection_string is not None and self.container_sas_url is not None:
            raise ValueError("set storage.connection_string or storage.container_sas_url, not both")
        return self


class EncryptionConfig(_Section):
    public_key_pem: str | None = Field(
        default=None, description="The cloud's envelope public key (RSA >= 3072, PEM); its key id is derived."
    )
    public_key_file: str | None = Field(
        default=None, description="Path of a mounted PEM public key, used when public_key_pem is not set."
    )
    chunk_size: int = Field(
        default=64 * 1024, ge=4096, le=16 * 1024 * 1024, description="Plaintext bytes per AES-GCM chunk."
    )


class RetryConfig(_Section):
    initial_backoff_s: float = Field(default=1.0, gt=0, le=3600, description="First retry delay.")
    max_backoff_s: float = Field(default=300.0, gt=0, le=86400, description="Longest retry delay.")
    jitter: float = Field(
        default=0.5, ge=0.0, le=1.0, description="Each delay is shortened by a random fraction up to this."
    )
    max_attempts: int = Field(
        default=8,
        ge=1,
        le=1000,
        description="Failed attempts (for reasons of the sample itself) before quarantine.",
    )


class OutboxConfig(_Section):
    max_bytes: int = Field(
        default=1024**3,
        ge=1024,
        description="Disk budget of the outbox; over it the lowest priority, then oldest, entries go.",
    )
    keep_done_s: float = Field(
        default=7 * 86400,
        ge=0,
        description="How long records of uploaded entries are kept (duplicate detection).",
    )
    durability: Literal["full", "normal"] = Field(
        default="full",
        description="SQLite synchronous mode: 'full' survives power loss, 'normal' only crashes.",
    )
    workers: int = Field(
        default=2,
        ge=1,
        le=16,
        description="Upload workers; each keeps up to two samples in flight (a sample's sidecar "
        "beside the next sample's envelope).",
    )
    min_free_bytes: int = Field(
        default=64 * 1024**2,
        ge=0,
        description=(
            "Free space kept on the outbox's volume (at most a tenth of it): new samples are refused "
            "below it, so the outbox can still record its uploads when the disk fills up."
        ),
    )


class PredictionLogConfig(_Section):
    enabled: bool = Field(default=True, description="Keep a log of every (sampled) prediction's metadata.")
    sample_rate: float = Field(default=1.0, ge=0.0, le=1.0, description="Fraction of predictions logged.")
    max_batch: int = Field(default=5000, ge=1, le=1_000_000, description="Predictions per blob at most.")
    max_age_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="A batch is shipped at the latest this long after its first line.",
    )
    include_scores: bool = Field(default=True, description="Log the full score vector, not only the top-k.")
    priority: int = Field(default=0, description="Eviction priority of prediction-log batches.")


class UploaderConfig(_Section):
    device_id: str | None = Field(
        default=None, description="Device id in blob names; default: the IoT Edge device id."
    )
    storage: StorageConfig = Field(default_factory=StorageConfig, description="Where to upload.")
    encryption: EncryptionConfig = Field(default_factory=EncryptionConfig, description="Envelope sealing.")
    retry: RetryConfig = Field(default_factory=RetryConfig, description="Retry schedule and quarantine.")
    outbox: OutboxConfig = Field(default_factory=OutboxConfig, description="Durable outbox on local disk.")
    prediction_log: PredictionLogConfig = Field(
        default_factory=PredictionLogConfig, description="Batched log of predictions."
    )
