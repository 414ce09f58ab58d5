"""Where the storage credential and the envelope public key come from.

Credential, first found wins: ``setCredentials`` (until the twin's credentials change), the twin
(``storage.container_sas_url`` or ``storage.connection_string``), the mounted secret file
(``storage.credentials_file``), the variable the twin names (``storage.credential_env``), the
environment (``EDGELOOP_STORAGE_CONNECTION_STRING``). A secret file or variable that cannot be
read is reported with the reason (``storage.error`` in getStats, ``warnings``).
Public key: the twin's ``encryption.public_key_pem``, else ``encryption.public_key_file``, else
the file named by ``EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE``.

A credential is never logged: only its kind and where it came from.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from edgeloop.blobstore import is_sas_url
from edgeloop.envelope import EnvelopeKeyError, PublicKey
from edgeloop.errors import ConfigError
from edgeloop.secrets import SecretUnavailableError, read_secret_env, read_secret_file
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

    def sas_problems(self, now: datetime, *, renew_within: timedelta = timedelta(days=7)) -> list[str]:
        """For a SAS URL: expired or expiring soon, or lacking create/write permission."""
        if self.kind != "sas_url":
            return []
        query = parse_qs(urlsplit(self.secret).query)
        found = []
        permissions = query.get("sp", [""])[0]
        missing = [p for p in "cw" if p not in permissions]
        if missing:
            found.append(
                f"the SAS from {self.source} has permissions {permissions!r}: uploads need create (c) and "
                "write (w); issue a new one (edgeloop deploy prepare --renew-sas)"
            )
        expiry = _parse_time(query.get("se", [""])[0])
        if expiry is not None and expiry <= now:
            found.append(
                f"the SAS from {self.source} expired at {expiry.isoformat()}: samples wait in the outbox; "
                "renew it (edgeloop deploy prepare --renew-sas, then update the secret or call "
                "setCredentials)"
            )
        elif expiry is not None and expiry - now <= renew_within:
            found.append(f"the SAS from {self.source} expires at {expiry.isoformat()}: renew it soon")
        return found


def _parse_time(value: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Resolution:
    """The credential in force (None: none usable) and why the places tried gave none."""

    credential: Credential | None
    problems: list[str] = field(default_factory=list)


def resolve_credential(
    config: UploaderConfig, *, override: Credential | None, env_value: str | None
) -> Resolution:
    if override is not None:
        return Resolution(override)
    storage = config.storage
    if storage.container_sas_url is not None:
        return Resolution(
            Credential(storage.container_sas_url.get_secret_value(), "twin:storage.container_sas_url")
        )
    if storage.connection_string is not None:
        return Resolution(
            Credential(storage.connection_string.get_secret_value(), "twin:storage.connection_string")
        )
    problems = []
    if storage.credentials_file:
        try:
            secret = read_secret_file(storage.credentials_file)
            return Resolution(Credential(secret, f"file:{storage.credentials_file}"))
        except SecretUnavailableError as exc:
            problems.append(f"storage.credentials_file: {exc}")
    if storage.credential_env:
        try:
            secret = read_secret_env(storage.credential_env)
            return Resolution(Credential(secret, f"env:{storage.credential_env}"), problems)
        except SecretUnavailableError as exc:
            problems.append(f"storage.credential_env: {exc}")
    if env_value:
        return Resolution(Credential(env_value, "env:EDGELOOP_STORAGE_CONNECTION_STRING"), problems)
    return Resolution(None, problems)


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
