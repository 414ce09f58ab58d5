"""Build the cloud services from the environment (the CLI and the Functions app call this).

Environment variables (read here, never at import time):

- ``EDGELOOP_STORAGE_CONNECTION_STRING`` (required): storage account or Azurite;
- ``EDGELOOP_SAMPLE_KEYS`` (required): comma-separated PEM private key files that open sample envelopes;
- ``EDGELOOP_SIGNING_KEY`` (required): PEM Ed25519 private key file models are signed with;
- ``EDGELOOP_CLOUD_CONFIG``: JSON settings file (``CloudConfig``);
- ``EDGELOOP_IOTHUB_CONNECTION_STRING``: IoT Hub service connection string, for rollouts.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from edgeloop import signing
from edgeloop.errors import ConfigError
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.opener import EnvelopeOpener
from edgeloop_cloud.pipeline import CloudServices
from edgeloop_cloud.storage import AzureContainer


def _require(env: Mapping[str, str], name: str, what: str) -> str:
    value = env.get(name, "").strip()
    if not value:
        raise ConfigError(f"{name} is not set; it must name {what}")
    return value


def services_from_env(
    env: Mapping[str, str] | None = None, *, config_path: Path | None = None
) -> CloudServices:
    """Services over Azure storage (or Azurite) as the environment describes.

    Raises:
        ConfigError: a required variable is missing or a key file cannot be read.
    """
    env = os.environ if env is None else env
    path = config_path or (Path(env["EDGELOOP_CLOUD_CONFIG"]) if env.get("EDGELOOP_CLOUD_CONFIG") else None)
    config = CloudConfig.load(path)
    conn = _require(env, "EDGELOOP_STORAGE_CONNECTION_STRING", "the storage account connection string")
    keys = _require(env, "EDGELOOP_SAMPLE_KEYS", "the envelope private key file(s) (PEM, comma-separated)")
    key_files = [Path(p.strip()) for p in keys.split(",") if p.strip()]
    signing_file = _require(
        env, "EDGELOOP_SIGNING_KEY", "the PEM Ed25519 private key file models are signed with"
    )
    try:
        signing_key = signing.read_key_file(Path(signing_file))
        signing.load_private_key(signing_key)
    except signing.SignatureError as exc:
        raise ConfigError(f"EDGELOOP_SIGNING_KEY={signing_file!r}: {exc}") from exc
    return CloudServices(
        data=AzureContainer.from_connection_string(conn, config.data_container),
        models=AzureContainer.from_connection_string(conn, config.models_container),
        runs=AzureContainer.from_connection_string(conn, config.runs_container),
        opener=EnvelopeOpener.from_files(key_files),
        signing_key=signing_key,
        config=config,
    )
