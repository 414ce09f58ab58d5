"""A lean TLS server transport on the asyncio loop: OpenSSL over memory buffers, the plain
socket driven by ``add_reader``/``add_writer``.

asyncio's own TLS transport runs every record through a Python state machine; for the small
packets of MQTT that costs more than the hub's routing itself. Here each readable event is one
``recv`` into a reused buffer, fed to OpenSSL, which decrypts every complete record in it; each
write is encrypted and sent with one ``send``. (An ``ssl.SSLSocket`` reading the socket itself
costs two ``read`` system calls a record: its header, then its body.)
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol, cast

log = logging.getLogger(__name__)

#: Bytes read from a socket at once; also the plaintext buffer, larger than any TLS record
#: (16 KB), so a record is always decrypted whole.
_READ_SIZE = 256 * 1024
_RCVLOWAT = getattr(socket, "SO_RCVLOWAT", None)


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
        self._sock = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._ssl = server.context.wrap_bio(self._incoming, self._outgoing, server_side=True)
        self._fd = raw.fileno()
        self._protocol: StreamProtocol | None = None
        self._out: deque[bytes] = deque()  # encrypted, waiting for the socket to take it
        self._held: deque[bytes] = deque()  # plaintext, waiting for a renegotiation to finish
        self._closing = False
        self._closed = False
        self._timer: asyncio.TimerHandle | None = None
        self._low_water = 1  # SO_RCVLOWAT: bytes that must wait before a read wakes the loop

    # -- handshake ------------------------------------------------------------------------
    def start(self, timeout: float) -> None:
        self._timer = self._loop.call_later(timeout, self._abort, "TLS handshake timed out")
        self._loop.add_reader(self._fd, self._handshake_ready)
        self._handshake()

    def _handshake_ready(self) -> None:
        if self._fill():
            self._handshake()

    def _handshake(self) -> None:
        try:
            self._ssl.do_handshake()
        except ssl.SSLWantReadError:
            self._send_encrypted()
            return
        except (ssl.SSLError, OSError) as exc:
            log.info("TLS handshake with %s failed: %s", self._peer, exc)
            self._send_encrypted()
            self._abort(None)
            return
        if self._timer is not None:
            self._timer.cancel()
        self._send_encrypted()
        if self._closed:
            return
        self._loop.add_reader(self._fd, self._read_ready)
        self._protocol = self._server.protocol_factory()
        self._protocol.connection_made(self)
        if self._incoming.pending:  # the client's first packets came with its last handshake flight
            self._decrypt()

    # -- reading --------------------------------------------------------------------------
    def _fill(self) -> bool:
        """One ``recv`` into OpenSSL's input; False when nothing came (or the peer is gone)."""
        buffer = self._server.read_buffer
        try:
            size = self._sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError as exc:
            self._lost(exc)
            return False
        if not size:
            self._lost(None)
            return False
        self._incoming.write(buffer[:size])
        return True

    def _read_ready(self) -> None:
        if self._fill():
            self._decrypt()

    def _decrypt(self) -> None:
        """Decrypt every complete record received and hand the bytes to the protocol."""
        chunks: list[bytes] = []
        plain = self._server.plain_buffer
        incoming = self._incoming
        read = self._ssl.read
        while True:
            try:
                size = cast(int, read(_READ_SIZE, plain))  # into a buffer it returns a count
            except ssl.SSLWantReadError:  # the rest of a record is still on its way
                break
            except ssl.SSLError as exc:
                self._deliver(chunks)
                self._lost(exc)
                return
            if not size:  # the peer's close_notify
                self._deliver(chunks)
                self._lost(None)
                return
            chunks.append(bytes(plain[:size]))
            if not incoming.pending:
                break
        if self._held:
            self._write_held()
        elif self._outgoing.pending:  # OpenSSL may answer a record (a key update) itself
            self._send_encrypted()
        self._deliver(chunks)

    def _deliver(self, chunks: list[bytes]) -> None:
        if chunks and self._protocol is not None and not self._closed:
            self._protocol.data_received(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    # -- writing --------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        if self._closing or not data:
            return
        if self._held:  # keep the order of what waits for a handshake to finish
            self._held.append(data)
            return
        try:
            self._ssl.write(data)
        except ssl.SSLWantReadError:  # the client renegotiates (TLS 1.2): write when it is done
            self._held.append(data)
        except ssl.SSLError as exc:
            self._lost(exc)
            return
        self._send_encrypted()

    def _write_held(self) -> None:
        """Write what waited for a renegotiation, in order, as far as OpenSSL takes it now."""
        while self._held and not self._closing:
            try:
                self._ssl.write(self._held[0])
            except ssl.SSLWantReadError:
                break
            except ssl.SSLError as exc:
                self._lost(exc)
                return
            self._held.popleft()
        self._send_encrypted()

    def _send_encrypted(self) -> None:
        """Send what OpenSSL has encrypted: one ``send``; what the socket does not take waits
        for it to become writable."""
        data = self._outgoing.read()
        if not data or self._closed:
            return
        if self._out:
            self._out.append(data)
            return
        try:
            sent = self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError as exc:
            self._lost(exc)
            return
        if sent < len(data):
            self._out.append(data[sent:])
            self._loop.add_writer(self._fd, self._write_ready)

    def _write_ready(self) -> None:
        while self._out:
            chunk = self._out[0]
            try:
                sent = self._sock.send(chunk)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self._lost(exc)
                return
            if sent < len(chunk):
                self._out[0] = chunk[sent:]
                return
            self._out.popleft()
        self._loop.remove_writer(self._fd)
        if self._closing:
            self._finish()

    # -- transport API used by the protocol ------------------------------------------------
    def set_low_water(self, size: int) -> None:
        """Wake the loop for this connection only once ``size`` bytes wait to be read
        (``SO_RCVLOWAT``; an end of stream wakes it at once). ``read_now`` reads the rest."""
        if size != self._low_water and not self._closed and _RCVLOWAT is not None:
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, _RCVLOWAT, size)
            except OSError as exc:
                log.debug("SO_RCVLOWAT %d on %s: %s", size, self._peer, exc)
                return
            self._low_water = size

    def read_now(self) -> None:
        """Read what waits below the low-water mark (one ``recv``; nothing when none)."""
        if not self._closing and self._protocol is not None:
            self._read_ready()

    def is_closing(self) -> bool:
        return self._closing

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return self._sock
        if name == "peername":
            return self._peer
        if name == "ssl_object":
            return self._ssl
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
        #: Reusable buffers for what is read and what it decrypts to (a fresh 256 KB object per
        #: read would cost an mmap each).
        self.read_buffer = memoryview(bytearray(_READ_SIZE))
        self.plain_buffer = memoryview(bytearray(_READ_SIZE))

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
