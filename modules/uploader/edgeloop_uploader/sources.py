"""Where the storage credential and the envelope public key come from.

Credential, first found wins: ``setCredentials`` (until the twin's credentials change), the twin
(``storage.container_sas_url`` or ``storage.connection_string``), the mounted secret file
(``storage.credentials_file``), the environment (``EDGELOOP_STORAGE_CONNECTION_STRING``).
Public key: the twin's ``encryption.public_key_pem``, else ``encryption.public_key_file``, else
the file named by ``EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE``.

A credential is never logged: only its kind and where it came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from edgeloop.blobstore import is_sas_url
from edgeloop.envelope import EnvelopeKeyError, PublicKey
from edgeloop.errors import ConfigError
from edgeloop_uploader.config import UploaderConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Credential:
    secret: str
    source: str

    @property
    def kind(self) -> str:
        return "sas_url" if is_sas_url(self.secret) else "connection_string"

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "source": self.source}

    def __repr__(self) -> str:  # never show the secret
        return f"Credential(kind={self.kind!r}, source={self.source!r})"


def read_secret_file(path: str) -> str | None:
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        log.warning("storage credentials file %s unreadable: %s", path, exc.strerror)
        return None
    return text or None


def resolve_credential(
    config: UploaderConfig, *, override: Credential | None, env_value: str | None
) -> Credential | None:
    if override is not None:
        return override
    storage = config.storage
    if storage.container_sas_url is not None:
        return Credential(storage.container_sas_url.get_secret_value(), "twin:storage.container_sas_url")
    if storage.connection_string is not None:
        return Credential(storage.connection_string.get_secret_value(), "twin:storage.connection_string")
    if storage.credentials_file:
        secret = read_secret_file(storage.credentials_file)
        if secret:
            return Credential(secret, f"file:{storage.credentials_file}")
    if env_value:
        return Credential(env_value, "env:EDGELOOP_STORAGE_CONNECTION_STRING")
    return None


def load_public_key(config: UploaderConfig, *, env_file: str | None) -> PublicKey | None:
    """The envelope public key, or None when none is configured yet (or its file is missing).

    Raises:
        ConfigError: the twin's PEM, or an existing key file, is not an RSA >= 3072 public key.
    """
    encryption = config.encryption
    if encryption.public_key_pem:
        try:
            return PublicKey.from_pem(encryption.public_key_pem)
        except EnvelopeKeyError as exc:
            raise ConfigError(f"key 'encryption.public_key_pem': {exc}") from exc
    path = encryption.public_key_file or env_file
    if not path:
        return None
    if not Path(path).exists():
        log.warning("envelope public key file %s does not exist yet; samples wait unsealed", path)
        return None
    try:
        return PublicKey.from_file(path)
    except EnvelopeKeyError as exc:
        raise ConfigError(f"key 'encryption.public_key_file' = {path!r}: {exc}") from exc
