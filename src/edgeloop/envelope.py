"""The EdgeLoop envelope: how a device seals a sample so that only the cloud can read it.

Format ``ELENV`` version 1 (the full specification is ``docs/envelope.md``)::

    magic        5 bytes   b"ELENV"
    version      1 byte    0x01
    header_len   4 bytes   unsigned, big-endian
    header       header_len bytes of UTF-8 JSON (keys sorted, no spaces)
    chunks       AES-256-GCM ciphertext+tag of each plaintext chunk, in order

* A random 256-bit data key per sample, wrapped with the cloud's RSA public key
  (RSA-OAEP, SHA-256 for the hash and MGF1; 3072-bit keys). The device holds only the public key.
* The plaintext is cut into chunks of ``chunk_size`` bytes; every chunk but the last is full,
  the last is shorter (empty when the size is a multiple), so memory stays bounded for any size.
* Chunk ``i`` is sealed with nonce ``nonce_prefix (7 bytes) || i (4 bytes, big-endian) || final
  (1 byte: 1 for the last chunk, else 0)`` and associated data ``SHA-256(magic..header)``: moving,
  dropping or appending a chunk, or changing one header byte, fails authentication.
* The header names the sample, the device and the content type; readers compare them with what
  they expect (from the blob name), so a renamed or swapped blob fails to open.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edgeloop.errors import EdgeLoopError

MAGIC = b"ELENV"
VERSION = 1
ALGORITHM = "RSA-OAEP-256+A256GCM-STREAM"
DEFAULT_CHUNK_SIZE = 64 * 1024
#: Readers refuse larger chunks so a hostile header cannot make them allocate without bound.
MAX_CHUNK_SIZE = 16 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MIN_RSA_BITS = 3072
TAG_BYTES = 16
NONCE_PREFIX_BYTES = 7
_PREAMBLE = struct.Struct(">5sBI")
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class EnvelopeError(EdgeLoopError):
    """A sample could not be sealed or opened."""


class EnvelopeFormatError(EnvelopeError):
    """The bytes are not an envelope this version understands (bad magic, version, header)."""


class EnvelopeKeyError(EnvelopeError):
    """No private key for the envelope's key id, or the data key does not unwrap with it."""


class EnvelopeIntegrityError(EnvelopeError):
    """The ciphertext was altered, reordered or truncated: nothing of it may be used."""


class EnvelopeContextError(EnvelopeError):
    """The envelope belongs to another sample, device or content type (a renamed or swapped blob)."""


@dataclass(frozen=True)
class EnvelopeContext:
    """What a sealed sample is bound to; all three are authenticated."""

    sample_id: str
    device_id: str
    content_type: str

    def as_dict(self) -> dict[str, str]:
        return {"sample_id": self.sample_id, "device_id": self.device_id, "content_type": self.content_type}


@dataclass(frozen=True)
class SealResult:
    """Facts about one sealed sample."""

    key_id: str
    plaintext_bytes: int
    ciphertext_bytes: int
    plaintext_sha256: str
    ciphertext_sha256: str


@dataclass(frozen=True)
class OpenResult:
    key_id: str
    context: EnvelopeContext
    plaintext_bytes: int
    plaintext_sha256: str


@dataclass(frozen=True)
class EnvelopeHeader:
    version: int
    algorithm: str
    key_id: str
    wrapped_key: bytes
    nonce_prefix: bytes
    chunk_size: int
    context: EnvelopeContext
    #: The exact bytes from the magic to the end of the header: their SHA-256 is every chunk's AAD.
    raw: bytes

    @property
    def aad(self) -> bytes:
        return hashlib.sha256(self.raw).digest()


# -- keys ------------------------------------------------------------------------------------
def key_id_for(public_key: rsa.RSAPublicKey) -> str:
    """The key id: the first 16 hex digits of SHA-256 of the DER SubjectPublicKeyInfo."""
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()[:16]


