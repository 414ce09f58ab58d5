"""HTTP/1.1 on the gateway port: requests read from a byte stream, responses written out.

One request per connection (the response says ``Connection: close``), bodies sized by
``Content-Length``: what the IoT SDK's direct-method calls and WebSocket upgrades send.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

from edgeloop.errors import EdgeLoopError

MAX_HEAD_BYTES = 16 * 1024
MAX_BODY_BYTES = 1024 * 1024
REASONS = {
    101: "Switching Protocols",
    200: "OK",
    400: "Bad Request",
    401: "Unauthorized",
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Payload Too Large",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    504: "Gateway Timeout",
}


class HttpError(EdgeLoopError):
    """A request that cannot be read; answered with ``status`` and the connection closed."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes = b""

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")

    @property
    def wants_websocket(self) -> bool:
        return self.header("upgrade").lower() == "websocket"


@dataclass(frozen=True)
class HttpResponse:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    def encode(self) -> bytes:
        payload = b"" if self.body is None else json.dumps(self.body).encode()
        lines = [f"HTTP/1.1 {self.status} {REASONS.get(self.status, 'Status')}"]
        if self.status != 101:
            lines += [
                "Content-Type: application/json; charset=utf-8",
                f"Content-Length: {len(payload)}",
                "Connection: close",
            ]
        lines += [f"{name}: {value}" for name, value in self.headers.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


def parse_head(buffer: bytes | bytearray) -> tuple[HttpRequest, int] | None:
    """(request without its body, bytes the head took), or None when the head is incomplete.

    Raises:
        HttpError: the head is malformed (400) or over ``MAX_HEAD_BYTES`` (431).
    """
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > MAX_HEAD_BYTES:
            raise HttpError(431, f"request head over {MAX_HEAD_BYTES} bytes")
        return None
    try:
        text = bytes(buffer[:end]).decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise HttpError(400, "request head is not text") from exc
    request_line, *header_lines = text.split("\r\n")
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, f"malformed request line {request_line[:80]!r}")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, sep, value = line.partition(":")
        if not sep or not name.strip():
            raise HttpError(400, f"malformed header line {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    url = urllib.parse.urlsplit(parts[1])
    query = dict(urllib.parse.parse_qsl(url.query))
    return HttpRequest(parts[0].upper(), urllib.parse.unquote(url.path), query, headers), end + 4


def body_length(request: HttpRequest) -> int:
    """The ``Content-Length`` of ``request`` (0 when absent).

    Raises:
        HttpError: not a number (400), chunked (400) or over ``MAX_BODY_BYTES`` (413).
    """
    if "chunked" in request.header("transfer-encoding").lower():
        raise HttpError(400, "chunked request bodies are not supported; send Content-Length")
    raw = request.header("content-length") or "0"
    try:
        length = int(raw)
    except ValueError as exc:
        raise HttpError(400, f"Content-Length {raw!r} is not a number") from exc
    if length < 0:
        raise HttpError(400, f"Content-Length {raw!r} is negative")
    if length > MAX_BODY_BYTES:
        raise HttpError(413, f"body of {length} bytes is over the {MAX_BODY_BYTES}-byte limit")
    return length
