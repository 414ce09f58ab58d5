"""The inference module's configuration: its module twin desired properties.

Twin keys are snake_case (``max_batch``, ``public_key``) as in every module; the camelCase
spelling of earlier releases (``maxBatch``) is still read, with a deprecation warning. An empty
twin is valid (no model from the twin, the initial model from the volume, CPU, batches of 8
within 10 ms), but models must be signed: set ``public_key``/``public_key_file``, or
``allow_unsigned: true`` (reported as a warning) to serve unsigned models.
"""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from edgeloop.errors import EdgeLoopError
from edgeloop.model_metadata import Preprocess

_TWIN = ConfigDict(extra="forbid", frozen=True)

#: Short provider names accepted in ``providers``, with the ONNX Runtime name each stands for.
PROVIDER_ALIASES = {
    "cpu": "CPUExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
    "openvino": "OpenVINOExecutionProvider",
    "directml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
}


def redact_url(url: str) -> str:
    """The URL without its query string (a Blob SAS token is a secret)."""
    parts = urlsplit(url)
    if not parts.query:
        return url
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "<sas redacted>", ""))


def is_loopback_host(host: str | None) -> bool:
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_model_url(url: str) -> str:
    """Accept https, http on a loopback host, and file URLs. Raises ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http":
        if is_loopback_host(parts.hostname):
            return url
        raise ValueError(
            f"http is accepted only on a loopback host (127.0.0.1, ::1, localhost), got "
            f"{parts.hostname!r}; use https (a Blob SAS URL)"
        )
    if parts.scheme == "file" and parts.netloc in ("", "localhost") and parts.path.startswith("/"):
        return url
    raise ValueError(
        f"model URL {redact_url(url)!r} is not accepted: use https://..., http://127.0.0.1/... "
        "or file:///absolute/path"
    )


class ModelSpec(BaseModel):
    """The model to serve, as the rollout writes it (also the ``loadModel`` payload)."""

    model_config = _TWIN

    name: str = Field(min_length=1, max_length=128, description="Model name in the registry.")
    version: str = Field(min_length=1, max_length=64, description="Model version in the registry.")
    url: str = Field(
        description="Where to fetch model.onnx: https (Blob SAS URL), http on loopback, or file:///path."
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the model file, 64 hex digits.")
    signature: str | None = Field(
        default=None,
        description="Ed25519 signature of the file, base64; required unless allow_unsigned is true.",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_model_url(value)

    @field_serializer("url", when_used="json")
    def _redacted(self, value: str) -> str:
        return redact_url(value)


class BatchingConfig(BaseModel):
    """Micro-batching: a batch runs when ``max_batch`` samples wait or ``max_wait_ms`` passed (at once
    while samples come more slowly than batches are processed)."""

    model_config = _TWIN

    max_batch: int = Field(default=8, ge=1, le=512, description="Most samples per model run.")
    max_wait_ms: float = Field(
        default=10.0,
        ge=0.0,
        le=5000.0,
        description="Longest wait for a batch to fill, from its first sample; only while samples come "
        "faster than batches are processed (else a batch runs at once with what is queued).",
    )
    queue_limit: int = Field(
        default=2048,
        ge=1,
        le=1_000_000,
        description="Samples waiting at most (read at start); input is held beyond it.",
    )


class HttpConfig(BaseModel):
    """The optional HTTP scoring endpoint for other containers (FastAPI; off by default)."""

    model_config = _TWIN

    enabled: bool = Field(default=False, description="Serve POST /predict and /docs.")
    host: str = Field(default="0.0.0.0", description="Address to listen on (0.0.0.0 inside a container).")
    port: int = Field(default=8080, ge=1, le=65535, description="TCP port to listen on.")
    max_body_kb: int = Field(default=4096, ge=1, le=65536, description="Largest request body accepted.")
    timeout_ms: float = Field(default=5000.0, gt=0, le=60000, description="Longest wait for a score.")


class InferenceConfig(BaseModel):
    """Module twin desired properties of the inference module."""

    model_config = _TWIN

    model: ModelSpec | None = Field(
        default=None, description="The model to serve; changing it hot-swaps after verification."
    )
    initial_model: str | None = Field(
        default=None,
        description="Model file used until a twin model is loaded: an absolute path or one relative "
        "to EDGELOOP_MODELS_DIR (default: initial/model.onnx there, if present).",
    )
    providers: list[str] = Field(
        default_factory=lambda: ["cpu"],
        description="Execution providers in order of preference (cpu, cuda, tensorrt, openvino or "
        "ONNX Runtime names); those not installed are skipped with a warning; CPU is always last.",
    )
    intra_op_threads: int = Field(
        default=0, ge=0, le=256, description="ONNX Runtime threads (0 = its default)."
    )
    intra_op_spinning: bool = Field(
        default=False,
        description="Let ONNX Runtime threads spin between runs (lower latency, but burns CPU that "
        "other modules on the device could use).",
    )
    public_key: str | None = Field(
        default=None, description="Ed25519 public key (PEM) that model signatures must verify with."
    )
    public_key_file: str | None = Field(
        default=None,
        description="PEM public key file (instead of public_key), absolute or under EDGELOOP_MODELS_DIR.",
    )
    allow_unsigned: bool = Field(
        default=False,
        description="Serve models without a verified signature (reported as a warning). Off: a model "
        "is refused unless a public key is configured and its signature verifies.",
    )
    batching: BatchingConfig = Field(default_factory=BatchingConfig, description="Micro-batching.")
    verify_sample_hash: bool = Field(
        default=True, description="Check a sample file against the sha256 in its frame, when present."
    )
    top_k: int = Field(default=3, ge=1, le=100, description="Labels and scores listed per prediction.")
    include_scores: bool = Field(default=True, description="Send the full score vector with each prediction.")
    preprocess: dict[str, Any] | None = Field(
        default=None, description="Fields that replace the model's edgeloop.preprocess metadata."
    )
    labels: list[str] | None = Field(default=None, description="Label names replacing the model's own.")
    output_name: str | None = Field(
        default=None, description="Model output holding the scores (default: the first float [N, C] output)."
    )
    download_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Per-request download timeout."
    )
    download_attempts: int = Field(default=3, ge=1, le=10, description="Download tries before giving up.")
    max_model_mb: float = Field(default=512.0, gt=0, le=8192, description="Largest model file accepted.")
    cache_keep: int = Field(default=4, ge=2, le=100, description="Model files kept in the cache.")
    http: HttpConfig = Field(default_factory=HttpConfig, description="Optional HTTP scoring endpoint.")

    @field_validator("providers")
    @classmethod
    def _providers(cls, value: list[str]) -> list[str]:
        for name in value:
            if name.lower() not in PROVIDER_ALIASES and not name.endswith("ExecutionProvider"):
                raise ValueError(
                    f"unknown provider {name!r}; use {sorted(PROVIDER_ALIASES)} or an ONNX Runtime "
                    "provider name such as 'CUDAExecutionProvider'"
                )
        return value

    @field_validator("preprocess")
    @classmethod
    def _preprocess(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value:
            try:
                Preprocess.from_dict({**Preprocess().model_dump(), **value})
            except EdgeLoopError as exc:
                raise ValueError(str(exc)) from exc
        return value

    @field_validator("public_key")
    @classmethod
    def _pem(cls, value: str | None) -> str | None:
        if value is not None and "BEGIN PUBLIC KEY" not in value:
            raise ValueError("public_key must be a PEM public key ('-----BEGIN PUBLIC KEY-----...')")
        return value

    @model_validator(mode="after")
    def _one_key(self) -> InferenceConfig:
        if self.public_key is not None and self.public_key_file is not None:
            raise ValueError("set public_key or public_key_file, not both")
        return self
