"""A small HTTP/1.1 server and client over unix sockets (the workload and control APIs).

One request per connection, bodies sized by ``Content-Length``; enough for the IoT SDK's
``requests-unixsocket`` calls and for the ``edgeloop dev`` commands.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

_MAX_BODY = 1024 * 1024
_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Payload Too Large", 500: "Internal Server Error"}  # fmt: skip


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass(frozen=True)
class Response:
    status: int
    body: Any = None

    def encode(self) -> bytes:
        payload = b"" if self.body is None else json.dumps(self.body).encode()
        head = (
            f"HTTP/1.1 {self.status} {_REASONS.get(self.status, 'Status')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\nConnection: close\r\n\r\n"
        )
        return head.encode() + payload


Handler = Callable[[Request], Awaitable[Response]]


async def _read_request(reader: asyncio.StreamReader) -> Request | Response:
    line = (await reader.readline()).decode("latin-1").strip()
    parts = line.split(" ")
    if len(parts) != 3:
        return Response(400, {"message": "malformed request line"})
    method, target, _ = parts
    length = 0
    while True:
        header = (await reader.readline()).decode("latin-1")
        if header in ("\r\n", "\n", ""):
            break
        name, _, value = header.partition(":")
        if name.strip().lower() == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return Response(400, {"message": "bad Content-Length"})
    if length > _MAX_BODY:
        return Response(413, {"message": f"body over {_MAX_BODY} bytes"})
    body = await reader.readexactly(length) if length else b""
    url = urllib.parse.urlsplit(target)
    query = dict(urllib.parse.parse_qsl(url.query))
    return Request(method.upper(), urllib.parse.unquote(url.path), query, body)


async def serve_unix(path: Path, handler: Handler) -> asyncio.AbstractServer:
    """Listen on the unix socket ``path`` (replacing a stale one), answering with ``handler``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.unlink(missing_ok=True)

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await _read_request(reader)
            if isinstance(request, Response):
                response = request
            else:
                try:
                    response = await handler(request)
                except Exception as exc:
                    log.exception("%s %s failed", request.method, request.path)
                    response = Response(500, {"message": f"{exc.__class__.__name__}: {exc}"})
            writer.write(response.encode())
            await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_unix_server(on_client, path=str(path))
    path.chmod(0o600)
    return server


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request(
    path: Path, method: str, target: str, body: bytes | None = None, timeout: float = 30.0
) -> tuple[int, Any]:
    """One HTTP request over the unix socket ``path``: (status, parsed JSON body or None).

    Raises:
        OSError: the socket is missing or refuses the connection.
    """
    conn = _UnixConnection(path, timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, target, body=body, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        return response.status, (json.loads(raw) if raw else None)
    finally:
        conn.close()
