"""The Azure blob store adapter against a real Azurite: conditional creates, errors translated."""

from __future__ import annotations

import io
import time

import pytest

from edgeloop.blobstore import (
    ANY,
    AzureContainer,
    BlobAuthError,
    BlobExistsError,
    BlobNotFoundError,
    BlobUnavailableError,
    LeaseHeldError,
    PreconditionFailedError,
    tags_query,
)
from edgeloop.devtools.azurite import Azurite
from tests.integration.azurite_fixtures import azurite, container_sas_url  # noqa: F401

pytestmark = pytest.mark.integration


def test_put_is_create_only_and_keeps_metadata(azurite: Azurite) -> None:  # noqa: F811
    # given
    store = AzureContainer.from_credential(azurite.connection_string, container="data")
    store.ensure_container()
    store.ensure_container()  # idempotent
    # when
    store.write(
        "a/b.bin",
        io.BytesIO(b"one"),
        length=3,
        metadata={"key_id": "k1"},
        content_type="x/y",
        if_none_match=ANY,
    )
    # then
    with pytest.raises(BlobExistsError):
        store.write("a/b.bin", b"two", if_none_match=ANY)
    info = store.info("a/b.bin")
    assert (info.size, info.metadata, info.content_type) == (3, {"key_id": "k1"}, "x/y")
    assert store.read("a/b.bin")[0] == b"one"
    assert [b.name for b in store.list("a/")] == ["a/b.bin"]
    store.write("a/b.bin", b"two")
    assert store.read("a/b.bin")[0] == b"two"
    store.delete("a/b.bin")
    with pytest.raises(BlobNotFoundError):
        store.info("a/b.bin")


def test_if_match_and_leases_are_translated(azurite: Azurite) -> None:  # noqa: F811
    # given
    store = AzureContainer.from_connection_string(azurite.connection_string, "runs")
    first = store.write("digits/state.json", b"1")
    second = store.write("digits/state.json", b"2", if_match=first)
    lease = store.acquire_lease("digits/lock", duration_s=15)
    # when / then
    with pytest.raises(PreconditionFailedError) as stale:
        store.write("digits/state.json", b"3", if_match=first)
    assert not isinstance(stale.value, BlobExistsError)
    assert store.info("digits/state.json").etag == second
    with pytest.raises(LeaseHeldError):
        store.write("digits/lock", b"x")
    with pytest.raises(LeaseHeldError):
        store.acquire_lease("digits/lock", duration_s=15)
    store.write("digits/lock", b"mine", lease_id=lease)
    store.renew_lease("digits/lock", lease)
    store.release_lease("digits/lock", lease)
    store.write("digits/lock", b"free")
    assert (store.exists("digits/lock"), store.exists("digits/nothing")) == (True, False)
    assert [b.name for b in store.list("digits/")] == ["digits/lock", "digits/state.json"]
    store.close()


def test_wrong_key_and_expired_sas_are_auth_errors_that_never_quote_the_secret(
    azurite: Azurite,  # noqa: F811
) -> None:
    # given
    good = AzureContainer.from_credential(azurite.connection_string, container="data")
    good.ensure_container()
    wrong = azurite.connection_string.replace("AccountKey=Eby8", "AccountKey=AAAA")
    sas = container_sas_url(azurite, "data", expires_in=1)
    time.sleep(2.5)
    # when / then
    for credential in (wrong, sas):
        store = AzureContainer.from_credential(credential, container="data")
        with pytest.raises(BlobAuthError) as caught:
            store.write("x.bin", b"x", if_none_match=ANY)
        assert "sig=" not in str(caught.value)
        assert "AccountKey" not in str(caught.value)


def test_stopped_storage_is_unavailable(azurite: Azurite) -> None:  # noqa: F811
    # given
    store = AzureContainer.from_credential(azurite.connection_string, container="data", retry_total=0)
    store.ensure_container()
    azurite.stop()
    # when / then
    with pytest.raises(BlobUnavailableError):
        store.write("x.bin", b"x", if_none_match=ANY)


def test_a_credential_that_is_neither_form_is_refused_without_quoting_it() -> None:
    with pytest.raises(BlobAuthError) as caught:
        AzureContainer.from_credential("not-a-credential-s3cr3t")
    assert "s3cr3t" not in str(caught.value)


def test_tags_written_with_the_blob_are_found_by_a_tag_query(azurite: Azurite) -> None:  # noqa: F811
    # given: blobs written create-only with metadata and index tags in one request, one without
    store = AzureContainer.from_credential(azurite.connection_string, container="tagged")
    store.ensure_container()
    tags = {"strategy": "audit", "model": "digits", "model_version": "3", "device": "cam-1"}
    store.write("s/1.elenv", b"1", metadata={"strategy": "audit"}, tags=tags, if_none_match=ANY)
    store.write("s/2.elenv", b"2", tags={**tags, "strategy": "margin"}, if_none_match=ANY)
    store.write("s/3.elenv", b"3", metadata={"strategy": "audit"}, if_none_match=ANY)
    # when
    found = list(store.find_by_tags(tags_query({"strategy": "audit", "device": "cam-1"})))
    # then
    assert [(b.name, b.tags) for b in found] == [("s/1.elenv", {"strategy": "audit", "device": "cam-1"})]
    assert store.info("s/1.elenv").metadata == {"strategy": "audit"}
