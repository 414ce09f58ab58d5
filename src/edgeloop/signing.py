"""Ed25519 signatures over model files.

The registry signs the exact bytes of ``model.onnx`` with its private key; the inference module
verifies them with the public key it is configured with before it loads a model. Signatures
travel as base64 text (in the twin and the model card); a key is named by its key id, the first
16 hex digits of the SHA-256 of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from edgeloop.errors import EdgeLoopError

Pem = bytes | str


class SignatureError(EdgeLoopError):
    """A signature does not verify, or a key or signature is malformed."""


def _pem_bytes(pem: Pem) -> bytes:
    return pem.encode("ascii") if isinstance(pem, str) else pem


def load_private_key(pem: Pem) -> Ed25519PrivateKey:
    """Parse an unencrypted PKCS#8 PEM Ed25519 private key. Raises ``SignatureError``."""
    try:
        key = serialization.load_pem_private_key(_pem_bytes(pem), password=None)
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise SignatureError(f"the private key is {type(key).__name__}; an Ed25519 key is required")
    return key


def load_public_key(pem: Pem) -> Ed25519PublicKey:
    """Parse a PEM (SubjectPublicKeyInfo) Ed25519 public key. Raises ``SignatureError``."""
    try:
        key = serialization.load_pem_public_key(_pem_bytes(pem))
    except (ValueError, TypeError) as exc:
        raise SignatureError(f"not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError(f"the public key is {type(key).__name__}; an Ed25519 key is required")
    return key


def generate_private_key() -> bytes:
    """A new Ed25519 private key as unencrypted PKCS#8 PEM."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(private_key_pem: Pem) -> bytes:
    """The PEM public key belonging to a PEM private key."""
    return (
        load_private_key(private_key_pem)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )


def generate_keypair() -> tuple[bytes, bytes]:
    """``(private_pem, public_pem)`` of a new Ed25519 key."""
    private = generate_private_key()
    return private, public_key_pem(private)


def key_id(public_key_pem: Pem) -> str:
    """First 16 hex digits of the SHA-256 of the raw 32-byte public key."""
    raw = load_public_key(public_key_pem).public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return hashlib.sha256(raw).hexdigest()[:16]


def sign(private_key_pem: Pem, data: bytes) -> str:
    """Sign ``data``; returns the 64-byte signature as base64 text."""
    return base64.b64encode(load_private_key(private_key_pem).sign(data)).decode("ascii")


def verify(public_key_pem: Pem, data: bytes, signature: str) -> None:
    """Check that ``signature`` (base64) over ``data`` was made by the key's owner.

    Raises:
        SignatureError: the signature is not base64, not 64 bytes, or does not verify.
    """
    public = load_public_key(public_key_pem)
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(f"signature is not base64 text: {exc}") from exc
    if len(raw) != 64:
        raise SignatureError(f"an Ed25519 signature is 64 bytes, this one decodes to {len(raw)}")
    try:
        public.verify(raw, data)
    except InvalidSignature as exc:
        raise SignatureError(
            f"signature does not verify with public key {key_id(public_key_pem)}: "
            "the data was altered or signed with another key"
        ) from exc


def sign_file(private_key_pem: Pem, path: Path) -> str:
    """Sign a file's bytes (the whole file is read)."""
    return sign(private_key_pem, Path(path).read_bytes())


def read_key_file(path: Path) -> bytes:
    """Read a PEM key file. Raises ``SignatureError`` naming the path when it cannot be read."""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise SignatureError(f"cannot read key file {str(path)!r}: {exc.strerror or exc}") from exc


def write_keypair(directory: Path, *, stem: str = "signing") -> tuple[Path, Path]:
    """Write a new key pair as ``<stem>.key`` (mode 0600) and ``<stem>.pub``; returns both paths."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    private, public = generate_keypair()
    private_path, public_path = directory / f"{stem}.key", directory / f"{stem}.pub"
    private_path.touch(mode=0o600)
    private_path.chmod(0o600)
    private_path.write_bytes(private)
    public_path.write_bytes(public)
    return private_path, public_path
