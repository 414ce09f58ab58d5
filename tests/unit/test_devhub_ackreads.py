"""Quiet receivers, sinks (modules that acknowledge deliveries and publish nothing): while
deliveries to one are in flight, its lone PUBACKs do not wake the hub (a low-water mark on its socket);
they are read whenever the hub wakes for another connection, before its packets, or by a tick
at most ``ACK_WAIT_SECS`` later, and quick-ACKed only when nothing written carried the ACK.
A module that publishes is read at once again."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from edgeloop.devhub import ackreads, mqtt
from edgeloop.devhub.broker import Broker, HubIdentity
from edgeloop.devhub.connection import MqttConnection
from edgeloop.devhub.manifest import load_manifest
from edgeloop.devhub.store import Store
from tests.integration.modules.manifests import manifest, route

DEVICE = "edgeloop-dev"


class _Socket:
    def __init__(self) -> None:
        self.quick_acks = 0

    def setsockopt(self, *_args: Any) -> None:
        self.quick_acks += 1


class _Transport:
    """Keeps what the peer sent below the low-water mark until ``read_now``."""

    def __init__(self) -> None:
        self.conn: MqttConnection | None = None
        self.sock = _Socket()
        self.low_water: list[int] = []
        self.held: list[bytes] = []
        self.reads_now = 0
        self.published: list[mqtt.Publish] = []
        self._reader = mqtt.PacketReader(1 << 20)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"socket": self.sock, "peername": ("127.0.0.1", 4242)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        for packet in self._reader.feed(data):
            if packet.kind == mqtt.PUBLISH:
                self.published.append(mqtt.decode_publish(packet.flags, packet.body))

    def set_low_water(self, size: int) -> None:
        self.low_water.append(size)

    def read_now(self) -> None:
        self.reads_now += 1
        if self.held and self.conn is not None:
            data = b"".join(self.held)
            self.held.clear()
            self.conn.data_received(data)

    def ack_all(self) -> None:
        """The module acknowledges everything delivered; the bytes wait below the mark."""
        self.held.extend(mqtt.encode_puback(p.packet_id or 0) for p in self.published)
        self.published.clear()


def _connect(broker: Broker, module: str) -> tuple[MqttConnection, _Transport]:
    conn = MqttConnection(broker, 1 << 20)
    transport = _Transport()
    transport.conn = conn
    conn.transport = transport
    conn._sock = transport.sock  # as connection_made finds it
    conn.module, conn.client_id = module, f"{DEVICE}/{module}"
    broker.attach(conn, clean_session=False)
    broker.subscribe(conn, [(f"devices/{DEVICE}/modules/{module}/inputs/#", 1)])
    return conn, transport


def _publish(module: str, packet_id: int) -> bytes:
    topic = f"devices/{DEVICE}/modules/{module}/messages/events/%24.on=out&%24.mid={packet_id}"
    return mqtt.encode_publish(topic, f"m{packet_id}".encode(), qos=1, packet_id=packet_id)


def _hub(tmp_path: Path) -> Broker:
    doc = manifest(["a", "b"], {"ab": route("a", "b", "in"), "ba": route("b", "a", "in")}, ttl_secs=60)
    return Broker(
        identity=HubIdentity("h", DEVICE), manifest=load_manifest(doc), store=Store(tmp_path / "hub.db")
    )


def test_a_sinks_acknowledgements_are_read_when_the_hub_wakes_for_the_sender(tmp_path: Path) -> None:
    async def main() -> None:
        broker = _hub(tmp_path)
        sender, _ = _connect(broker, "a")
        sink, sink_io = _connect(broker, "b")
        sink.acks_since_publish = ackreads.QUIET_AFTER_ACKS  # acknowledged that many, published nothing
        sender.data_received(_publish("a", 1))
        assert sink_io.low_water == [ackreads.ACK_LOW_WATER]  # its PUBACK will not wake us
        assert [p.payload for p in sink_io.published] == [b"m1"]
        sink_io.ack_all()
        # the sender's next message wakes the hub; the sink's acknowledgement is read with it
        sender.data_received(_publish("a", 2))
        assert sink_io.reads_now == 1
        assert not sink_io.held
        assert [m.body for m in broker.queues["b"].values()] == [b"m2"]  # m1 acknowledged
        assert [p.payload for p in sink_io.published] == [b"m2"]
        assert sink_io.low_water == [ackreads.ACK_LOW_WATER]  # no call a message
        assert sink_io.sock.quick_acks == 0  # the write of m2 carried the ACK of what was read
        # nothing else wakes the hub: the tick reads it, then the sink wakes the loop again
        sink_io.ack_all()
        await asyncio.sleep(3 * ackreads.ACK_WAIT_SECS)
        assert not broker.queues["b"]
        assert not sink.inflight
        assert sink_io.sock.quick_acks == 1  # nothing went back for this read
        assert sink_io.low_water == [ackreads.ACK_LOW_WATER, 1]
        broker.close()

    asyncio.run(main())


def test_a_module_that_publishes_is_no_sink(tmp_path: Path) -> None:
    async def main() -> None:
        broker = _hub(tmp_path)
        sender, _ = _connect(broker, "a")
        echo, echo_io = _connect(broker, "b")

        def acknowledge() -> None:  # the module's PUBACKs arrive with enough bytes to wake us
            echo_io.ack_all()
            data = b"".join(echo_io.held)
            echo_io.held.clear()
            echo.data_received(data)

        sender.data_received(_publish("a", 1))
        assert echo_io.low_water == []  # it has acknowledged nothing yet
        echo.acks_since_publish = ackreads.QUIET_AFTER_ACKS - 1
        acknowledge()  # the last acknowledgement it needs, with no PUBLISH in between
        sender.data_received(_publish("a", 2))
        assert echo_io.low_water == [ackreads.ACK_LOW_WATER]
        echo.data_received(_publish("b", 1))  # it answers: every packet of it wakes us again
        assert echo_io.low_water == [ackreads.ACK_LOW_WATER, 1]
        acknowledge()
        sender.data_received(_publish("a", 3))
        assert echo_io.low_water == [ackreads.ACK_LOW_WATER, 1]  # one acknowledgement is not quiet
        broker.close()

    asyncio.run(main())
