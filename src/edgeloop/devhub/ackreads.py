"""Acknowledgements from quiet receivers, read without waking the hub for each one.

A quiet receiver (a sink, below) is a module that has acknowledged ``QUIET_AFTER_ACKS``
deliveries without publishing in between: all it sends is a PUBACK per delivery. While
deliveries to one are in flight its socket gets a low-water mark (``SO_RCVLOWAT``) one byte
above a PUBACK's TLS record, so a lone PUBACK does not wake the loop; anything larger (any
PUBLISH, two PUBACKs) or an end of stream still does. What waits is read whenever the loop
wakes for another connection, before that connection's packets (one ``recv`` a sink), or by a
tick ``ACK_WAIT_SECS`` after the last such wake-up; once a sink has nothing in flight at a
tick, or publishes, every packet of it wakes the loop again.

With one sender and one receiver that halves the hub's wake-ups a routed message: the
receiver's PUBACK is read when the sender's next PUBLISH arrives.

Quick ACKs: a read that nothing is written back for is acknowledged at once (``TCP_QUICKACK``;
paho sets no ``TCP_NODELAY``, so the module's next packet would wait for Linux's delayed ACK).
The decision waits for the end of the wake-up: the PUBLISH the woken connection's packets route
to a sink carries the ACK of the sink's PUBACK read just before.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edgeloop.devhub.connection import MqttConnection

#: One more byte than a PUBACK in a TLS 1.2 AES-GCM record (5 header + 8 nonce + 4 + 16 tag,
#: what the SDK sends): a lone PUBACK (or PINGREQ) stays below it, any PUBLISH is above.
ACK_LOW_WATER = 34
#: The longest a sink's lone PUBACK (or PINGREQ) waits to be read when nothing else wakes the
#: loop; also the longest the sink's own next packet waits on it (its TCP holds a small packet
#: until what it sent before is acknowledged).
ACK_WAIT_SECS = 0.005
#: A connection is a quiet receiver (a sink) once it has acknowledged this many deliveries
#: without a PUBLISH in between (a module that publishes about once every few inputs is not).
QUIET_AFTER_ACKS = 32


class AckReads:
    """The sinks with deliveries in flight, and the reads nothing was written back for yet."""

    def __init__(self) -> None:
        self.awaiting: set[MqttConnection] = set()
        self._reading = False
        self._unanswered: list[tuple[MqttConnection, int]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def written(self, conn: MqttConnection) -> None:
        """``conn`` was written to: a sink with deliveries in flight gets its low-water mark."""
        if (
            conn in self.awaiting
            or not conn.inflight
            or conn.closed
            or conn.acks_since_publish < QUIET_AFTER_ACKS
        ):
            return
        set_low_water = getattr(conn.transport, "set_low_water", None)
        if set_low_water is None:  # MQTT over WebSockets: every read wakes the loop
            return
        self.awaiting.add(conn)
        set_low_water(ACK_LOW_WATER)
        if self._timer is None:
            self._arm()

    def _arm(self) -> None:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._timer = self._loop.call_later(ACK_WAIT_SECS, self._tick)

    def published(self, conn: MqttConnection) -> None:
        """``conn`` sent a PUBLISH: no sink; every packet of it wakes the loop again."""
        if conn in self.awaiting:
            self._release(conn)

    def forget(self, conn: MqttConnection) -> None:
        self.awaiting.discard(conn)

    def _release(self, conn: MqttConnection) -> None:
        self.awaiting.discard(conn)
        if not conn.closed:
            conn.transport.set_low_water(1)

    def read(self, woken: MqttConnection | None = None) -> None:
        """Read what the sinks hold below their mark (one ``recv`` each; ``woken`` reads its own).
        The tick moves on: while other connections wake the loop, it does not fire."""
        if self._reading or not self.awaiting:
            return
        self._reading = True
        try:
            for conn in list(self.awaiting):
                if conn.closed:
                    self.awaiting.discard(conn)
                elif conn is not woken:
                    conn.transport.read_now()
        finally:
            self._reading = False
        if woken is not None and self._timer is not None:
            self._timer.cancel()
            self._arm()

    def read_done(self, conn: MqttConnection, writes: int) -> None:
        """A read of ``conn`` was handled (``writes``: its write count before): quick ACK it at
        the end of this wake-up unless a write went back to it by then."""
        self._unanswered.append((conn, writes))
        if not self._reading:
            self._quick_acks()

    def _quick_acks(self) -> None:
        unanswered, self._unanswered = self._unanswered, []
        for conn, writes in unanswered:
            if not conn.written_since(writes):
                conn.quick_ack()

    def _tick(self) -> None:
        self._timer = None
        self.read()
        self._quick_acks()
        for conn in list(self.awaiting):
            if not conn.inflight:
                self._release(conn)
        if self.awaiting:
            self._arm()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
