"""The envelope format: round trips of any size, and every way a sealed sample can be tampered with."""

from __future__ import annotations

import io
import struct
from functools import cache
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from edgeloop import envelope as env
from edgeloop.envelope import (
    EnvelopeContext,
    EnvelopeContextError,
    EnvelopeFormatError,
    EnvelopeIntegrityError,
    EnvelopeKeyError,
    PrivateKeyring,
    PublicKey,
)

CTX = EnvelopeContext(sample_id="01HSAMPLE000001", device_id="dev-1", content_type="image/jpeg")


@cache
def _private(n: int = 0) -> rsa.RSAPrivateKey:
    return env.generate_private_key()


def _public(n: int = 0) -> PublicKey:
    pem = (
        _private(n)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return PublicKey.from_pem(pem)


def _ring(*ns: int) -> PrivateKeyring:
    ring = PrivateKeyring()
    for n in ns or (0,):
        ring.add(_private(n))
    return ring


def _seal(data: bytes, *, chunk_size: int = 16, ctx: EnvelopeContext = CTX, key: int = 0) -> bytes:
    return env.seal_bytes(data, public_key=_public(key), context=ctx, chunk_size=chunk_size)


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 32, 33, 1000])
def test_round_trip_of_any_size_restores_the_plaintext(size: int) -> None:
    # given
    data = bytes(range(256)) * (size // 256 + 1)
    data = data[:size]
    # when
    sealed = _seal(data, chunk_size=16)
    opened = env.open_bytes(sealed, keyring=_ring(), expected=CTX)
    # then
    assert opened == data
    assert size < 16 or data not in sealed


def test_seal_reports_sizes_hashes_and_key_id() -> None:
    # given
    data = b"x" * 100
    out = io.BytesIO()
    # when
    result = env.seal(io.BytesIO(data), out, public_key=_public(), context=CTX, chunk_size=32)
    # then
    import hashlib

    assert result.plaintext_bytes == 100
    assert result.ciphertext_bytes == len(out.getvalue())
    assert result.plaintext_sha256 == hashlib.sha256(data).hexdigest()
    assert result.ciphertext_sha256 == hashlib.sha256(out.getvalue()).hexdigest()
    assert result.key_id == _public().key_id
    assert len(result.key_id) == 16


def test_two_seals_of_the_same_sample_differ() -> None:
    assert _seal(b"same") != _seal(b"same")


def test_header_names_the_context_and_key() -> None:
    # given
    sealed = _seal(b"abc")
    # when
    header = env.read_header(io.BytesIO(sealed))
    # then
    assert header.context == CTX
    assert header.key_id == _public().key_id
    assert header.chunk_size == 16


@pytest.mark.parametrize(
    "expected",
    [
        EnvelopeContext("01HOTHER", CTX.device_id, CTX.content_type),
        EnvelopeContext(CTX.sample_id, "dev-2", CTX.content_type),
        EnvelopeContext(CTX.sample_id, CTX.device_id, "image/png"),
    ],
    ids=["sample", "device", "content_type"],
)
def test_a_swapped_or_renamed_envelope_fails_to_open(expected: EnvelopeContext) -> None:
    sealed = _seal(b"secret pixels")
    with pytest.raises(EnvelopeContextError):
        env.open_bytes(sealed, keyring=_ring(), expected=expected)


def test_editing_the_context_in_the_header_fails_authentication() -> None:
    # given: the attacker rewrites the header so it matches another sample's name
    sealed = _seal(b"secret pixels" * 3)
    forged = sealed.replace(CTX.sample_id.encode(), b"01HSAMPLE000002")
    assert forged != sealed
    # when / then
    with pytest.raises(EnvelopeIntegrityError):
        env.open_bytes(
            forged,
            keyring=_ring(),
            expected=EnvelopeContext("01HSAMPLE000002", CTX.device_id, CTX.content_type),
        )


def _body_offset(sealed: bytes) -> int:
    (length,) = struct.unpack(">I", sealed[6:10])
    return 10 + length


@pytest.mark.parametrize("where", [0, 20, 40, -1])
def test_a_flipped_ciphertext_bit_fails_authentication(where: int) -> None:
    # given
    sealed = bytearray(_seal(b"a" * 40, chunk_size=16))
    position = _body_offset(bytes(sealed)) + where if where >= 0 else len(sealed) - 1
    sealed[position] ^= 0x01
    # when / then
    with pytest.raises(EnvelopeIntegrityError):
        env.open_bytes(bytes(sealed), keyring=_ring(), expected=CTX)


def test_reordered_chunks_fail_authentication() -> None:
    # given: three full chunks and an empty final one; swap the first two
    sealed = _seal(b"A" * 16 + b"B" * 16 + b"C" * 16, chunk_size=16)
    start, step = _body_offset(sealed), 16 + env.TAG_BYTES
    c0, c1 = sealed[start : start + step], sealed[start + step : start + 2 * step]
    swapped = sealed[:start] + c1 + c0 + sealed[start + 2 * step :]
    # when / then
    with pytest.raises(EnvelopeIntegrityError, match="chunk 0"):
        env.open_bytes(swapped, keyring=_ring(), expected=CTX)


@pytest.mark.parametrize("cut", [1, 16, 32, 33], ids=["last-byte", "tag", "final-chunk", "into-full-chunk"])
def test_truncated_envelopes_fail(cut: int) -> None:
    # given: 32 bytes in chunks of 16 -> two full chunks (32 bytes each sealed) and an empty final (16)
    sealed = _seal(b"z" * 32, chunk_size=16)
    # when / then
    with pytest.raises(EnvelopeIntegrityError):
        env.open_bytes(sealed[:-cut], keyring=_ring(), expected=CTX)


@pytest.mark.parametrize("extra", [b"\x00", b"\x00" * 100])
def test_appended_bytes_fail(extra: bytes) -> None:
    sealed = _seal(b"z" * 20)
    with pytest.raises(EnvelopeIntegrityError):
        env.open_bytes(sealed + extra, keyring=_ring(), expected=CTX)


def test_an_unknown_key_id_names_the_keys_held() -> None:
    sealed = _seal(b"z", key=1)
    with pytest.raises(EnvelopeKeyError, match=_public(0).key_id):
        env.open_bytes(sealed, keyring=_ring(0), expected=CTX)


def test_after_a_rotation_old_and_new_envelopes_open_with_the_keyring() -> None:
    # given
    old, new = _seal(b"old", key=0), _seal(b"new", key=1)
    ring = _ring(0, 1)
    # when / then
    assert env.open_bytes(old, keyring=ring, expected=CTX) == b"old"
    assert env.open_bytes(new, keyring=ring, expected=CTX) == b"new"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "shorter than its preamble"),
        (b"NOTANENVELOPE", "magic"),
        (b"ELENV\x02\x00\x00\x00\x02{}", "version 2"),
        (b"ELENV\x01\x00\x00\x00\x02{}", "malformed"),
        (b"ELENV\x01\xff\xff\xff\xff", "over the"),
    ],
)
def test_malformed_envelopes_are_refused_with_the_reason(data: bytes, match: str) -> None:
    with pytest.raises(EnvelopeFormatError, match=match):
        env.open_bytes(data, keyring=_ring(), expected=CTX)


