"""MQTT over WebSockets: binary frames in and out of an ``MqttConnection``.

The bridge is the MQTT connection's transport: what the connection writes leaves as one binary
frame; the payloads of binary frames that arrive are the MQTT byte stream. A frame that breaks
RFC 6455 (unmasked, text, reserved bits, oversize) closes this connection with the matching
close code and a logged reason; nothing else is affected.
"""

from __future__ import annotations

import logging
from typing import Any

from edgeloop.devhub import wsframes
from edgeloop.devhub.connection import MqttConnection
from edgeloop.devhub.wsframes import FrameReader, WebSocketError

log = logging.getLogger(__name__)


class WebSocketBridge:
    def __init__(self, transport: Any, connection: MqttConnection, max_frame_bytes: int) -> None:
        self._transport = transport
        self._connection = connection
        self._reader = FrameReader(max_frame_bytes)
        self._close_code = wsframes.NORMAL_CLOSURE
        self._closing = False
        self._binary = False  # the message being continued is binary

    def start(self, data: bytes) -> None:
        """Hand the MQTT connection this bridge as its transport; ``data`` already arrived."""
        self._connection.connection_made(self)
        if data:
            self.feed(data)

    # -- from the client ------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        try:
            frames = self._reader.feed(data)
        except WebSocketError as exc:
            self._refuse(str(exc), exc.code)
            return
        for frame in frames:
            if self._closing:
                return
            self._frame(frame)

    def _frame(self, frame: wsframes.Frame) -> None:
        opcode = frame.opcode
        if opcode == wsframes.BINARY or (opcode == wsframes.CONTINUATION and self._binary):
            self._binary = not frame.fin
            self._connection.data_received(frame.payload)
        elif opcode == wsframes.PING:
            self._transport.write(wsframes.encode_frame(wsframes.PONG, frame.payload))
        elif opcode == wsframes.CLOSE:
            self._connection.close("client closed the WebSocket")
        elif opcode == wsframes.TEXT:
            self._refuse("text frame (MQTT over WebSockets is binary)", wsframes.UNSUPPORTED_DATA)
        elif opcode == wsframes.CONTINUATION:
            self._refuse("continuation frame without a message to continue", wsframes.PROTOCOL_ERROR)

    def _refuse(self, reason: str, code: int) -> None:
        self._connection.broker.stats["websocket_errors"] += 1
        log.warning(
            "closing WebSocket connection of %s (%s): %s",
            self._connection.module or "unauthenticated client",
            self._connection.peer,
            reason,
        )
        self._close_code = code
        self._connection.close(f"WebSocket error: {reason}", quiet=True)
        self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._connection.connection_lost(exc)

    # -- transport API used by the MQTT connection ----------------------------------------
    def write(self, data: bytes) -> None:
        if not self._closing and data:
            self._transport.write(wsframes.encode_frame(wsframes.BINARY, data))

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._transport.write(wsframes.encode_close(self._close_code))
        self._transport.close()

    def is_closing(self) -> bool:
        return self._closing or bool(self._transport.is_closing())

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)