@dataclass(frozen=True)
class PublicKey:
    """The cloud's envelope public key as a device holds it."""

    key: rsa.RSAPublicKey
    key_id: str

    @classmethod
    def from_pem(cls, pem: bytes | str) -> PublicKey:
        """Load an RSA public key (SubjectPublicKeyInfo PEM).

        Raises:
            EnvelopeKeyError: not a PEM public key, not RSA, or under 3072 bits.
        """
        data = pem.encode("ascii") if isinstance(pem, str) else pem
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as exc:
            raise EnvelopeKeyError(f"envelope public key is not a PEM public key: {exc}") from exc
        if not isinstance(key, rsa.RSAPublicKey):
            raise EnvelopeKeyError(
                f"envelope public key must be RSA ({MIN_RSA_BITS} bits or more), got {type(key).__name__}"
            )
        if key.key_size < MIN_RSA_BITS:
            raise EnvelopeKeyError(
                f"envelope public key has {key.key_size} bits; {MIN_RSA_BITS} or more needed"
            )
        return cls(key=key, key_id=key_id_for(key))

    @classmethod
    def from_file(cls, path: Path | str) -> PublicKey:
        try:
            return cls.from_pem(Path(path).read_bytes())
        except OSError as exc:
            raise EnvelopeKeyError(f"cannot read envelope public key {str(path)!r}: {exc}") from exc

    def pem(self) -> bytes:
        return self.key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


class PrivateKeyring:
    """The cloud's private keys by key id: old ones stay so samples sealed before a rotation open."""

    def __init__(self, keys: Mapping[str, rsa.RSAPrivateKey] | None = None) -> None:
        self._keys: dict[str, rsa.RSAPrivateKey] = dict(keys or {})

    def add(self, key: rsa.RSAPrivateKey) -> str:
        key_id = key_id_for(key.public_key())
        self._keys[key_id] = key
        return key_id

    def add_pem(self, pem: bytes, password: bytes | None = None) -> str:
        """Raises ``EnvelopeKeyError`` when the PEM is not an RSA private key."""
        try:
            key = serialization.load_pem_private_key(pem, password=password)
        except (ValueError, TypeError) as exc:
            raise EnvelopeKeyError(f"not a PEM private key: {exc}") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise EnvelopeKeyError(f"envelope private key must be RSA, got {type(key).__name__}")
        return self.add(key)

    @classmethod
    def from_files(cls, *paths: Path | str) -> PrivateKeyring:
        ring = cls()
        for path in paths:
            try:
                ring.add_pem(Path(path).read_bytes())
            except OSError as exc:
                raise EnvelopeKeyError(f"cannot read envelope private key {str(path)!r}: {exc}") from exc
        return ring

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def get(self, key_id: str) -> rsa.RSAPrivateKey:
        try:
            return self._keys[key_id]
        except KeyError:
            raise EnvelopeKeyError(
                f"no private key with id {key_id!r} (have: {', '.join(self.key_ids) or 'none'})"
            ) from None


def generate_private_key(bits: int = MIN_RSA_BITS) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


# -- sealing ---------------------------------------------------------------------------------
def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    if index >= 2**32:
        raise EnvelopeError("sample too large: over 2**32 chunks")
    return prefix + struct.pack(">IB", index, 1 if final else 0)


def _header_bytes(
    *, key_id: str, wrapped: bytes, prefix: bytes, chunk_size: int, context: EnvelopeContext
) -> bytes:
    doc = {
        "alg": ALGORITHM,
        "chunk_size": chunk_size,
        "context": context.as_dict(),
        "key_id": key_id,
        "nonce_prefix": base64.b64encode(prefix).decode("ascii"),
        "wrapped_key": base64.b64encode(wrapped).decode("ascii"),
    }
    body = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return _PREAMBLE.pack(MAGIC, VERSION, len(body)) + body


def _read_full(src: BinaryIO, size: int) -> bytes:
    """Read exactly ``size`` bytes unless the stream ends first."""
    parts: list[bytes] = []
    remaining = size
    while remaining > 0:
        part = src.read(remaining)
        if not part:
            break
        parts.append(part)
        remaining -= len(part)
    return b"".join(parts)