def test_public_key_must_be_rsa_3072_or_more() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    curve = ec.generate_private_key(ec.SECP256R1()).public_key()
    for key in (small, curve):
        pem = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        with pytest.raises(EnvelopeKeyError):
            PublicKey.from_pem(pem)
    with pytest.raises(EnvelopeKeyError, match="not a PEM"):
        PublicKey.from_pem("garbage")


def test_open_file_leaves_no_output_when_authentication_fails(tmp_path: Path) -> None:
    # given
    sealed = bytearray(_seal(b"q" * 100, chunk_size=16))
    sealed[-1] ^= 1
    src, dst = tmp_path / "s.elenv", tmp_path / "out.jpg"
    src.write_bytes(bytes(sealed))
    # when
    with pytest.raises(EnvelopeIntegrityError):
        env.open_file(src, dst, keyring=_ring(), expected=CTX)
    # then
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.elenv"]


def test_large_input_is_streamed_in_bounded_chunks() -> None:
    # given: a reader that records the largest read asked of it
    class Recorder(io.BytesIO):
        biggest = 0

        def read(self, size: int | None = -1) -> bytes:
            Recorder.biggest = max(Recorder.biggest, size or 0)
            return super().read(size)

    data = b"m" * (3 * 1024 * 1024 + 5)
    out = io.BytesIO()
    # when
    env.seal(Recorder(data), out, public_key=_public(), context=CTX, chunk_size=64 * 1024)
    # then
    assert Recorder.biggest == 64 * 1024
    assert env.open_bytes(out.getvalue(), keyring=_ring(), expected=CTX) == data


@pytest.mark.parametrize("size", [0, 15, 16, 17, 100])
def test_sealed_size_is_exact(size: int) -> None:
    sealed = _seal(b"s" * size, chunk_size=16)
    assert env.sealed_size(size, public_key=_public(), context=CTX, chunk_size=16) == len(sealed)
