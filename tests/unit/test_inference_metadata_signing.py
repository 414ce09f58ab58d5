"""The shared model metadata and signing helpers."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from edgeloop import signing
from edgeloop.model_metadata import (
    LABELS_KEY,
    MODEL_NAME_KEY,
    PREPROCESS_KEY,
    ModelMetadataError,
    Preprocess,
    embed_metadata,
    metadata_from_map,
    metadata_props,
)


def test_preprocess_round_trips_through_metadata_props() -> None:
    # given
    pre = Preprocess(width=8, height=8, color="gray", layout="flat", scale=16 / 255)
    # when
    props = metadata_props(preprocess=pre, labels=[str(i) for i in range(10)], name="digits", version="3")
    meta = metadata_from_map({**props, "producer": "x"})
    # then
    assert meta.preprocess == pre
    assert meta.labels == [str(i) for i in range(10)]
    assert (meta.name, meta.version) == ("digits", "3")
    assert meta.extra == {"producer": "x"}


def test_empty_map_gives_empty_metadata() -> None:
    meta = metadata_from_map({})
    assert meta.preprocess is None
    assert meta.labels is None


@pytest.mark.parametrize(
    ("props", "expected"),
    [
        ({PREPROCESS_KEY: "{not json"}, "is not JSON"),
        ({PREPROCESS_KEY: "[1]"}, "must be a JSON object"),
        ({PREPROCESS_KEY: '{"layout": "CHW"}'}, "layout"),
        ({PREPROCESS_KEY: '{"colour": "rgb"}'}, "colour"),
        ({PREPROCESS_KEY: '{"color": "rgb", "mean": [1, 2]}'}, "mean has 2 values"),
        ({PREPROCESS_KEY: '{"std": [0]}'}, "non-zero"),
        ({PREPROCESS_KEY: '{"width": 8}'}, "both width and height"),
        ({LABELS_KEY: '{"a": 1}'}, "JSON list"),
        ({LABELS_KEY: "nope"}, "is not JSON"),
    ],
)
def test_bad_metadata_is_refused_with_the_reason(props: dict[str, str], expected: str) -> None:
    with pytest.raises(ModelMetadataError, match=expected):
        metadata_from_map(props)


def test_override_merges_and_revalidates() -> None:
    pre = Preprocess(width=8, height=8, color="gray")
    assert pre.merged({"scale": 1.0}).scale == 1.0
    assert pre.merged(None) is pre
    with pytest.raises(ModelMetadataError, match="scale"):
        pre.merged({"scale": -1})


def test_embed_metadata_keeps_other_props() -> None:
    import onnx
    from onnx import TensorProto, helper

    # given
    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])],
    )
    model = helper.make_model(graph)
    helper.set_model_props(model, {"author": "me"})
    # when
    embed_metadata(model, labels=["a", "b"], name="m")
    # then
    props = {p.key: p.value for p in onnx.load_from_string(model.SerializeToString()).metadata_props}
    assert props["author"] == "me"
    assert props[MODEL_NAME_KEY] == "m"
    assert metadata_from_map(props).labels == ["a", "b"]


@pytest.fixture(scope="module")
def keys() -> tuple[bytes, bytes]:
    return signing.generate_keypair()


def test_sign_and_verify(keys: tuple[bytes, bytes]) -> None:
    private, public = keys
    signature = signing.sign(private, b"model bytes")
    signing.verify(public, b"model bytes", signature)
    signing.verify(public.decode(), b"model bytes", signature)
    assert len(base64.b64decode(signature)) == 64


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda data, sig, other: (data + b"x", sig, None), "does not verify"),
        (lambda data, sig, other: (data, sig, other), "does not verify"),
        (lambda data, sig, other: (data, "!!notbase64", None), "not base64"),
        (lambda data, sig, other: (data, base64.b64encode(b"short").decode(), None), "64 bytes"),
    ],
)
def test_verify_refuses(keys: tuple[bytes, bytes], mutate: Any, expected: str) -> None:
    # given
    private, public = keys
    _, other_public = signing.generate_keypair()
    data, sig = b"model bytes", signing.sign(private, b"model bytes")
    data, sig, other = mutate(data, sig, other_public)
    # when / then
    with pytest.raises(signing.SignatureError, match=expected):
        signing.verify(other or public, data, sig)


def test_key_id_is_stable_and_differs_between_keys(keys: tuple[bytes, bytes]) -> None:
    _, public = keys
    _, other = signing.generate_keypair()
    assert signing.key_id(public) == signing.key_id(public)
    assert len(signing.key_id(public)) == 16
    assert signing.key_id(public) != signing.key_id(other)


@pytest.mark.parametrize("pem", [b"garbage", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_malformed_public_key_is_a_signature_error(pem: bytes | str) -> None:
    with pytest.raises(signing.SignatureError, match="PEM public key"):
        signing.load_public_key(pem)


def test_rsa_key_is_refused() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = (
        rsa.generate_private_key(public_exponent=65537, key_size=1024)
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(signing.SignatureError, match="Ed25519"):
        signing.load_public_key(pem)


def test_write_keypair_and_sign_file(tmp_path: Path) -> None:
    private_path, public_path = signing.write_keypair(tmp_path / "keys")
    model = tmp_path / "m.bin"
    model.write_bytes(b"\x00" * 100)
    signature = signing.sign_file(signing.read_key_file(private_path), model)
    signing.verify(signing.read_key_file(public_path), model.read_bytes(), signature)
    assert private_path.stat().st_mode & 0o777 == 0o600
    with pytest.raises(signing.SignatureError, match="cannot read key file"):
        signing.read_key_file(tmp_path / "missing.pub")


@pytest.mark.parametrize(
    ("doc", "ok"),
    [
        ({"input_kind": "vector", "vector_size": 4, "mean": [1, 2, 3, 4], "scale": 1}, True),
        ({"input_kind": "vector", "vector_size": 4, "mean": [1, 2]}, False),
        ({"input_kind": "vector", "mean": [1, 2]}, True),
    ],
)
def test_vector_mean_std_are_per_feature(doc: dict[str, Any], ok: bool) -> None:
    if ok:
        assert Preprocess.from_dict(doc).input_kind == "vector"
    else:
        with pytest.raises(ModelMetadataError, match="per feature"):
            Preprocess.from_dict(doc)
