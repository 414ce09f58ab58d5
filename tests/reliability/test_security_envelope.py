"""Sealed samples: any change to an envelope fails authentication, and nothing of it is used.

Property-based: a byte flipped anywhere, a cut at any length, bytes appended, chunks spliced
from another envelope of the same key, the envelope renamed (opened as another sample, device
or content type): each is refused with an ``EnvelopeError``, never another exception and never
plaintext. Hostile headers (crafted JSON) are refused as malformed.
"""

from __future__ import annotations

import base64
import json
import struct
from functools import cache

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeloop.envelope import (
    MAGIC,
    VERSION,
    EnvelopeContext,
    EnvelopeContextError,
    EnvelopeError,
    EnvelopeFormatError,
    PrivateKeyring,
    PublicKey,
    generate_private_key,
    open_bytes,
    seal_bytes,
)
from tests.reliability.conftest import AreaLedger

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTEXT = EnvelopeContext(sample_id="01SAMPLE", device_id="dev-1", content_type="image/jpeg")


@cache
def keys() -> tuple[PublicKey, PrivateKeyring]:
    private = generate_private_key()
    ring = PrivateKeyring()
    ring.add(private)
    return PublicKey.from_pem(PublicKey(private.public_key(), "").pem()), ring


def sealed(data: bytes, chunk_size: int) -> bytes:
    public, _ = keys()
    return seal_bytes(data, public_key=public, context=CONTEXT, chunk_size=chunk_size)


def refused(data: bytes, expected: EnvelopeContext | None = CONTEXT) -> EnvelopeError:
    _, ring = keys()
    with pytest.raises(EnvelopeError) as caught:
        open_bytes(data, keyring=ring, expected=expected)
    return caught.value


plaintexts = st.binary(min_size=0, max_size=300)
chunk_sizes = st.integers(1, 64)


@FUZZ
@given(data=plaintexts, chunk=chunk_sizes, where=st.floats(0, 1, exclude_max=True), bit=st.integers(0, 7))
def test_a_flipped_bit_anywhere_fails(
    data: bytes, chunk: int, where: float, bit: int, reliability: AreaLedger
) -> None:
    # given
    envelope = bytearray(sealed(data, chunk))
    position = int(where * len(envelope))
    # when
    envelope[position] ^= 1 << bit
    reliability.record(faults=1, inputs=1)
    # then
    refused(bytes(envelope))


@FUZZ
@given(data=plaintexts, chunk=chunk_sizes, where=st.floats(0, 1, exclude_max=True))
def test_a_truncated_envelope_fails(data: bytes, chunk: int, where: float, reliability: AreaLedger) -> None:
    envelope = sealed(data, chunk)
    reliability.record(faults=1, inputs=1)
    refused(envelope[: int(where * len(envelope))])


@FUZZ
@given(data=plaintexts, chunk=chunk_sizes, extra=st.binary(min_size=1, max_size=80))
def test_appended_bytes_fail(data: bytes, chunk: int, extra: bytes, reliability: AreaLedger) -> None:
    reliability.record(faults=1, inputs=1)
    refused(sealed(data, chunk) + extra)


@FUZZ
@given(a=st.binary(min_size=40, max_size=200), b=st.binary(min_size=40, max_size=200), cut=st.integers(1, 39))
def test_chunks_spliced_from_another_envelope_of_the_same_key_fail(
    a: bytes, b: bytes, cut: int, reliability: AreaLedger
) -> None:
    # given: two envelopes of the same sample context and chunk size
    first, second = sealed(a, 8), sealed(b, 8)
    header_len = 10 + struct.unpack(">I", first[6:10])[0]
    other_header_len = 10 + struct.unpack(">I", second[6:10])[0]
    # when: the first's header with the second's chunks (from a chunk boundary on)
    offset = (cut % 4) * (8 + 16)
    spliced = first[: header_len + offset] + second[other_header_len + offset :]
    reliability.record(faults=1, inputs=1)
    # then
    refused(spliced)


@FUZZ
@given(
    field=st.sampled_from(["sample_id", "device_id", "content_type"]),
    value=st.text(min_size=1, max_size=20),
    data=plaintexts,
)
def test_a_renamed_or_swapped_envelope_fails(
    field: str, value: str, data: bytes, reliability: AreaLedger
) -> None:
    # given: the reader expects another sample, device or content type (the blob was renamed)
    expected = EnvelopeContext(**{**CONTEXT.as_dict(), field: value})
    reliability.record(faults=1, inputs=1)
    envelope = sealed(data, 64)
    # then
    if expected == CONTEXT:
        _, ring = keys()
        assert open_bytes(envelope, keyring=ring, expected=expected) == data
    else:
        assert isinstance(refused(envelope, expected), EnvelopeContextError)


def _header(doc: object) -> bytes:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return struct.pack(">5sBI", MAGIC, VERSION, len(body)) + body + b"\x00" * 32


def _valid_doc() -> dict[str, object]:
    envelope = sealed(b"x", 64)
    length = struct.unpack(">I", envelope[6:10])[0]
    doc: dict[str, object] = json.loads(envelope[10 : 10 + length])
    return doc


HOSTILE = {
    "not an object": [1, 2, 3],
    "context a list": {"context": []},
    "infinite chunk size": b'{"alg":"RSA-OAEP-256+A256GCM-STREAM","chunk_size":1e999,"key_id":"k",'
    b'"context":{"sample_id":"a","device_id":"b","content_type":"c"},'
    b'"nonce_prefix":"AAAAAAAAAA==","wrapped_key":""}',
    "chunk size a string": {"chunk_size": "big"},
    "huge chunk size": {"chunk_size": 2**40},
    "zero chunk size": {"chunk_size": 0},
    "deeply nested": b"[" * 40000,
    "invalid utf-8": b"\xff\xfe{",
    "bad base64": {"wrapped_key": "!!!"},
    "short nonce": {"nonce_prefix": base64.b64encode(b"12").decode()},
    "extra context key": {"context": {**CONTEXT.as_dict(), "evil": "1"}},
    "unknown algorithm": {"alg": "NONE"},
}


@pytest.mark.parametrize("case", list(HOSTILE), ids=list(HOSTILE))
def test_hostile_headers_are_refused_as_malformed(case: str, ledger: AreaLedger) -> None:
    # given
    patch = HOSTILE[case]
    doc: object = {**_valid_doc(), **patch} if isinstance(patch, dict) else patch
    ledger.record(inputs=1)
    # when
    error = refused(_header(doc), expected=None)
    # then
    assert isinstance(error, EnvelopeFormatError | EnvelopeError)


@FUZZ
@given(data=plaintexts, chunk=chunk_sizes, sample_id=st.text(min_size=1, max_size=30))
def test_sealed_size_predicts_the_envelope_exactly(
    data: bytes, chunk: int, sample_id: str, reliability: AreaLedger
) -> None:
    # the uploader budgets its disk with this figure before sealing
    from edgeloop.envelope import sealed_size

    public, _ = keys()
    context = EnvelopeContext(sample_id=sample_id, device_id="dev-1", content_type="image/jpeg")
    reliability.record(inputs=1)
    sealed_bytes = seal_bytes(data, public_key=public, context=context, chunk_size=chunk)
    assert sealed_size(len(data), public_key=public, context=context, chunk_size=chunk) == len(sealed_bytes)