def seal(
    src: BinaryIO,
    dst: BinaryIO,
    *,
    public_key: PublicKey,
    context: EnvelopeContext,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
) -> SealResult:
    """Encrypt ``src`` into ``dst`` as an envelope, reading ``chunk_size`` bytes at a time.

    Raises:
        EnvelopeError: ``chunk_size`` out of range or the sample is over 2**32 chunks.
        OSError: reading ``src`` or writing ``dst`` failed.
    """
    if not 1 <= chunk_size <= MAX_CHUNK_SIZE:
        raise EnvelopeError(f"chunk_size must be 1..{MAX_CHUNK_SIZE} bytes, got {chunk_size}")
    data_key = AESGCM.generate_key(bit_length=256)
    prefix = os.urandom(NONCE_PREFIX_BYTES)
    wrapped = public_key.key.encrypt(data_key, _OAEP)
    header = _header_bytes(
        key_id=public_key.key_id, wrapped=wrapped, prefix=prefix, chunk_size=chunk_size, context=context
    )
    aad = hashlib.sha256(header).digest()
    aead = AESGCM(data_key)
    plain_hash, cipher_hash = hashlib.sha256(), hashlib.sha256()
    dst.write(header)
    cipher_hash.update(header)
    written, total = len(header), 0
    index = 0
    while True:
        chunk = _read_full(src, chunk_size)
        final = len(chunk) < chunk_size
        plain_hash.update(chunk)
        total += len(chunk)
        sealed = aead.encrypt(_nonce(prefix, index, final), chunk, aad)
        dst.write(sealed)
        cipher_hash.update(sealed)
        written += len(sealed)
        if final:
            break
        index += 1
    return SealResult(
        key_id=public_key.key_id,
        plaintext_bytes=total,
        ciphertext_bytes=written,
        plaintext_sha256=plain_hash.hexdigest(),
        ciphertext_sha256=cipher_hash.hexdigest(),
    )


