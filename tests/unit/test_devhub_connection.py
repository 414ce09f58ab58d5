"""A module's MQTT connection on its own, with a stand-in broker and transport: a read that
nothing answers at once is acknowledged quickly (``TCP_QUICKACK``); a read answered in the same
pass (a PUBLISH by its PUBACK) has its ACK carried by the answer and costs no extra call."""

from __future__ import annotations

import socket
from collections import Counter
from typing import Any

import pytest

from edgeloop.devhub import mqtt
from edgeloop.devhub.connection import MqttConnection

pytestmark = pytest.mark.skipif(not hasattr(socket, "TCP_QUICKACK"), reason="Linux TCP_QUICKACK")


class _Socket:
    def __init__(self) -> None:
        self.quick_acks = 0

    def setsockopt(self, level: int, option: int, value: int) -> None:
        assert (level, option, value) == (socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
        self.quick_acks += 1


class _Transport:
    def __init__(self) -> None:
        self.sock = _Socket()
        self.written: list[bytes] = []

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"socket": self.sock, "peername": ("127.0.0.1", 4242)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        self.written.append(data)


class _Broker:
    """Acknowledges every QoS 1 publish at the end of the pass, as the hub does after its commit."""

    def __init__(self) -> None:
        self.stats: Counter[str] = Counter()
        self.pubacks: list[int] = []
        self._acks: list[tuple[MqttConnection, int]] = []
        self._writers: set[MqttConnection] = set()

    def begin_batch(self) -> None:
        pass

    def end_batch(self) -> None:
        for conn, packet_id in self._acks:
            conn.send_puback(packet_id)
        self._acks.clear()
        for writer in self._writers:
            writer.flush_out()
        self._writers.clear()

    def wants_write(self, conn: MqttConnection) -> None:
        self._writers.add(conn)

    def publish(self, conn: MqttConnection, packet: mqtt.Publish) -> None:
        self._acks.append((conn, packet.packet_id or 0))

    def puback(self, conn: MqttConnection, packet_id: int) -> None:
        self.pubacks.append(packet_id)

    @property
    def ack_reads(self) -> _Broker:
        return self  # reads and quick ACKs as the hub's AckReads does them without quiet receivers

    def read(self, woken: MqttConnection | None = None) -> None:
        pass

    def read_done(self, conn: MqttConnection, writes: int) -> None:
        if not conn.written_since(writes):
            conn.quick_ack()


def _connection() -> tuple[MqttConnection, _Transport, _Broker]:
    broker = _Broker()
    conn = MqttConnection(broker, 1 << 20)  # type: ignore[arg-type]
    transport = _Transport()
    conn.transport = transport
    conn._sock = transport.sock  # as connection_made finds it, without its CONNECT timer
    conn.module = "filter"
    return conn, transport, broker


def test_a_publish_answered_by_its_puback_needs_no_quick_ack() -> None:
    conn, transport, _broker = _connection()
    conn.data_received(mqtt.encode_publish("devices/d/modules/filter/messages/events/", b"{}", 1, 7, False))
    assert transport.written == [mqtt.encode_puback(7)]
    assert transport.sock.quick_acks == 0


def test_a_puback_nothing_answers_is_acknowledged_at_once() -> None:
    conn, transport, broker = _connection()
    conn.data_received(mqtt.encode_puback(3) + mqtt.encode_puback(4))
    assert broker.pubacks == [3, 4]
    assert transport.written == []
    assert transport.sock.quick_acks == 1
