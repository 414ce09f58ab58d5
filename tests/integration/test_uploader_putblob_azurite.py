"""The uploader's lean create-only Put Blob against a real Azurite: the storage accepts its
signature (shared key) or the SAS token, keeps what the SDK's ``upload_blob`` would have kept
(content type, metadata, index tags), refuses a second create at the same name, and over HTTPS
trusts only the CA bundle the environment names (else ``certifi``'s)."""

from __future__ import annotations

import pytest
from azure.storage.blob import ContainerClient
from edgeloop_uploader import blobs
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.putblob import LeanContainer
from edgeloop_uploader.sources import Credential
from edgeloop_uploader.storage import azure_store_factory

from edgeloop.blobstore import AzureContainer, BlobExistsError, BlobNotFoundError, BlobUnavailableError
from edgeloop.devhub.certs import CertPaths
from edgeloop.devtools.azurite import Azurite
from tests.integration.azurite_fixtures import azurite, container_sas_url  # noqa: F401
from tests.reliability.test_security_tls import https_azurite, private_ca  # noqa: F401

pytestmark = pytest.mark.integration

_NAME = "digits/3/2026/12/03/dev 1/01Bü~x.png.elenv"
_METADATA = {"blob_sha256": "ab" * 32, "content_type": "image/png", "selected_at": "2026-12-03T14:00:00Z"}
_TAGS = {"strategy": "uncertainty", "model": "digits", "device": "dev 1", "label_state": "unlabelled"}


def _store(credential: str) -> LeanContainer:
    config = UploaderConfig.model_validate({"storage": {"container": "data"}})
    store = azure_store_factory(Credential(credential, "test"), config)
    assert isinstance(store, LeanContainer)
    return store


@pytest.mark.parametrize("kind", ["connection_string", "sas"])
def test_a_lean_create_is_kept_as_the_sdk_would_keep_it(azurite: Azurite, kind: str) -> None:  # noqa: F811
    # given
    reader = AzureContainer.from_connection_string(azurite.connection_string, "data")
    sdk = ContainerClient.from_connection_string(azurite.connection_string, container_name="data")
    credential = (
        azurite.connection_string
        if kind == "connection_string"
        else container_sas_url(azurite, "data", expires_in=600)
    )
    store = _store(credential)
    # when
    outcome = blobs.put_once(store, _NAME, b"sealed", _METADATA, blobs.SEALED_CONTENT_TYPE, _TAGS)
    # then
    data, info = reader.read(_NAME)
    assert outcome == "written"
    assert data == b"sealed"
    assert info.metadata == _METADATA
    assert info.content_type == blobs.SEALED_CONTENT_TYPE
    assert sdk.get_blob_client(_NAME).get_blob_tags() == _TAGS
    # and a second create at the name is refused, the blob untouched; put_once takes it as an earlier try
    with pytest.raises(BlobExistsError):
        store.write(_NAME, b"other!", metadata=_METADATA, if_none_match="*")
    assert reader.read(_NAME)[0] == b"sealed"
    assert (
        blobs.put_once(store, _NAME, b"sealed", _METADATA, blobs.SEALED_CONTENT_TYPE, _TAGS)
        == "already_present"
    )


def test_a_missing_container_is_not_found(azurite: Azurite) -> None:  # noqa: F811
    store = _store(azurite.connection_string)
    with pytest.raises(BlobNotFoundError, match="ContainerNotFound"):
        store.write(_NAME, b"sealed", metadata=_METADATA, if_none_match="*")


def test_a_lean_create_trusts_only_the_ca_bundle_it_is_given(
    https_azurite: str,  # noqa: F811
    private_ca: CertPaths,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given: an HTTPS storage whose certificate a private CA signed, its container made
    control = ContainerClient.from_connection_string(
        https_azurite, "data", connection_verify=str(private_ca.ca_cert), retry_total=0
    )
    control.create_container()
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    # when / then: without the CA the request is refused before anything is sent
    with pytest.raises(BlobUnavailableError, match="unreachable"):
        _store(https_azurite).write(_NAME, b"sealed", metadata=_METADATA, if_none_match="*")
    assert list(control.list_blobs()) == []
    # and with the CA bundle named in the environment it goes through
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(private_ca.ca_cert))
    _store(https_azurite).write(_NAME, b"sealed", metadata=_METADATA, if_none_match="*")
    assert control.download_blob(_NAME).readall() == b"sealed"
