"""The lean Put Blob's HTTP client: requests on kept-alive connections, bodies by length, chunks
or to the end of the connection, a kept connection the server closed replaced (the request sent
once more only when no answer came), proxies (absolute URL, ``CONNECT``), and headers that would
break the request refused."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator

import pytest
from edgeloop_uploader.httpwire import ConnectionClosed, HttpClient, ProtocolError
from edgeloop_uploader.putblob import _fields

Script = Callable[[socket.socket, "Server"], None]


class Server:
    """A loopback server; each connection it accepts is handled by the next script."""

    def __init__(self, scripts: list[Script]) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.scripts = scripts
        self.heads: list[str] = []
        self.connections = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while self.scripts:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            script = self.scripts.pop(0)
            threading.Thread(target=self._run, args=(script, conn), daemon=True).start()

    def _run(self, script: Script, conn: socket.socket) -> None:
        with conn:
            script(conn, self)

    def read_request(self, conn: socket.socket) -> bytes | None:
        """One request's body (its head is recorded); None when the client closed instead."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return None
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        text = head.decode("latin-1")
        self.heads.append(text)
        length = 0
        for line in text.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "content-length":
                length = int(value)
        while len(body) < length:
            body += conn.recv(65536)
        return body

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def serve() -> Iterator[Callable[[list[Script]], Server]]:
    servers: list[Server] = []

    def start(scripts: list[Script]) -> Server:
        servers.append(Server(scripts))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _client(server: Server, **options: object) -> HttpClient:
    return HttpClient(
        f"http://127.0.0.1:{server.port}",
        connect_timeout=2,
        read_timeout=2,
        ca_bundle=None,
        **options,  # type: ignore[arg-type]
    )


_CREATED = b"HTTP/1.1 201 Created\r\nETag: e\r\nContent-Length: 0\r\n\r\n"


def _answer(requests: int, response: bytes = _CREATED) -> Script:
    def script(conn: socket.socket, server: Server) -> None:
        for _ in range(requests):
            if server.read_request(conn) is None:
                return
            conn.sendall(response)

    return script


def test_requests_share_a_kept_connection(serve: Callable[[list[Script]], Server]) -> None:
    # given
    server = serve([_answer(3)])
    client = _client(server)
    # when
    responses = [client.request("PUT", f"/c/b{i}", "Content-Length: 4\r\n", b"data") for i in range(3)]
    # then: one connection, three requests, each answered
    assert [r.status for r in responses] == [201, 201, 201]
    assert responses[0].headers["etag"] == "e"
    assert server.connections == 1
    assert [h.split("\r\n")[0] for h in server.heads] == [f"PUT /c/b{i} HTTP/1.1" for i in range(3)]
    host, encoding = server.heads[0].split("\r\n")[1:3]
    assert (host, encoding) == (f"Host: 127.0.0.1:{server.port}", "Accept-Encoding: identity")
    client.close()


def test_a_chunked_body_is_read_whole_and_the_connection_kept(
    serve: Callable[[list[Script]], Server],
) -> None:
    # given
    chunked = (
        b"HTTP/1.1 409 Conflict\r\nTransfer-Encoding: chunked\r\nx-ms-error-code: BlobAlreadyExists\r\n\r\n"
        b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nTrailer: t\r\n\r\n"
    )
    server = serve([_answer(2, chunked)])
    client = _client(server)
    # when
    first = client.request("PUT", "/c/b", "Content-Length: 1\r\n", b"x")
    second = client.request("PUT", "/c/b", "Content-Length: 1\r\n", b"x")
    # then
    assert first.status == second.status == 409
    assert first.body == b"hello world"
    assert first.headers["x-ms-error-code"] == "BlobAlreadyExists"
    assert server.connections == 1
    client.close()


def test_a_body_without_a_length_runs_to_the_end_of_the_connection(
    serve: Callable[[list[Script]], Server],
) -> None:
    def script(conn: socket.socket, server: Server) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.0 500 Oops\r\n\r\nsomething broke")

    server = serve([script, _answer(1)])
    client = _client(server)
    response = client.request("PUT", "/c/b", "Content-Length: 0\r\n", b"")
    assert (response.status, response.body) == (500, b"something broke")
    # the connection is not used again
    assert client.request("PUT", "/c/b", "Content-Length: 0\r\n", b"").status == 201
    assert server.connections == 2


def test_a_kept_connection_the_server_closed_is_not_used(serve: Callable[[list[Script]], Server]) -> None:
    # given: the server answers (keep-alive) and then closes the connection while it is idle
    server = serve([_answer(1), _answer(1)])
    client = _client(server)
    assert client.request("PUT", "/c/1", "Content-Length: 0\r\n", b"").status == 201
    deadline = threading.Event()
    deadline.wait(0.2)  # the first script ended: the server's side is closed
    # when
    response = client.request("PUT", "/c/2", "Content-Length: 0\r\n", b"")
    # then: sent once, on a new connection
    assert response.status == 201
    assert server.connections == 2
    assert [h.split("\r\n")[0] for h in server.heads] == ["PUT /c/1 HTTP/1.1", "PUT /c/2 HTTP/1.1"]


