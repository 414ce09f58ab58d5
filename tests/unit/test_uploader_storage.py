"""The uploader's link to the storage. Its Azure store reads the environment once, when it is
built: a proxy and a CA bundle set in the environment still apply to every upload, though
requests no longer looks them up (nor a ``.netrc``) on each one. A container that could not be
created at start is created once the storage answers that it is missing."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.sources import Credential
from edgeloop_uploader.storage import azure_store_factory

from edgeloop.blobstore import BlobAuthError, BlobNotFoundError, BlobStoreError, BlobUnavailableError
from tests.unit.uploader_support import Harness, selected

KEY = "a2V5"  # base64 of "key": any account key signs
_ENVIRONMENT = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "REQUESTS_CA_BUNDLE",
    "CURL_CA_BUNDLE",
)


_UNAVAILABLE = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class Listener:
    """A loopback server that records the first line of each request and answers 503."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.request_lines: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    head += chunk
                self.request_lines.append(head.split(b"\r\n", 1)[0].decode("latin-1"))
                conn.sendall(
                    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                )

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    server = Listener()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENVIRONMENT:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


def _closed_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def _connection_string(endpoint: str) -> str:
    return f"DefaultEndpointsProtocol=http;AccountName=acct;AccountKey={KEY};BlobEndpoint={endpoint}"


def _write(credential: str) -> None:
    store = azure_store_factory(Credential(credential, "test"), UploaderConfig())
    store.write("a/b.elenv", b"sealed", metadata={"blob_sha256": "x"}, if_none_match="*")


def test_an_upload_goes_through_the_proxy_the_environment_names(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a storage endpoint nothing listens on, and a proxy in the environment
    endpoint = f"http://127.0.0.1:{_closed_port()}/acct"
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{listener.port}")
    # when
    with pytest.raises(BlobStoreError):
        _write(_connection_string(endpoint))
    # then: the request went to the proxy, for the storage's URL
    assert listener.request_lines == [f"PUT {endpoint}/data/a/b.elenv HTTP/1.1"]


def test_no_proxy_keeps_an_upload_off_the_proxy(listener: Listener, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    endpoint = f"http://127.0.0.1:{listener.port}/acct"
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{_closed_port()}")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    # when
    with pytest.raises(BlobStoreError):
        _write(_connection_string(endpoint))
    # then: straight to the storage
    assert listener.request_lines == ["PUT /acct/data/a/b.elenv HTTP/1.1"]


def test_a_container_sas_url_reaches_its_own_endpoint(listener: Listener) -> None:
    # when
    with pytest.raises(BlobStoreError):
        _write(f"http://127.0.0.1:{listener.port}/acct/box?sv=2024-01-01&sp=cw&sig=S")
    # then: the SAS's container, with its token, no signature of ours
    (line,) = listener.request_lines
    assert line.startswith("PUT /acct/box/a/b.elenv?sv=2024-01-01&sp=cw&sig=S")


def test_the_ca_bundle_the_environment_names_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: an https endpoint and a CA bundle that does not exist
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/nonexistent/edgeloop-ca.pem")
    endpoint = f"https://127.0.0.1:{_closed_port()}/acct"
    # when / then: requests refuses the bundle before it connects, naming it
    with pytest.raises(BlobStoreError, match=r"edgeloop-ca\.pem"):
        _write(_connection_string(endpoint).replace("=http;", "=https;"))


def test_a_credential_that_is_neither_kind_is_refused_without_quoting_it() -> None:
    with pytest.raises(BlobAuthError, match="neither a container SAS URL") as raised:
        azure_store_factory(Credential("not-a-credential-SECRET", "test"), UploaderConfig())
    assert "SECRET" not in str(raised.value)


def test_a_container_not_created_at_start_is_created_when_an_upload_finds_it_missing(
    tmp_path: Path,
) -> None:
    # given: the storage was unreachable when the uploader started (no container made), and
    # answers ContainerNotFound to writes until the container is created
    created: list[str] = []
    unreachable = [True]

    def storage(operation: str, name: str) -> None:
        if operation == "create":
            if unreachable[0]:
                raise BlobUnavailableError("create: storage unreachable")
            created.append(name)
        elif operation == "put" and not created:
            raise BlobNotFoundError(f"write {name}: ContainerNotFound")

    h = Harness(tmp_path)
    h.store.fail_hook = storage
    h.restart()
    unreachable[0] = False
    assert h.uploader.accept_selected(selected(h.samples, "01S1"))
    # when: an upload finds the container missing, then the backoff passes
    h.pump()
    assert created == ["data"]
    h.clock.advance(10)
    h.pump()
    # then: delivered once
    assert [n.sample_id for n in h.notices] == ["01S1"]
    assert len(h.store.puts) == 1
