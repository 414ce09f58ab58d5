"""One module's MQTT connection (asyncio protocol over TLS).

Bad input never takes the hub down: a malformed, oversize or out-of-place packet closes this
connection with a logged reason. ``TCP_QUICKACK`` is set after every read that nothing was
written back for (paho never sets ``TCP_NODELAY``; without quick ACKs each hop stalls on Linux
delayed ACKs; a read answered at once, as a PUBLISH by its PUBACK, has its ACK carried by the
answer).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections import deque
from typing import Any

from edgeloop.devhub import mqtt
from edgeloop.devhub.broker import Broker, ModuleTopics

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_SECS = 10.0
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)


class MqttConnection:
    def __init__(self, broker: Broker, max_packet_bytes: int) -> None:
        self.broker = broker
        self.reader = mqtt.PacketReader(max_packet_bytes)
        self.transport: Any = None
        self.peer = "?"
        self.module = ""
        self.client_id = ""
        self.keepalive = 0
        self.last_seen = time.monotonic()
        self.acks_since_publish = 0  # PUBACKs it sent since its last PUBLISH
        self.subscriptions: dict[str, int] = {}
        self.topics = ModuleTopics("", "", "")
        self.inputs_ready = False
        self.inflight: dict[int, int] = {}
        self.to_send: deque[int] = deque()
        self.closed = False
        self._sock: Any = None
        self._next_packet_id = 0
        self._out: list[bytes] = []
        self._writes = 0  # TLS writes so far (a read answered by none needs a quick ACK)
        self._connect_timer: asyncio.TimerHandle | None = None

    # -- stream protocol ------------------------------------------------------------------
    def connection_made(self, transport: Any) -> None:
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = f"{peer[0]}:{peer[1]}" if peer else "?"
        self._sock = transport.get_extra_info("socket")
        self._connect_timer = asyncio.get_running_loop().call_later(
            _CONNECT_TIMEOUT_SECS, self.close, "no CONNECT within 10 s"
        )

    def data_received(self, data: bytes) -> None:
        self.broker.ack_reads.read(self)  # what sinks sent meanwhile, below their low-water mark
        self.last_seen = time.monotonic()
        writes = self._writes
        self.broker.begin_batch()
        try:
            for packet in self.reader.feed(data):
                if self.closed:
                    break
                self._handle(packet)
        except mqtt.ProtocolError as exc:
            self.broker.stats["protocol_errors"] += 1
            self.close(f"protocol error: {exc}")
        finally:
            self.broker.end_batch()  # writes what these packets asked for, before returning
        self.broker.ack_reads.read_done(self, writes)  # a quick ACK unless something went back

    def written_since(self, writes: int) -> bool:
        """Whether a write went out since ``_writes`` was ``writes`` (it carried the ACK)."""
        return self._writes != writes

    def quick_ack(self) -> None:
        """Acknowledge what was read now rather than after the delayed-ACK timer: needed only
        when nothing went back to the peer after the read (a write carries the ACK itself)."""
        if _QUICKACK is not None and self._sock is not None and not self.closed:
            try:
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)
            except OSError:
                self._sock = None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed:
            self.closed = True
            if self.module:
                log.info("module %s disconnected (%s)", self.module, exc or "connection closed")
        if self._connect_timer is not None:
            self._connect_timer.cancel()
        if self.module:
            self.broker.detach(self)

    # -- packets --------------------------------------------------------------------------
    def _handle(self, packet: mqtt.Packet) -> None:
        kind = packet.kind
        if not self.module and kind != mqtt.CONNECT:
            raise mqtt.ProtocolError(f"packet type {kind} before CONNECT")
        if kind == mqtt.PUBLISH:
            publish = mqtt.decode_publish(packet.flags, packet.body)
            reason = self.broker.publish(self, publish)
            if reason:
                self.broker.stats["refused_publishes"] += 1
                self.close(reason)
        elif kind == mqtt.PUBACK:
            self.broker.puback(self, mqtt.decode_packet_id(packet.body))
        elif kind == mqtt.PINGREQ:
            self.write(mqtt.encode_pingresp())
        elif kind == mqtt.SUBSCRIBE:
            packet_id, filters = mqtt.decode_subscribe(packet.body)
            codes = self.broker.subscribe(self, filters)
            self.write(mqtt.encode_suback(packet_id, codes))
            self.broker.pump(self)
        elif kind == mqtt.UNSUBSCRIBE:
            packet_id, topics = mqtt.decode_unsubscribe(packet.body)
            self.broker.unsubscribe(self, topics)
            self.write(mqtt.encode_unsuback(packet_id))
        elif kind == mqtt.DISCONNECT:
            self.close("client disconnected")
        elif kind == mqtt.CONNECT:
            self._connect(packet)
        else:
            raise mqtt.ProtocolError(f"unexpected packet type {kind}")

    def _connect(self, packet: mqtt.Packet) -> None:
        if self.module:
            raise mqtt.ProtocolError("second CONNECT on one connection")
        if self._connect_timer is not None:
            self._connect_timer.cancel()
        connect = mqtt.decode_connect(packet.body)
        code, module, reason = self.broker.authenticate(connect)
        if code:
            self.broker.stats["auth_failures"] += 1
            log.warning("refused connection from %s as %r: %s", self.peer, connect.client_id, reason)
            self.write(mqtt.encode_connack(code))
            self.close(f"refused: {reason}", quiet=True)
            return
        self.module = module
        self.client_id = connect.client_id
        self.keepalive = connect.keepalive
        resumed = self.broker.attach(self, connect.clean_session)
        self.write(mqtt.encode_connack(mqtt.ACCEPTED, session_present=resumed and not connect.clean_session))
        log.info(
            "module %s connected from %s (session %s)", module, self.peer, "resumed" if resumed else "new"
        )

    # -- output ---------------------------------------------------------------------------
    def write(self, data: bytes) -> None:
        """Queue bytes; everything written in one loop pass goes out as one TLS write."""
        if self.closed:
            return
        self._out.append(data)
        self.broker.wants_write(self)

    def flush_out(self) -> None:
        if self._out and self.transport is not None and not self.transport.is_closing():
            self.transport.write(self._out[0] if len(self._out) == 1 else b"".join(self._out))
            self._writes += 1
        self._out.clear()

    def send_puback(self, packet_id: int) -> None:
        self.write(mqtt.encode_puback(packet_id))

    def send_publish(self, topic: str, payload: bytes, qos: int = 0, dup: bool = False) -> int:
        packet_id = 0
        if qos:
            packet_id = self._packet_id()
        self.write(mqtt.encode_publish(topic, payload, qos, packet_id, dup))
        return packet_id

    def _packet_id(self) -> int:
        for _ in range(65535):
            self._next_packet_id = self._next_packet_id % 65535 + 1
            if self._next_packet_id not in self.inflight:
                return self._next_packet_id
        raise RuntimeError("no free MQTT packet id")

    def close(self, reason: str, quiet: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if not quiet:
            log.info(
                "closing connection of %s (%s): %s",
                self.module or "unauthenticated client",
                self.peer,
                reason,
            )
        self.flush_out()
        if self.transport is not None:
            self.transport.close()
        if self.module:
            self.broker.detach(self)

    def expired(self, now: float) -> bool:
        """Keepalive missed by half again (MQTT 3.1.1, 3.1.2.10)."""
        return bool(self.keepalive) and now - self.last_seen > 1.5 * self.keepalive
