"""``edgeloop keys init`` and ``edgeloop decrypt``."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from edgeloop.cli import main
from edgeloop.envelope import EnvelopeContext, PublicKey, seal_bytes
from edgeloop.keys import signing_key_id


def _init(tmp_path: Path) -> Path:
    keys = tmp_path / "keys"
    assert main(["keys", "init", "--dir", str(keys)]) == 0
    return keys


def test_keys_init_writes_both_pairs_with_private_keys_0600(tmp_path: Path) -> None:
    # when
    keys = _init(tmp_path)
    # then
    for name in ("envelope-private.pem", "signing-private.pem"):
        assert stat.S_IMODE((keys / name).stat().st_mode) == 0o600
    ids = json.loads((keys / "keys.json").read_text())
    assert ids["envelope"]["key_id"] == PublicKey.from_file(keys / "envelope-public.pem").key_id
    signing_public = serialization.load_pem_public_key((keys / "signing-public.pem").read_bytes())
    raw = signing_public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert ids["signing"]["key_id"] == hashlib.sha256(raw).hexdigest()[:16]
    assert ids["signing"]["key_id"] == signing_key_id(signing_public)  # type: ignore[arg-type]


def test_keys_init_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    keys = _init(tmp_path)
    before = (keys / "envelope-private.pem").read_bytes()
    # when / then
    assert main(["keys", "init", "--dir", str(keys)]) == 1
    assert "--force" in capsys.readouterr().err
    assert (keys / "envelope-private.pem").read_bytes() == before
    assert main(["keys", "init", "--dir", str(keys), "--force"]) == 0
    assert (keys / "envelope-private.pem").read_bytes() != before


def _sealed(keys: Path, tmp_path: Path, data: bytes) -> Path:
    public = PublicKey.from_file(keys / "envelope-public.pem")
    ctx = EnvelopeContext(sample_id="01HS", device_id="dev1", content_type="image/jpeg")
    path = tmp_path / "01HS.jpg.elenv"
    path.write_bytes(seal_bytes(data, public_key=public, context=ctx))
    return path


def test_decrypt_restores_the_original_and_checks_the_blob_name(tmp_path: Path) -> None:
    # given
    keys = _init(tmp_path)
    sealed = _sealed(keys, tmp_path, b"\xff\xd8 jpeg bytes")
    out = tmp_path / "out.jpg"
    key = ["--key", str(keys / "envelope-private.pem")]
    # when
    code = main(
        ["decrypt", str(sealed), "-o", str(out), *key, "--blob-name", "m/1/2026/01/05/dev1/01HS.jpg.elenv"]
    )
    # then
    assert code == 0
    assert out.read_bytes() == b"\xff\xd8 jpeg bytes"


@pytest.mark.parametrize(
    "blob_name", ["m/1/2026/01/05/dev1/01HOTHER.jpg.elenv", "m/1/2026/01/05/dev2/01HS.jpg.elenv"]
)
def test_decrypt_refuses_a_swapped_blob(
    tmp_path: Path, blob_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    keys = _init(tmp_path)
    sealed = _sealed(keys, tmp_path, b"data")
    out = tmp_path / "out.jpg"
    # when
    code = main(
        [
            "decrypt",
            str(sealed),
            "-o",
            str(out),
            "--key",
            str(keys / "envelope-private.pem"),
            "--blob-name",
            blob_name,
        ]
    )
    # then
    assert code == 1
    assert "swapped" in capsys.readouterr().err
    assert not out.exists()
