"""The uploader's create-only write as one lean Put Blob request: the same request the SDK's
``upload_blob`` sends (names, headers, index tags), the storage's refusals translated as
``AzureContainer`` translates the SDK's, and every other write left to the SDK."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from azure.storage.blob import ContainerClient, ContentSettings
from azure.storage.blob._serialize import serialize_blob_tags_header
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.putblob import BlobPut, LeanContainer, SharedKeySigner, tags_header
from edgeloop_uploader.sources import Credential
from edgeloop_uploader.storage import azure_store_factory

from edgeloop.blobstore import (
    BlobAuthError,
    BlobExistsError,
    BlobNotFoundError,
    BlobStoreError,
    BlobUnavailableError,
    LeaseHeldError,
)

KEY = "a2V5"  # base64 of "key"
_VARIES = {"x-ms-date", "x-ms-client-request-id", "authorization", "host"}
_NAMES = ["a/b.elenv", "m/1/2026/12/03/dev 1/ü~+%(x).png.elenv", "a//b"]
_METADATA = {
    "blob_sha256": "ab" * 32,
    "selected_at": "2026-12-03T14:00:00+00:00",
    "content_type": "image/png",
}
_TAGS = {"strategy": "uncertainty", "model": "digits v2", "label_state": "unlabelled", "device": "a/b&c=d"}


class Storage:
    """A loopback server that records each request's head and answers with a queued status."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.answers: list[tuple[int, str]] = []
        self.raw_answers: list[bytes] = []  # sent as they are, before ``answers``
        threading.Thread(target=self._serve, daemon=True).start()

    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={KEY};"
            f"BlobEndpoint=http://127.0.0.1:{self.port}/acct"
        )

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
                head, _, body = data.partition(b"\r\n\r\n")
                line, *fields = head.decode("latin-1").split("\r\n")
                headers = {k.strip().lower(): v.strip() for k, v in (f.split(":", 1) for f in fields)}
                while len(body) < int(headers.get("content-length", "0")):
                    body += conn.recv(65536)
                self.requests.append((line, headers, body))
                if self.raw_answers:
                    conn.sendall(self.raw_answers.pop(0))
                    continue
                status, code = self.answers.pop(0) if self.answers else (201, "")
                extra = f"x-ms-error-code: {code}\r\n" if code else ""
                conn.sendall(
                    f'HTTP/1.1 {status} X\r\nETag: "0x8D"\r\n{extra}Content-Length: 0\r\n'
                    "Connection: close\r\n\r\n".encode("latin-1")
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def storage() -> Iterator[Storage]:
    server = Storage()
    yield server
    server.close()


def _lean(storage: Storage) -> LeanContainer:
    store = azure_store_factory(Credential(storage.connection_string(), "test"), UploaderConfig())
    assert isinstance(store, LeanContainer)
    return store


def _create(store: Any, name: str = "a/b.elenv", data: bytes = b"sealed bytes") -> str:
    return str(
        store.write(
            name,
            data,
            length=len(data),
            metadata=_METADATA,
            content_type="application/vnd.edgeloop.envelope",
            if_none_match="*",
            tags=_TAGS,
        )
    )


def test_index_tags_are_encoded_as_the_sdk_encodes_them() -> None:
    assert tags_header(_TAGS) == serialize_blob_tags_header(_TAGS)


@pytest.mark.parametrize("name", _NAMES)
@pytest.mark.parametrize(
    "credential",
    [
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        "https://acct.blob.core.windows.net/box?sv=2024-01-01&sp=cw&sig=S%2Bx%3D",
    ],
)
def test_a_blob_url_is_the_one_the_sdk_builds(credential: str, name: str) -> None:
    client = (
        ContainerClient.from_container_url(credential)
        if credential.startswith("https://")
        else ContainerClient.from_connection_string(credential, container_name="data")
    )
    put = BlobPut.for_client(client, connection_timeout=1, read_timeout=1, ca_bundle=None)
    assert put is not None
    assert put.url(name) == client.get_blob_client(name).url


@pytest.mark.parametrize("name", _NAMES)
def test_the_request_is_the_one_upload_blob_sends(storage: Storage, name: str) -> None:
    # given: the same create-only write through the SDK and through the lean request
    client = ContainerClient.from_connection_string(
        storage.connection_string(), container_name="data", retry_total=0
    )
    # when
    client.upload_blob(
        name,
        b"sealed bytes",
        overwrite=False,
        metadata=_METADATA,
        tags=_TAGS,
        content_settings=ContentSettings(content_type="application/vnd.edgeloop.envelope"),
    )
    etag = _create(_lean(storage), name)
    # then: same line, same headers (but for those made afresh per request), same body
    (sdk_line, sdk_headers, sdk_body), (line, headers, body) = storage.requests
    assert etag == '"0x8D"'
    assert line == sdk_line
    assert body == sdk_body == b"sealed bytes"
    drop = _VARIES | {"accept-encoding", "connection"}
    assert {k: v for k, v in headers.items() if k not in drop} == {
        k: v for k, v in sdk_headers.items() if k not in drop
    }
    assert headers["if-none-match"] == "*"
    assert headers["authorization"].startswith("SharedKey acct:")


def test_the_signature_is_the_sdks_for_the_request_sent(storage: Storage) -> None:
    # given: the SDK's own policy, signing the request as it went out
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.rest import HttpRequest
    from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy

    _create(_lean(storage))
    line, headers, body = storage.requests[0]
    path = line.split(" ")[1]
    sent = {k: v for k, v in headers.items() if k not in ("authorization", "host")}
    request = HttpRequest("PUT", f"http://127.0.0.1:{storage.port}{path}", headers=sent, content=body)
    # when
    SharedKeyCredentialPolicy("acct", KEY).on_request(PipelineRequest(request, PipelineContext(None)))
    # then
    assert headers["authorization"] == request.headers["Authorization"]


@pytest.mark.parametrize(
    "metadata",
    [
        _METADATA,
        {"a_b": "1", "a-c": "2", "ab": "3", "A_a": "4", "a": ""},
        {"selection_tags": "x,y", "selected_at": "t", "selected-at": "u", "reason": "margin 0.02"},
        {},
    ],
)
def test_a_signature_is_the_one_the_sdk_policy_computes(metadata: dict[str, str]) -> None:
    # given: a request's headers, with metadata names that the service collates unlike ASCII
    from azure.core.pipeline import PipelineContext, PipelineRequest
    from azure.core.rest import HttpRequest
    from azure.storage.blob._shared.authentication import SharedKeyCredentialPolicy

    policy = SharedKeyCredentialPolicy("acct", KEY)
    signer = SharedKeySigner.for_policy(policy)
    assert signer is not None
    headers = {
        "Content-Length": "12",
        "If-None-Match": "*",
        "x-ms-version": "2026-10-06",
        **{f"x-ms-meta-{k}": v for k, v in metadata.items()},
        "x-ms-tags": tags_header(_TAGS),
        "x-ms-date": "Thu, 03 Dec 2026 14:00:00 GMT",
    }
    path = "/acct/data/m/dev%201/%C3%BC~x.png.elenv"
    request = HttpRequest("PUT", f"http://127.0.0.1:1{path}", headers=headers)
    # when
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    first = signer.authorization("PUT", path, headers)
    # then (also once the order is kept)
    assert first == signer.authorization("PUT", path, headers) == request.headers["Authorization"]


def test_a_sas_url_carries_its_token_and_no_signature(storage: Storage) -> None:
    url = f"http://127.0.0.1:{storage.port}/acct/box?sv=2024-01-01&sp=cw&sig=S"
    store = azure_store_factory(Credential(url, "test"), UploaderConfig())
    _create(store)
    line, headers, _ = storage.requests[0]
    assert line == "PUT /acct/box/a/b.elenv?sv=2024-01-01&sp=cw&sig=S HTTP/1.1"
    assert "authorization" not in headers


@pytest.mark.parametrize(
    ("status", "code", "error"),
    [
        (409, "BlobAlreadyExists", BlobExistsError),
        (412, "ConditionNotMet", BlobExistsError),
        (409, "LeaseIdMissing", LeaseHeldError),
        (404, "ContainerNotFound", BlobNotFoundError),
        (403, "AuthenticationFailed", BlobAuthError),
        (403, "AuthorizationPermissionMismatch", BlobAuthError),
        (500, "InternalError", BlobUnavailableError),
        (503, "ServerBusy", BlobUnavailableError),
    ],
)
def test_a_refusal_is_the_error_the_sdk_path_gives(
    storage: Storage, status: int, code: str, error: type[Exception]
) -> None:
    # the SDK's own request (sent again after an auth refusal) is refused the same way
    storage.answers.extend([(status, code), (status, code)])
    with pytest.raises(error, match=f"{status}|{code}"):
        _create(_lean(storage))


def test_a_request_the_storage_finds_malformed_is_a_plain_store_error(storage: Storage) -> None:
    storage.answers.extend([(400, "InvalidHeaderValue"), (400, "InvalidHeaderValue")])
    with pytest.raises(BlobStoreError) as raised:
        _create(_lean(storage))
    assert type(raised.value) is BlobStoreError
    assert len(storage.requests) == 2  # the lean request, then the SDK's


@pytest.mark.parametrize("refusal", [(403, "AuthenticationFailed"), (400, "InvalidHeaderValue")])
def test_a_lean_request_refused_where_the_sdks_is_accepted_gives_way_to_the_sdk(
    storage: Storage, refusal: tuple[int, str], caplog: pytest.LogCaptureFixture
) -> None:
    # given: the storage refuses the first (lean) request and accepts what follows
    storage.answers.append(refusal)
    store = _lean(storage)
    # when
    etag = _create(store, "a/1.elenv")
    _create(store, "a/2.elenv")
    # then: the same create went out again through the SDK, and so does every later one
    assert etag == '"0x8D"'
    assert len(storage.requests) == 3
    assert [r[0].split()[1].split("?")[0] for r in storage.requests] == [
        "/acct/data/a/1.elenv", "/acct/data/a/1.elenv", "/acct/data/a/2.elenv"
    ]  # fmt: skip
    assert all(r[1]["if-none-match"] == "*" for r in storage.requests)
    # requests (the SDK's transport) keeps its connections alive; urllib3 alone says nothing
    assert [r[1].get("connection") for r in storage.requests] == [None, "keep-alive", "keep-alive"]
    assert "uploads go through the SDK from now on" in caplog.text


def test_an_answer_the_lean_client_cannot_read_gives_way_to_the_sdk(
    storage: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    # given: the first answer is not HTTP as the lean client reads it; the SDK's is
    storage.raw_answers.append(b"HTTP/1.1 201 Created\r\nContent-Length: twelve\r\n\r\n")
    store = _lean(storage)
    # when
    etag = _create(store, "a/1.elenv")
    _create(store, "a/2.elenv")
    # then: the create went out again through the SDK, and so does the next one
    assert etag == '"0x8D"'
    assert [r[1].get("connection") for r in storage.requests] == [None, "keep-alive", "keep-alive"]
    assert "could not be read" in caplog.text
    assert "uploads go through the SDK from now on" in caplog.text


def test_other_refusals_are_not_sent_again(storage: Storage) -> None:
    storage.answers.append((409, "BlobAlreadyExists"))
    with pytest.raises(BlobExistsError):
        _create(_lean(storage))
    assert len(storage.requests) == 1


def test_an_unreachable_storage_is_unavailable() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    credential = f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={KEY};BlobEndpoint=http://127.0.0.1:{port}/a"
    store = azure_store_factory(Credential(credential, "test"), UploaderConfig())
    with pytest.raises(BlobUnavailableError, match="unreachable"):
        _create(store)


class _Spy:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def put(self, blob: str, data: bytes, **_: Any) -> str:
        self.calls.append(blob)
        return '"spy"'

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    "options",
    [
        {"if_none_match": None},
        {"if_none_match": "*", "if_match": '"0x1"'},
        {"if_none_match": "*", "lease_id": "lease"},
        {"if_none_match": "*", "length": 3},
    ],
)
def test_writes_that_are_not_plain_creates_stay_with_the_sdk(
    storage: Storage, options: dict[str, Any]
) -> None:
    # given
    client = ContainerClient.from_connection_string(
        storage.connection_string(), container_name="data", retry_total=0
    )
    spy = _Spy()
    store = LeanContainer(client, spy)  # type: ignore[arg-type]
    # when
    store.write("a/b.elenv", b"sealed bytes", **options)
    # then: the SDK sent it
    assert spy.calls == []
    assert len(storage.requests) == 1
    # and a plain create goes the lean way
    store.write("a/c.elenv", b"sealed bytes", if_none_match="*")
    assert spy.calls == ["a/c.elenv"]
