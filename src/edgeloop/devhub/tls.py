"""A lean TLS server transport on the asyncio loop: non-blocking ``ssl.SSLSocket`` driven by
``add_reader``/``add_writer``.

asyncio's own TLS transport runs every record through a Python state machine and memory BIOs;
for the small packets of MQTT that costs more than the hub's routing itself. Here OpenSSL
reads and writes the socket directly, so a packet costs one ``recv`` or ``send`` call.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

log = logging.getLogger(__name__)

_READ_SIZE = 256 * 1024


class StreamProtocol(Protocol):
    def connection_made(self, transport: Any) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...


class TlsTransport:
    """One accepted connection: handshake, then bytes in and out for its protocol."""

    def __init__(
        self,
        server: TlsServer,
        raw: socket.socket,
        peer: Any,
    ) -> None:
        self._server = server
        self._loop = server.loop
        self._peer = peer
        self._sock: ssl.SSLSocket = server.context.wrap_socket(
            raw, server_side=True, do_handshake_on_connect=False
        )
        self._fd = self._sock.fileno()
        self._protocol: StreamProtocol | None = None
        self._out: deque[bytes] = deque()
        self._writing = False
        self._closing = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None

    # -- handshake ------------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        self._timer = self._loop.call_later(timeout, self._abort, "TLS handshake timed out")
        self._loop.add_reader(self._fd, self._handshake)
        self._handshake()

    def _handshake(self) -> None:
        try:
            self._sock.do_handshake()
        except ssl.SSLWantReadError:
            self._loop.remove_writer(self._fd)
            return
        except ssl.SSLWantWriteError:
            self._loop.add_writer(self._fd, self._handshake)
            return
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake with %s failed: %s", self._peer, exc)
            self._abort(None)
            return
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_writer(self._fd)
        self._loop.add_reader(self._fd, self._read_ready)
        self._protocol = self._server.protocol_factory()
        self._protocol.connection_made(self)

    # -- reading --------------------------------------------------------------------------
    def _read_ready(self) -> None:
        chunks: list[bytes] = []
        buffer = self._server.read_buffer
        while True:
            try:
                size = self._sock.recv_into(buffer)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError, BlockingIOError):
                break
            except (ssl.SSLError, OSError) as exc:
                self._lost(exc)
                return
            if not size:
                if chunks:
                    self._deliver(chunks)
                self._lost(None)
                return
            chunks.append(bytes(buffer[:size]))
            if not self._sock.pending():
                break
        if chunks:
            self._deliver(chunks)

    def _deliver(self, chunks: list[bytes]) -> None:
        if self._protocol is not None and not self._closed:
            self._protocol.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    # -- writing --------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closing or not data:
            return
        if self._out:
            self._out.append(data)
            return
        try:
            sent = self._sock.send(data)
        except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
            sent = 0
        except (ssl.SSLError, OSError) as exc:
            self._lost(exc)
            return
        if sent < len(data):
            # OpenSSL wants the same bytes again on a retry: keep the chunk whole when nothing went.
            self._out.append(data if sent == 0 else data[sent:])
            self._writing = True
            self._loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        while self._out:
            chunk = self._out[0]
            try:
                sent = self._sock.send(chunk)
            except (ssl.SSLWantWriteError, ssl.SSLWantReadError, BlockingIOError):
                return
            except (ssl.SSLError, OSError) as exc:
                self._lost(exc)
                return
            if sent < len(chunk):
                self._out[0] = chunk[sent:]
                return
            self._out.popleft()
        self._writing = False
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._finish()

    # -- transport API used by the protocol ------------------------------------------------
    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "peername":
            return self._peer
        return default

    def close(self) -> None:
        """Close after the queued bytes are written."""
        if self._closing:
            return
        self._closing = True
        self._loop.remove_reader(self._fd)
        if not self._out:
            self._finish()
        else:
            self._loop.call_later(5.0, self._finish)

    def _abort(self, reason: str | None) -> None:
        if reason:
            log.info("closing connection from %s: %s", self._peer, reason)
        self._closing = True
        self._finish()

    def _lost(self, exc: Exception | None) -> None:
        self._closing = True
        self._out.clear()
        self._finish(exc)

    def _finish(self, exc: Exception | None = None) -> None:
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
        self._loop.remove_reader(self._fd)
        self._loop.remove_writer(self._fd)
        self._sock.close()
        self._server.forget(self)
        if self._protocol is not None:
            self._loop.call_soon(self._protocol.connection_lost, exc)


class TlsServer:
    """Accepts TLS connections on a listening socket (possibly inherited) for ``protocol_factory``."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: socket.socket,
        context: ssl.SSLContext,
        protocol_factory: Callable[[], StreamProtocol],
        handshake_timeout: float = 10.0,
    ) -> None:
        self.loop = loop
        self.context = context
        self.protocol_factory = protocol_factory
        self._sock = sock
        self._timeout = handshake_timeout
        self._transports: set[TlsTransport] = set()
        self._closed = False
        #: One reusable read buffer (a fresh 256 KB object per read would cost an mmap each).
        self.read_buffer = memoryview(bytearray(_READ_SIZE))

    @property
    def sockets(self) -> list[socket.socket]:
        return [] if self._closed else [self._sock]

    def start(self) -> None:
        self._sock.setblocking(False)
        self.loop.add_reader(self._sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(64):
            try:
                raw, peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("accept failed: %s", exc)
                return
            raw.setblocking(False)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            transport = TlsTransport(self, raw, peer)
            self._transports.add(transport)
            transport.start(self._timeout)

    def forget(self, transport: TlsTransport) -> None:
        self._transports.discard(transport)

    def close(self) -> None:
        """Stop accepting (closes this process's handle on the listening socket only)."""
        if self._closed:
            return
        self._closed = True
        self.loop.remove_reader(self._sock.fileno())
        self._sock.close()

    def close_all(self) -> None:
        for transport in list(self._transports):
            transport.close()
