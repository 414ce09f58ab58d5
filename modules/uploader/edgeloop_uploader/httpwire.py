"""One HTTP/1.1 request at a time on kept-alive connections to one endpoint: what the lean Put
Blob needs of a client, and nothing else.

Through ``urllib3`` (and ``http.client`` under it) a small Put Blob cost 1.0-1.1 CPU ms against
Azurite on the digits benchmark's machine; written straight to the socket, the same request
0.24-0.47 ms: ``http.client`` checks each header against two regular expressions as it is added (23
calls a request) and parses the response's headers with the ``email`` package, and ``urllib3``
wraps both in its own objects. Here the request's head is one string, sent with its body in one
write, and the response is read as a status line, header lines and a ``Content-Length`` (or
chunked) body.

What the client does, as ``urllib3`` did: direct connections or through a proxy (an ``http``
endpoint: the request's absolute URL to the proxy; ``https``: a ``CONNECT`` tunnel), TLS
verified against a CA bundle (or the system's store), a connect and a read timeout, idle
connections kept (a few a pool) and one found closed by the server dropped before it is used.
A request on a kept connection that dies before any answer comes (the server closed it as the
request went out) is sent once more on a new one; a create-only write makes that safe.
"""

from __future__ import annotations

import base64
import contextlib
import select
import socket
import ssl
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: The longest response head read (status line and headers).
_MAX_HEAD = 64 * 1024
#: Bodies up to this size go out in the same write as the head.
_JOIN_BODY = 1024 * 1024


class ProtocolError(OSError):
    """The server's answer is not HTTP/1.x as this client reads it."""


class ConnectionClosed(ConnectionError):
    """The server closed the connection before its answer was whole (a network fault)."""


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # names in lower case
    body: bytes


@dataclass(frozen=True)
class _Proxy:
    scheme: str
    host: str
    port: int
    authorization: str | None


def _split_proxy(url: str) -> _Proxy:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    authorization = None
    if parts.username:
        pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode("latin-1")
        authorization = f"Basic {base64.b64encode(pair).decode('ascii')}"
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    return _Proxy(scheme, parts.hostname or "", port, authorization)


def _netloc(host: str, port: int, default: int) -> str:
    name = f"[{host}]" if ":" in host else host
    return name if port == default else f"{name}:{port}"