def test_a_request_a_kept_connection_dropped_unanswered_is_sent_again_on_a_new_one(
    serve: Callable[[list[Script]], Server],
) -> None:
    # given: the server answers the first request, then takes the second and closes unanswered
    def script(conn: socket.socket, server: Server) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")
        server.read_request(conn)

    server = serve([script, _answer(1)])
    client = _client(server)
    client.request("PUT", "/c/1", "Content-Length: 0\r\n", b"")
    # when
    response = client.request("PUT", "/c/2", "Content-Length: 0\r\n", b"")
    # then
    assert response.status == 201
    lines = [h.split("\r\n")[0] for h in server.heads]
    assert lines == ["PUT /c/1 HTTP/1.1", "PUT /c/2 HTTP/1.1", "PUT /c/2 HTTP/1.1"]
    assert server.connections == 2


def test_a_new_connection_closed_unanswered_is_an_error_not_a_retry(
    serve: Callable[[list[Script]], Server],
) -> None:
    def script(conn: socket.socket, server: Server) -> None:
        server.read_request(conn)

    server = serve([script, _answer(1)])
    client = _client(server)
    with pytest.raises(ConnectionClosed, match="closed"):
        client.request("PUT", "/c/1", "Content-Length: 0\r\n", b"")
    assert len(server.heads) == 1


def test_an_answer_cut_off_mid_body_is_an_error(serve: Callable[[list[Script]], Server]) -> None:
    def script(conn: socket.socket, server: Server) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 400 Bad\r\nContent-Length: 100\r\n\r\nshort")

    server = serve([script])
    with pytest.raises(OSError, match="mid-answer"):
        _client(server).request("PUT", "/c/1", "Content-Length: 0\r\n", b"")


@pytest.mark.parametrize(
    "answer",
    [
        b"ICY 200 OK\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nno colon here\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nContent-Length: twelve\r\n\r\n",
        b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ],
)
def test_an_answer_that_is_not_http_as_read_here_is_a_protocol_error(
    serve: Callable[[list[Script]], Server], answer: bytes
) -> None:
    server = serve([_answer(1, answer)])
    with pytest.raises(ProtocolError):
        _client(server).request("PUT", "/c/1", "Content-Length: 0\r\n", b"")


def test_a_plain_proxy_is_asked_for_the_absolute_url_with_its_credentials(
    serve: Callable[[list[Script]], Server],
) -> None:
    proxy = serve([_answer(1)])
    client = HttpClient(
        "http://storage.invalid:10000",
        connect_timeout=2,
        read_timeout=2,
        ca_bundle=None,
        proxy=f"http://us%40r:p%3Ass@127.0.0.1:{proxy.port}",
    )
    assert client.request("PUT", "/acct/c/b?sv=1", "Content-Length: 0\r\n", b"").status == 201
    (head,) = proxy.heads
    lines = head.split("\r\n")
    assert lines[0] == "PUT http://storage.invalid:10000/acct/c/b?sv=1 HTTP/1.1"
    assert "Host: storage.invalid:10000" in lines
    assert "Proxy-Authorization: Basic dXNAcjpwOnNz" in lines  # base64 of "us@r:p:ss"


def test_an_https_endpoint_is_reached_through_a_proxy_tunnel(serve: Callable[[list[Script]], Server]) -> None:
    # given: a proxy that refuses the tunnel
    def refuse(conn: socket.socket, server: Server) -> None:
        server.read_request(conn)
        conn.sendall(b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n")

    proxy = serve([refuse])
    client = HttpClient(
        "https://acct.blob.core.windows.net",
        connect_timeout=2,
        read_timeout=2,
        ca_bundle=None,
        proxy=f"127.0.0.1:{proxy.port}",
    )
    # when / then
    with pytest.raises(ConnectionError, match="407"):
        client.request("PUT", "/c/b", "Content-Length: 0\r\n", b"")
    assert proxy.heads[0].split("\r\n")[:2] == [
        "CONNECT acct.blob.core.windows.net:443 HTTP/1.1",
        "Host: acct.blob.core.windows.net:443",
    ]


@pytest.mark.parametrize("value", ["a\r\nx-ms-evil: 1", "a\nb", "a\rb"])
def test_a_header_that_would_break_the_request_is_refused(value: str) -> None:
    with pytest.raises(ValueError, match="line break"):
        _fields({"x-ms-meta-reason": value})


def test_a_header_that_is_not_latin_1_is_refused(serve: Callable[[list[Script]], Server]) -> None:
    server = serve([_answer(1)])
    with pytest.raises(UnicodeEncodeError):
        _client(server).request("PUT", "/c/b", _fields({"x-ms-meta-label": "\u4e00"}), b"")
    assert server.heads == []
