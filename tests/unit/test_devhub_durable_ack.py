"""A sender's PUBACK leaves the hub only once its message is on file: at the moment the PUBACK
is handed to the sender's transport, another reader of the queue file (the hub restarted after
a crash) already finds the message, for a single publish and for a burst in one read."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devhub import mqtt, queuelog
from edgeloop.devhub.broker import Broker, HubIdentity
from edgeloop.devhub.connection import MqttConnection
from edgeloop.devhub.manifest import load_manifest
from edgeloop.devhub.store import Store, queue_path
from tests.integration.modules.manifests import manifest, route

DEVICE = "edgeloop-dev"


class _Socket:
    def setsockopt(self, *_args: Any) -> None:
        pass


class _Transport:
    """Records, for every PUBACK written, the message bodies the queue file held right then."""

    def __init__(self, queue_file: Path) -> None:
        self.queue_file = queue_file
        self.acked: list[tuple[int, list[bytes]]] = []
        self.published: list[mqtt.Packet] = []
        self._reader = mqtt.PacketReader(1 << 20)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"socket": _Socket(), "peername": ("127.0.0.1", 4242)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def write(self, data: bytes) -> None:
        for packet in self._reader.feed(data):
            if packet.kind == mqtt.PUBACK:
                live, _ = queuelog.read(self.queue_file)
                on_file = [message.body for message, _ in sorted(live.values(), key=lambda m: m[0].id)]
                self.acked.append((mqtt.decode_packet_id(packet.body), on_file))
            elif packet.kind == mqtt.PUBLISH:
                self.published.append(packet)


def _connect(broker: Broker, module: str, queue_file: Path) -> tuple[MqttConnection, _Transport]:
    conn = MqttConnection(broker, 1 << 20)
    transport = _Transport(queue_file)
    conn.transport = transport
    conn.module, conn.client_id = module, f"{DEVICE}/{module}"
    broker.attach(conn, clean_session=False)
    return conn, transport


def _publish(module: str, packet_id: int, body: bytes) -> bytes:
    topic = f"devices/{DEVICE}/modules/{module}/messages/events/%24.on=out&%24.mid={packet_id}"
    return mqtt.encode_publish(topic, body, qos=1, packet_id=packet_id)


@pytest.mark.parametrize("burst", [1, 5])
def test_the_puback_follows_the_write_of_the_message(tmp_path: Path, burst: int) -> None:
    doc = manifest(["a", "b"], {"ab": route("a", "b", "in")}, ttl_secs=60)
    db = tmp_path / "hub.db"

    async def main() -> None:
        store = Store(db)
        broker = Broker(identity=HubIdentity("h", DEVICE), manifest=load_manifest(doc), store=store)
        sender, out = _connect(broker, "a", queue_path(db))
        sender.data_received(b"".join(_publish("a", i, f"m{i}".encode()) for i in range(1, burst + 1)))
        await asyncio.sleep(0)
        expected = [f"m{i}".encode() for i in range(1, burst + 1)]
        assert [packet_id for packet_id, _ in out.acked] == list(range(1, burst + 1))
        for _, on_file in out.acked:
            assert on_file == expected  # every message of the read, in order, before any PUBACK
        # The receiver gets them in order and acknowledges them; the file then drops them.
        receiver, inbox = _connect(broker, "b", queue_path(db))
        broker.subscribe(receiver, [(f"devices/{DEVICE}/modules/b/inputs/#", 1)])
        broker.pump(receiver)
        broker.flush()
        bodies = [mqtt.decode_publish(p.flags, p.body).payload for p in inbox.published]
        assert bodies == expected
        for packet in inbox.published:
            packet_id = mqtt.decode_publish(packet.flags, packet.body).packet_id
            receiver.data_received(mqtt.encode_puback(packet_id or 0))
        broker.close()
        assert queuelog.read(queue_path(db))[0] == {}
        store.close()

    asyncio.run(main())