class _Connection:
    """A socket and what was read past the last response."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""
        self.answered = False  # a byte of the current response came

    def dropped(self) -> bool:
        """Whether the server closed it (or sent something unasked) while it was idle."""
        poller = select.poll()
        poller.register(self.sock, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


class HttpClient:
    """Requests to one ``scheme://host:port``; thread-safe (each request has a connection of
    its own, idle ones are kept in a pool)."""

    def __init__(
        self,
        base_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        ca_bundle: str | None,
        proxy: str | None = None,
        pool_size: int = 8,
    ) -> None:
        parts = urlsplit(base_url)
        self.scheme = parts.scheme
        if self.scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.host = parts.hostname or ""
        default = 443 if self.scheme == "https" else 80
        self.port = parts.port or default
        self.netloc = _netloc(self.host, self.port, default)
        self._origin = f"{self.scheme}://{self.netloc}"
        self._proxy = _split_proxy(proxy) if proxy else None
        self._connect_timeout = connect_timeout
        self._read_timeout = read_timeout
        self._ca_bundle = ca_bundle
        self._tls: ssl.SSLContext | None = None
        self._idle: list[_Connection] = []
        self._pool_size = pool_size
        self._lock = threading.Lock()
        # the idle connections are closed when the client is dropped without ``close``
        weakref.finalize(self, _close_all, self._idle)

    def request(self, method: str, target: str, fields: str, body: bytes) -> Response:
        """Send ``method target`` (a path with its query, quoted) with the header lines
        ``fields`` (``Name: value\\r\\n`` each; ``Host`` and ``Content-Length`` are the
        caller's) and ``body``; the response.

        Raises:
            OSError: no connection, a timeout, TLS refused, or an answer this client cannot read.
        """
        head = self._head(method, target, fields)
        message = head + body if len(body) <= _JOIN_BODY else None
        while True:
            conn, kept = self._take()
            conn.answered = False
            try:
                if message is not None:
                    conn.sock.sendall(message)
                else:
                    conn.sock.sendall(head)
                    conn.sock.sendall(body)
                response, reusable = self._read(conn, method)
            except OSError as exc:
                conn.close()
                if kept and not conn.answered and isinstance(exc, _UNANSWERED):
                    continue  # the server had closed the kept connection: once more, on a new one
                raise
            except BaseException:
                conn.close()
                raise
            if reusable and not conn.buffer:  # nothing unasked for after the answer
                self._give_back(conn)
            else:
                conn.close()
            return response

    def close(self) -> None:
        with self._lock:
            idle = self._idle[:]
            self._idle.clear()
        _close_all(idle)

    # -- the request's head ------------------------------------------------------------------
    def _head(self, method: str, target: str, fields: str) -> bytes:
        if self._proxy is not None and self.scheme == "http":
            target = self._origin + target  # a plain proxy is asked for the absolute URL
            if self._proxy.authorization:
                fields += f"Proxy-Authorization: {self._proxy.authorization}\r\n"
        # ``Accept-Encoding: identity`` as ``http.client`` adds it: the body is never to be decoded
        return (
            f"{method} {target} HTTP/1.1\r\nHost: {self.netloc}\r\nAccept-Encoding: identity\r\n{fields}\r\n"
        ).encode("latin-1")

    # -- connections ---------------------------------------------------------------------------
    def _take(self) -> tuple[_Connection, bool]:
        """An idle connection still open (True), else a new one (False)."""
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._connect(), False
            if conn.dropped():
                conn.close()
                continue
            return conn, True

    def _give_back(self, conn: _Connection) -> None:
        with self._lock:
            if len(self._idle) < self._pool_size:
                self._idle.append(conn)
                return
        conn.close()

    def _connect(self) -> _Connection:
        proxy = self._proxy
        host, port = (proxy.host, proxy.port) if proxy else (self.host, self.port)
        sock = socket.create_connection((host, port), timeout=self._connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if proxy is not None and proxy.scheme == "https":
                sock = self._context().wrap_socket(sock, server_hostname=proxy.host)
            if proxy is not None and self.scheme == "https":
                self._tunnel(sock)
            if self.scheme == "https":
                sock = self._context().wrap_socket(sock, server_hostname=self.host)
            sock.settimeout(self._read_timeout)
        except BaseException:
            sock.close()
            raise
        return _Connection(sock)

    def _tunnel(self, sock: socket.socket) -> None:
        """``CONNECT`` through the proxy to the endpoint."""
        assert self._proxy is not None
        authority = _netloc(self.host, self.port, 0)
        fields = f"Proxy-Authorization: {self._proxy.authorization}\r\n" if self._proxy.authorization else ""
        sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n{fields}\r\n".encode("latin-1"))
        conn = _Connection(sock)
        status, _headers = _read_head(conn)
        if status != 200:
            raise ConnectionError(f"the proxy refused the tunnel: HTTP {status}")
        if conn.buffer:
            raise ProtocolError("the proxy sent more than its answer to CONNECT")

    def _context(self) -> ssl.SSLContext:
        """Made at the first TLS connection: a CA bundle missing is an error of a request."""
        if self._tls is None:
            self._tls = ssl.create_default_context(cafile=self._ca_bundle)
        return self._tls

    # -- the response ----------------------------------------------------------------------------
    def _read(self, conn: _Connection, method: str) -> tuple[Response, bool]:
        """The response, and whether the connection can carry another request."""
        while True:
            status, headers = _read_head(conn)
            if status >= 200 or status == 101:
                break  # 1xx (a 100 Continue not asked for) precede the answer
        reusable = headers.get("connection", "").lower() != "close"
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = _read_chunked(conn)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise ProtocolError(f"bad Content-Length {headers['content-length']!r}") from None
            body = _read_exactly(conn, length)
        else:  # the body runs to the end of the connection
            body = conn.buffer + _read_to_end(conn.sock)
            conn.buffer, reusable = b"", False
        return Response(status, headers, body), reusable


def _close_all(connections: list[_Connection]) -> None:
    for conn in connections:
        conn.close()


#: How a request on a kept connection dies when the server had closed it (before any answer).
_UNANSWERED = (ConnectionClosed, BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


def _recv(conn: _Connection) -> bytes:
    data = conn.sock.recv(65536)
    if not data:
        when = "mid-answer" if conn.answered else "unanswered"
        raise ConnectionClosed(f"the server closed the connection {when}")
    conn.answered = True
    return data


def _read_head(conn: _Connection) -> tuple[int, dict[str, str]]:
    """The status and headers of the next response; ``conn.buffer`` keeps what follows them."""
    end = conn.buffer.find(b"\r\n\r\n")
    while end < 0:
        if len(conn.buffer) > _MAX_HEAD:
            raise ProtocolError("response head too long")
        start = max(0, len(conn.buffer) - 3)
        conn.buffer += _recv(conn)
        end = conn.buffer.find(b"\r\n\r\n", start)
    head, conn.buffer = conn.buffer[:end].decode("latin-1"), conn.buffer[end + 4 :]
    line, *fields = head.split("\r\n")
    version, _, rest = line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise ProtocolError(f"not an HTTP/1.x status line: {line[:80]!r}")
    headers: dict[str, str] = {}
    for field in fields:
        name, sep, value = field.partition(":")
        if not sep or not name or name[-1] in " \t":
            raise ProtocolError(f"bad header line: {field[:80]!r}")
        key = name.lower()
        if key in headers:
            headers[key] = f"{headers[key]}, {value.strip()}"
        else:
            headers[key] = value.strip()
    if version == "HTTP/1.0" and headers.get("connection", "").lower() != "keep-alive":
        headers["connection"] = "close"
    return int(code), headers


def _read_exactly(conn: _Connection, length: int) -> bytes:
    while len(conn.buffer) < length:
        conn.buffer += _recv(conn)
    body, conn.buffer = conn.buffer[:length], conn.buffer[length:]
    return body


def _read_line(conn: _Connection) -> bytes:
    end = conn.buffer.find(b"\r\n")
    while end < 0:
        if len(conn.buffer) > _MAX_HEAD:
            raise ProtocolError("chunk line too long")
        conn.buffer += _recv(conn)
        end = conn.buffer.find(b"\r\n")
    line, conn.buffer = conn.buffer[:end], conn.buffer[end + 2 :]
    return line


def _read_chunked(conn: _Connection) -> bytes:
    parts: list[bytes] = []
    while True:
        size_text = _read_line(conn).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise ProtocolError(f"bad chunk size {size_text[:20]!r}") from None
        if size == 0:
            while _read_line(conn):  # trailers, up to the empty line
                pass
            return b"".join(parts)
        parts.append(_read_exactly(conn, size))
        if _read_exactly(conn, 2) != b"\r\n":
            raise ProtocolError("chunk not followed by CRLF")


def _read_to_end(sock: socket.socket) -> bytes:
    parts: list[bytes] = []
    while data := sock.recv(65536):
        parts.append(data)
    return b"".join(parts)


def proxy_for(scheme: str, proxies: Mapping[str, str]) -> str | None:
    """The proxy named for ``scheme`` (or for all), as ``requests`` found it in the environment."""
    return proxies.get(scheme) or proxies.get("all") or None
