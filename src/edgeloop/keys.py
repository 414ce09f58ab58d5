"""Key files: the envelope key pair (RSA-3072, for sealing samples) and the model-signing key pair
(Ed25519), created together by ``edgeloop keys init``.

Private keys are written with mode 0600 and never overwritten unless asked.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from edgeloop.envelope import generate_private_key, key_id_for
from edgeloop.errors import EdgeLoopError

DEFAULT_KEYS_DIR = Path(".edgeloop") / "keys"
ENVELOPE_PRIVATE = "envelope-private.pem"
ENVELOPE_PUBLIC = "envelope-public.pem"
SIGNING_PRIVATE = "signing-private.pem"
SIGNING_PUBLIC = "signing-public.pem"
KEYS_JSON = "keys.json"


class KeyFileError(EdgeLoopError):
    """Key files could not be written or are already there."""


@dataclass(frozen=True)
class KeySet:
    directory: Path
    envelope_key_id: str
    signing_key_id: str

    @property
    def envelope_private(self) -> Path:
        return self.directory / ENVELOPE_PRIVATE

    @property
    def envelope_public(self) -> Path:
        return self.directory / ENVELOPE_PUBLIC

    @property
    def signing_private(self) -> Path:
        return self.directory / SIGNING_PRIVATE

    @property
    def signing_public(self) -> Path:
        return self.directory / SIGNING_PUBLIC


def signing_key_id(public_key: ed25519.Ed25519PublicKey) -> str:
    """First 16 hex digits of SHA-256 of the raw 32-byte Ed25519 public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def _write(path: Path, data: bytes, *, private: bool) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(tmp, 0o600 if private else 0o644)
    os.replace(tmp, path)


def init_keys(directory: Path, *, force: bool = False) -> KeySet:
    """Create both key pairs in ``directory``.

    Raises:
        KeyFileError: a key file is already there (and not ``force``), or the folder is not writable.
    """
    names = (ENVELOPE_PRIVATE, ENVELOPE_PUBLIC, SIGNING_PRIVATE, SIGNING_PUBLIC, KEYS_JSON)
    existing = [name for name in names if (directory / name).exists()]
    if existing and not force:
        raise KeyFileError(
            f"{directory} already holds {', '.join(existing)}; pass --force to replace them "
            "(samples sealed with the old envelope key then need the old private key to open)"
        )
    envelope = generate_private_key()
    signing = ed25519.Ed25519PrivateKey.generate()
    pkcs8 = serialization.PrivateFormat.PKCS8
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    pem, none = serialization.Encoding.PEM, serialization.NoEncryption()
    keyset = KeySet(
        directory=directory,
        envelope_key_id=key_id_for(envelope.public_key()),
        signing_key_id=signing_key_id(signing.public_key()),
    )
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write(keyset.envelope_private, envelope.private_bytes(pem, pkcs8, none), private=True)
        _write(keyset.envelope_public, envelope.public_key().public_bytes(pem, spki), private=False)
        _write(keyset.signing_private, signing.private_bytes(pem, pkcs8, none), private=True)
        _write(keyset.signing_public, signing.public_key().public_bytes(pem, spki), private=False)
        ids = {
            "envelope": {"key_id": keyset.envelope_key_id, "algorithm": "RSA-3072 OAEP-SHA256"},
            "signing": {"key_id": keyset.signing_key_id, "algorithm": "Ed25519"},
        }
        _write(directory / KEYS_JSON, (json.dumps(ids, indent=2) + "\n").encode(), private=False)
    except OSError as exc:
        raise KeyFileError(f"cannot write keys to {directory}: {exc}") from exc
    return keyset
