"""``edgeloop deploy prepare`` refuses what cannot make a working device, naming the reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeloop import signing
from edgeloop.deploy.model import InitialModelError
from edgeloop.deploy.prepare import PrepareOptions, prepare
from edgeloop.deploy.storage import StorageSetupError
from edgeloop.devtools.azurite import Azurite
from tests import model_factory as mf
from tests.integration.azurite_fixtures import azurite

pytestmark = pytest.mark.integration

__all__ = ["azurite"]


def _options(tmp_path: Path, connection: str, **extra: object) -> PrepareOptions:
    values: dict[str, object] = {
        "connection_string": connection,
        "out_dir": tmp_path / "out",
        "keys_dir": tmp_path / "keys",
        "secrets_dir": tmp_path / "secrets",
        **extra,
    }
    return PrepareOptions(**values)  # type: ignore[arg-type]


def test_an_account_without_a_key_is_refused_without_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(StorageSetupError, match="has no AccountKey"):
        prepare(_options(tmp_path, "AccountName=acct;SharedAccessSignature=sv=1&sig=SECRET"))


def test_no_champion_and_no_model_file_is_refused(tmp_path: Path, azurite: Azurite) -> None:
    with pytest.raises(InitialModelError, match="no champion for model 'digits': give the initial model"):
        prepare(_options(tmp_path, azurite.connection_string))


def test_a_champion_signed_with_another_key_is_refused(tmp_path: Path, azurite: Azurite) -> None:
    # given: the registry's champion was published with other keys
    (tmp_path / "m.onnx").write_bytes(mf.digits_model())
    prepare(_options(tmp_path / "first", azurite.connection_string, model_file=tmp_path / "m.onnx"))
    from edgeloop_cloud.registry import Registry

    from edgeloop.blobstore import AzureContainer

    registry = Registry(AzureContainer.from_connection_string(azurite.connection_string, "models"))
    registry.promote("digits", "v1", expected=None, reason="test")
    # when: another key folder prepares the next device
    with pytest.raises(InitialModelError) as caught:
        prepare(_options(tmp_path / "second", azurite.connection_string))
    # then
    assert "signature does not verify with signing key" in str(caught.value)
    assert "digits v1" in str(caught.value)


def test_renew_sas_rewrites_only_the_device_secret(tmp_path: Path, azurite: Azurite) -> None:
    (tmp_path / "m.onnx").write_bytes(mf.digits_model())
    first = prepare(_options(tmp_path, azurite.connection_string, model_file=tmp_path / "m.onnx"))
    old = (tmp_path / "secrets" / "storage-sas-url").read_text()
    keys_before = (tmp_path / "keys" / "signing-private.pem").read_bytes()
    renewed = prepare(_options(tmp_path, azurite.connection_string, renew_sas_only=True, sas_days=180))
    assert (tmp_path / "secrets" / "storage-sas-url").read_text() != old
    assert renewed["storage"]["sas_expires_at"] > first["storage"]["sas_expires_at"]
    assert "model" not in renewed
    assert (tmp_path / "keys" / "signing-private.pem").read_bytes() == keys_before
    assert signing.key_id(signing.public_key_pem(keys_before))
