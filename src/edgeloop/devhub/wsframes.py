"""WebSocket frames (RFC 6455), server side: the handshake key, client frames in, server
frames out. Only what MQTT over WebSockets needs: binary data, ping/pong and close.

Client frames must be masked (6455, 5.1); control frames are at most 125 bytes and never
fragmented; reserved bits must be zero. Anything else is a ``WebSocketError``.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

from edgeloop.errors import EdgeLoopError

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

CONTINUATION = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA
_KNOWN = {CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG}

# Close codes (6455, 7.4.1).
NORMAL_CLOSURE = 1000
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
TOO_BIG = 1009


class WebSocketError(EdgeLoopError):
    """A client sent bytes that are not a valid WebSocket frame; ``code`` is the close code."""

    def __init__(self, reason: str, code: int = PROTOCOL_ERROR) -> None:
        super().__init__(reason)
        self.code = code


@dataclass(frozen=True, slots=True)
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True


def accept_key(client_key: str) -> str:
    """The ``Sec-WebSocket-Accept`` value answering a ``Sec-WebSocket-Key``."""
    digest = hashlib.sha1(client_key.strip().encode("ascii") + _GUID).digest()
    return base64.b64encode(digest).decode("ascii")


def _unmask(payload: bytes, mask: bytes) -> bytes:
    if not payload:
        return payload
    repeated = (mask * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


class FrameReader:
    """Splits a byte stream from a client into frames; refuses frames over ``max_bytes``."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Frame]:
        """The complete frames in what has arrived so far (the rest stays buffered)."""
        self._buffer += data
        frames: list[Frame] = []
        while True:
            frame = self._next()
            if frame is None:
                return frames
            frames.append(frame)

    def _next(self) -> Frame | None:
        buf = self._buffer
        if len(buf) < 2:
            return None
        first, second = buf[0], buf[1]
        fin, opcode = bool(first & 0x80), first & 0x0F
        if first & 0x70:
            raise WebSocketError("reserved bits set (no extension was negotiated)")
        if opcode not in _KNOWN:
            raise WebSocketError(f"unknown opcode {opcode:#x}")
        if not second & 0x80:
            raise WebSocketError("client frame is not masked")
        length, offset = second & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return None
            (length,), offset = struct.unpack_from("!H", buf, 2), 4
        elif length == 127:
            if len(buf) < 10:
                return None
            (length,), offset = struct.unpack_from("!Q", buf, 2), 10
        if opcode >= CLOSE and (length > 125 or not fin):
            raise WebSocketError("control frame over 125 bytes or fragmented")
        if length > self.max_bytes:
            raise WebSocketError(f"frame of {length} bytes is over the {self.max_bytes}-byte limit", TOO_BIG)
        end = offset + 4 + length
        if len(buf) < end:
            return None
        mask = bytes(buf[offset : offset + 4])
        payload = _unmask(bytes(buf[offset + 4 : end]), mask)
        del buf[:end]
        return Frame(opcode, payload, fin)


def encode_frame(opcode: int, payload: bytes = b"") -> bytes:
    """One unmasked, final server frame."""
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return head + payload


def encode_close(code: int, reason: str = "") -> bytes:
    return encode_frame(CLOSE, struct.pack("!H", code) + reason.encode("utf-8")[:120])
