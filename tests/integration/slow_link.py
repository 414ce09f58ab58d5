"""A loopback TCP proxy that carries bytes at a fixed rate, shared by all its connections.

Tests that must interrupt work "while it is under way" put it between a module and its
server, so the work takes long enough to be interrupted however fast the machine is.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from types import TracebackType


class SlowLink:
    """Forward ``127.0.0.1:<port>`` to ``target`` at about ``bytes_per_s`` in all, both ways."""

    def __init__(self, target: tuple[str, int], bytes_per_s: int) -> None:
        self._target = target
        self._seconds_per_byte = 1.0 / bytes_per_s
        self._pace = threading.Lock()
        self._next_free = time.monotonic()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._closed = threading.Event()
        self._accepting = threading.Thread(target=self._accept, name="slow-link", daemon=True)

    def __enter__(self) -> SlowLink:
        self._accepting.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._closed.set()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self._target, timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for source, sink in ((client, server), (server, client)):
                threading.Thread(target=self._carry, args=(source, sink), daemon=True).start()

    def _wait_turn(self, size: int) -> None:
        with self._pace:
            start = max(self._next_free, time.monotonic())
            self._next_free = start + size * self._seconds_per_byte
        delay = self._next_free - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _carry(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                chunk = source.recv(16_384)
                if not chunk:
                    break
                self._wait_turn(len(chunk))
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)
                end.close()