def sealed_size(
    plaintext_bytes: int, *, public_key: PublicKey, context: EnvelopeContext, chunk_size: int
) -> int:
    """The exact size of the envelope ``seal`` writes for ``plaintext_bytes`` (for disk budgets)."""
    header = _header_bytes(
        key_id=public_key.key_id,
        wrapped=bytes(public_key.key.key_size // 8),
        prefix=bytes(NONCE_PREFIX_BYTES),
        chunk_size=chunk_size,
        context=context,
    )
    return len(header) + plaintext_bytes + TAG_BYTES * (plaintext_bytes // chunk_size + 1)


def seal_bytes(data: bytes, *, public_key: PublicKey, context: EnvelopeContext, **kwargs: int) -> bytes:
    out = io.BytesIO()
    seal(io.BytesIO(data), out, public_key=public_key, context=context, **kwargs)
    return out.getvalue()


# -- opening ---------------------------------------------------------------------------------
def read_header(src: BinaryIO) -> EnvelopeHeader:
    """Read and parse the header, leaving ``src`` at the first chunk. Nothing is authenticated yet.

    Raises:
        EnvelopeFormatError: not an envelope, an unknown version or a malformed header.
    """
    preamble = _read_full(src, _PREAMBLE.size)
    if len(preamble) < _PREAMBLE.size:
        raise EnvelopeFormatError("not an EdgeLoop envelope: shorter than its preamble")
    magic, version, length = _PREAMBLE.unpack(preamble)
    if magic != MAGIC:
        raise EnvelopeFormatError(f"not an EdgeLoop envelope: magic {magic!r}, expected {MAGIC!r}")
    if version != VERSION:
        raise EnvelopeFormatError(
            f"envelope version {version} is not supported (this reader knows {VERSION})"
        )
    if length > MAX_HEADER_BYTES:
        raise EnvelopeFormatError(f"envelope header of {length} bytes is over the {MAX_HEADER_BYTES} limit")
    body = _read_full(src, length)
    if len(body) < length:
        raise EnvelopeIntegrityError("envelope truncated inside its header")
    try:
        doc = json.loads(body)
        context = EnvelopeContext(**{k: str(v) for k, v in doc["context"].items()})
        header = EnvelopeHeader(
            version=version,
            algorithm=str(doc["alg"]),
            key_id=str(doc["key_id"]),
            wrapped_key=base64.b64decode(doc["wrapped_key"], validate=True),
            nonce_prefix=base64.b64decode(doc["nonce_prefix"], validate=True),
            chunk_size=int(doc["chunk_size"]),
            context=context,
            raw=preamble + body,
        )
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError) as exc:
        # OverflowError: a number like 1e999; RecursionError: JSON nested beyond the parser's depth.
        raise EnvelopeFormatError(f"malformed envelope header: {exc!r:.200}") from exc
    if header.algorithm != ALGORITHM:
        raise EnvelopeFormatError(
            f"envelope algorithm {header.algorithm!r} unsupported (expected {ALGORITHM})"
        )
    if not 1 <= header.chunk_size <= MAX_CHUNK_SIZE or len(header.nonce_prefix) != NONCE_PREFIX_BYTES:
        raise EnvelopeFormatError(
            f"envelope header out of range: chunk_size {header.chunk_size}, nonce prefix "
            f"{len(header.nonce_prefix)} bytes"
        )
    return header


def _check_context(found: EnvelopeContext, expected: EnvelopeContext | None) -> None:
    if expected is None:
        return
    for name, want in expected.as_dict().items():
        got = getattr(found, name)
        if got != want:
            raise EnvelopeContextError(
                f"envelope is bound to {name} {got!r} but {want!r} was expected (renamed or swapped blob?)"
            )


def open_envelope(
    src: BinaryIO, dst: BinaryIO, *, keyring: PrivateKeyring, expected: EnvelopeContext | None
) -> OpenResult:
    """Decrypt ``src`` into ``dst``, one chunk at a time.

    ``expected`` is what the caller knows the sample to be (from the blob name and metadata);
    pass None only when the context is checked by other means. Plaintext is written as chunks
    authenticate: on any error, discard what was written to ``dst``.

    Raises:
        EnvelopeFormatError, EnvelopeKeyError, EnvelopeContextError, EnvelopeIntegrityError.
    """
    header = read_header(src)
    _check_context(header.context, expected)
    try:
        data_key = keyring.get(header.key_id).decrypt(header.wrapped_key, _OAEP)
    except ValueError as exc:
        raise EnvelopeKeyError(f"the data key does not unwrap with key {header.key_id!r}") from exc
    if len(data_key) != 32:
        raise EnvelopeKeyError(f"unwrapped data key has {len(data_key)} bytes, expected 32")
    aead, aad = AESGCM(data_key), header.aad
    step = header.chunk_size + TAG_BYTES
    plain_hash, total, index = hashlib.sha256(), 0, 0
    while True:
        sealed = _read_full(src, step)
        final = len(sealed) < step
        if len(sealed) < TAG_BYTES:
            raise EnvelopeIntegrityError(f"envelope truncated: chunk {index} is missing or cut short")
        try:
            chunk = aead.decrypt(_nonce(header.nonce_prefix, index, final), sealed, aad)
        except InvalidTag as exc:
            raise EnvelopeIntegrityError(
                f"chunk {index} failed authentication (altered, reordered or truncated envelope)"
            ) from exc
        dst.write(chunk)
        plain_hash.update(chunk)
        total += len(chunk)
        if final:
            break
        index += 1
    if src.read(1):
        raise EnvelopeIntegrityError("bytes after the final chunk: the envelope was extended")
    return OpenResult(
        key_id=header.key_id,
        context=header.context,
        plaintext_bytes=total,
        plaintext_sha256=plain_hash.hexdigest(),
    )


def open_bytes(data: bytes, *, keyring: PrivateKeyring, expected: EnvelopeContext | None) -> bytes:
    out = io.BytesIO()
    open_envelope(io.BytesIO(data), out, keyring=keyring, expected=expected)
    return out.getvalue()


def open_file(
    src: Path, dst: Path, *, keyring: PrivateKeyring, expected: EnvelopeContext | None
) -> OpenResult:
    """Decrypt ``src`` to ``dst`` through a temporary file: ``dst`` appears only when every chunk
    authenticated."""
    tmp = dst.with_name(f".{dst.name}.partial")
    try:
        with open(src, "rb") as fin, open(tmp, "wb") as fout:
            result = open_envelope(fin, fout, keyring=keyring, expected=expected)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return result
