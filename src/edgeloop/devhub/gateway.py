"""One connection on the gateway's HTTPS port (443, as edgeHub): a direct-method request, or a
WebSocket upgrade at ``/$iothub/websocket`` (subprotocol ``mqtt``) that then carries MQTT.

A request that cannot be read gets its 4xx and the connection closes; the hub and every other
connection keep running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from edgeloop.devhub.broker import Broker
from edgeloop.devhub.connection import MqttConnection
from edgeloop.devhub.httpwire import HttpError, HttpRequest, HttpResponse, body_length, parse_head
from edgeloop.devhub.wsbridge import WebSocketBridge
from edgeloop.devhub.wsframes import accept_key

log = logging.getLogger(__name__)

WEBSOCKET_PATH = "/$iothub/websocket"
_REQUEST_TIMEOUT_SECS = 10.0

HttpHandler = Callable[[HttpRequest], Awaitable[HttpResponse]]


class GatewayConnection:
    def __init__(self, broker: Broker, handler: HttpHandler, max_packet_bytes: int) -> None:
        self._broker = broker
        self._handler = handler
        self._max_packet_bytes = max_packet_bytes
        self._transport: Any = None
        self._peer = "?"
        self._buffer = bytearray()
        self._request: HttpRequest | None = None
        self._length = 0
        self._bridge: WebSocketBridge | None = None
        self._task: asyncio.Task[None] | None = None
        self._timer: asyncio.TimerHandle | None = None

    # -- stream protocol ------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self._transport = transport
        peer = transport.get_extra_info("peername")
        self._peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._timer = asyncio.get_running_loop().call_later(
            _REQUEST_TIMEOUT_SECS, self._give_up, f"no complete request within {_REQUEST_TIMEOUT_SECS:g} s"
        )

    def data_received(self, data: bytes) -> None:
        if self._bridge is not None:
            self._bridge.feed(data)
            return
        if self._task is not None:
            return  # one request per connection: bytes after it are ignored
        self._buffer += data
        try:
            self._advance()
        except HttpError as exc:
            self._answer_now(
                HttpResponse(exc.status, {"errorCode": exc.status * 1000 + 1, "message": exc.reason})
            )

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timer()
        if self._bridge is not None:
            self._bridge.connection_lost(exc)
        elif self._task is not None and not self._task.done():
            self._task.cancel()

    # -- requests -------------------------------------------------------------------------
    def _advance(self) -> None:
        if self._request is None:
            parsed = parse_head(self._buffer)
            if parsed is None:
                return
            self._request, used = parsed
            del self._buffer[:used]
            if self._request.wants_websocket:
                self._upgrade(self._request)
                return
            self._length = body_length(self._request)
        if len(self._buffer) < self._length:
            return
        request = self._request
        body = bytes(self._buffer[: self._length])
        self._buffer.clear()
        full = HttpRequest(request.method, request.path, request.query, request.headers, body)
        self._cancel_timer()
        self._task = asyncio.get_running_loop().create_task(self._serve(full))

    async def _serve(self, request: HttpRequest) -> None:
        self._broker.stats["https_requests"] += 1
        try:
            response = await self._handler(request)
        except Exception as exc:
            log.exception("%s %s failed", request.method, request.path)
            response = HttpResponse(500, {"errorCode": 500001, "message": f"{exc.__class__.__name__}: {exc}"})
        if response.status >= 400:
            log.info(
                "%s %s from %s: %d %s",
                request.method,
                request.path,
                self._peer,
                response.status,
                (response.body or {}).get("message", ""),
            )
        self._answer_now(response)

    def _answer_now(self, response: HttpResponse) -> None:
        self._cancel_timer()
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(response.encode())
            self._transport.close()

    # -- WebSocket upgrade ----------------------------------------------------------------
    def _upgrade(self, request: HttpRequest) -> None:
        problem = _upgrade_problem(request)
        if problem is not None:
            log.warning("refused a WebSocket upgrade from %s: %s", self._peer, problem.body["message"])
            self._broker.stats["websocket_errors"] += 1
            self._answer_now(problem)
            return
        self._cancel_timer()
        headers = {
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Accept": accept_key(request.header("sec-websocket-key")),
            "Sec-WebSocket-Protocol": "mqtt",
        }
        self._transport.write(HttpResponse(101, headers=headers).encode())
        self._broker.stats["websocket_connections"] += 1
        connection = MqttConnection(self._broker, self._max_packet_bytes)
        self._bridge = WebSocketBridge(self._transport, connection, self._max_packet_bytes)
        rest, self._buffer = bytes(self._buffer), bytearray()
        self._bridge.start(rest)

    # -- timers ---------------------------------------------------------------------------
    def _give_up(self, reason: str) -> None:
        self._timer = None
        log.info("closing connection from %s: %s", self._peer, reason)
        if self._transport is not None:
            self._transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def _upgrade_problem(request: HttpRequest) -> HttpResponse | None:
    """Why a WebSocket upgrade cannot be accepted, as the response to send; None when it can."""

    def refuse(status: int, message: str, headers: dict[str, str] | None = None) -> HttpResponse:
        return HttpResponse(status, {"errorCode": status * 1000 + 1, "message": message}, headers or {})

    if request.path != WEBSOCKET_PATH:
        return refuse(
            404, f"no WebSocket endpoint at {request.path!r}; MQTT over WebSockets is at {WEBSOCKET_PATH!r}"
        )
    if request.method != "GET":
        return refuse(405, f"a WebSocket upgrade is a GET, not {request.method}")
    if request.header("sec-websocket-version") != "13":
        return refuse(
            426,
            f"WebSocket version {request.header('sec-websocket-version')!r}; only 13",
            {"Sec-WebSocket-Version": "13"},
        )
    if not request.header("sec-websocket-key"):
        return refuse(400, "Sec-WebSocket-Key is missing")
    protocols = [p.strip().lower() for p in request.header("sec-websocket-protocol").split(",")]
    if "mqtt" not in protocols:
        return refuse(400, f"subprotocol {request.header('sec-websocket-protocol')!r}; only 'mqtt' is served")
    return None
