"""The hub in-process with raw MQTT clients: bad input, authentication, sessions, queues, TTL."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import ssl
import struct
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devhub import mqtt, sas
from edgeloop.devhub.app import DevHub, HubSettings
from edgeloop.devhub.httpunix import request
from edgeloop.devhub.manifest import load_manifest
from tests.integration.modules.manifests import manifest, route

DEVICE = "edgeloop-dev"
HOST = "edgeloop-dev.azure-devices.net"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


_clients: list[RawClient] = []


class RawClient:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.packets = mqtt.PacketReader(1 << 20)
        self.pending: list[mqtt.Packet] = []

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def packet(self, timeout: float = 3.0) -> mqtt.Packet | None:
        """The next packet, or None when the server closed the connection."""
        while not self.pending:
            data = await asyncio.wait_for(self.reader.read(65536), timeout)
            if not data:
                return None
            self.pending.extend(self.packets.feed(data))
        return self.pending.pop(0)

    async def closed(self, timeout: float = 3.0) -> bool:
        while True:
            packet = await self.packet(timeout)
            if packet is None:
                return True

    def close(self) -> None:
        self.writer.close()

    async def aclose(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def connect(hub: DevHub) -> RawClient:
    context = ssl.create_default_context(cafile=str(hub.paths.certs / "ca.pem"))
    reader, writer = await asyncio.open_connection("127.0.0.1", hub.port, ssl=context)
    client = RawClient(reader, writer)
    _clients.append(client)
    return client


async def login(
    hub: DevHub, module: str, *, key: str | None = None, expiry: float | None = None
) -> RawClient:
    client = await connect(hub)
    real_key = ""
    if hub.broker is not None and module in hub.broker.manifest.modules:
        real_key, _ = hub.broker.credentials(module)
    key = key or real_key or sas.new_key()
    token = sas.make_token(key, sas.resource_uri(HOST, DEVICE, module), int(expiry or time.time() + 3600))
    await client.send(
        mqtt.encode_connect(f"{DEVICE}/{module}", f"{HOST}/{DEVICE}/{module}/?api-version=x", token)
    )
    return client


async def connack(client: RawClient) -> int:
    packet = await client.packet()
    assert packet is not None
    assert packet.kind == mqtt.CONNACK
    return packet.body[1]


def inputs(module: str) -> str:
    return f"devices/{DEVICE}/modules/{module}/inputs/#"


def events(module: str, props: str = "%24.on=out&%24.mid=m1") -> str:
    return f"devices/{DEVICE}/modules/{module}/messages/events/{props}"


def run_hub(
    tmp_path: Path,
    doc: dict[str, Any],
    body: Callable[[DevHub], Awaitable[None]],
    clock: Clock | None = None,
    https_port: int = 0,
) -> None:
    async def main() -> None:
        hub = DevHub(
            HubSettings(state_dir=tmp_path / "state", bind="127.0.0.1", port=0, https_port=https_port),
            load_manifest(doc),
            clock=clock or time.time,
        )
        await hub.start()
        try:
            await body(hub)
        finally:
            for client in _clients:
                await client.aclose()
            _clients.clear()
            await hub.stop()

    asyncio.run(main())


DOC = manifest(["a", "b"], {"ab": route("a", "b", "in")}, ttl_secs=60)


@pytest.mark.parametrize(
    ("garbage", "stat"),
    [
        (b"\xff\xff\xff\xff\xff\x01", "protocol_errors"),  # remaining length over 4 bytes
        (bytes([0x10]) + b"\xff\xff\xff\x7f", "protocol_errors"),  # 256 MB packet announced
        (mqtt.encode_publish("x", b"y"), "protocol_errors"),  # PUBLISH before CONNECT
        (bytes([0x10, 4, 0, 2]) + b"MQ", "protocol_errors"),  # truncated CONNECT
    ],
    ids=["bad-length", "oversize", "before-connect", "truncated-connect"],
)
def test_malformed_packets_close_that_connection_and_others_are_served(
    tmp_path: Path, garbage: bytes, stat: str
) -> None:
    async def body(hub: DevHub) -> None:
        # given
        good = await login(hub, "a")
        assert await connack(good) == 0
        bad = await connect(hub)

        # when
        await bad.send(garbage)

        # then
        assert await bad.closed()
        assert hub.broker is not None
        assert hub.broker.stats[stat] == 1
        await good.send(mqtt.encode_subscribe(1, [(inputs("a"), 1)]))
        suback = await good.packet()
        assert suback is not None
        assert suback.kind == mqtt.SUBACK

    run_hub(tmp_path, DOC, body)


@pytest.mark.parametrize(
    ("module", "key", "expiry"),
    [
        ("a", "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmc=", None),
        ("a", None, 1000.0),
        ("nosuch", None, None),
    ],
    ids=["wrong-key", "expired", "unknown-module"],
)
def test_bad_credentials_get_connack_5(
    tmp_path: Path, module: str, key: str | None, expiry: float | None
) -> None:
    async def body(hub: DevHub) -> None:
        # when
        client = await login(hub, module, key=key, expiry=expiry)

        # then
        assert await connack(client) == mqtt.REFUSED_NOT_AUTHORIZED
        assert await client.closed()
        assert hub.broker is not None
        assert hub.broker.stats["auth_failures"] == 1

    run_hub(tmp_path, DOC, body)


def test_subscriptions_outside_the_modules_topics_are_refused(tmp_path: Path) -> None:
    async def body(hub: DevHub) -> None:
        # given
        client = await login(hub, "a")
        await connack(client)

        # when
        await client.send(mqtt.encode_subscribe(7, [(inputs("a"), 1), (inputs("b"), 1), ("#", 0)]))

        # then
        suback = await client.packet()
        assert suback is not None
        assert suback.body == struct.pack("!H", 7) + bytes([1, 0x80, 0x80])

    run_hub(tmp_path, DOC, body)


def test_publishing_as_another_module_closes_the_connection(tmp_path: Path) -> None:
    async def body(hub: DevHub) -> None:
        # given
        client = await login(hub, "a")
        await connack(client)

        # when
        await client.send(mqtt.encode_publish(events("b"), b"{}", qos=1, packet_id=1))

        # then
        assert await client.closed()
        assert hub.broker is not None
        assert hub.broker.stats["refused_publishes"] == 1

    run_hub(tmp_path, DOC, body)


async def send_event(client: RawClient, packet_id: int, props: str, payload: bytes = b'{"x":1}') -> None:
    await client.send(mqtt.encode_publish(events("a", props), payload, qos=1, packet_id=packet_id))
    ack = await client.packet()
    assert ack is not None
    assert ack.kind == mqtt.PUBACK
    assert mqtt.decode_packet_id(ack.body) == packet_id


def test_queued_inputs_and_sessions_survive_a_hub_restart(tmp_path: Path) -> None:
    async def first(hub: DevHub) -> None:
        # given: b subscribed once, then went away; a sends while b is down
        b = await login(hub, "b")
        await connack(b)
        await b.send(mqtt.encode_subscribe(1, [(inputs("b"), 1)]))
        await b.packet()
        b.close()
        a = await login(hub, "a")
        await connack(a)
        await send_event(a, 1, "%24.on=out&%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&k=v%2Fw")

    async def second(hub: DevHub) -> None:
        # when: the hub restarted; b reconnects and does not subscribe again (as the SDK does)
        b = await login(hub, "b")
        session_present = await b.packet()
        publish_packet = await b.packet(timeout=5)

        # then
        assert session_present is not None
        assert session_present.body[0] == 1
        assert publish_packet is not None
        assert publish_packet.kind == mqtt.PUBLISH
        publish = mqtt.decode_publish(publish_packet.flags, publish_packet.body)
        topic, _, props = publish.topic.rpartition("/")
        assert topic == f"devices/{DEVICE}/modules/b/inputs/in"
        assert props.split("&") == [
            "%24.mid=m1", "%24.ct=application%2Fjson", "%24.ce=utf-8", "k=v%2Fw",
            "%24.cdid=edgeloop-dev", "%24.cmid=a",
        ]  # fmt: skip
        assert publish.qos == 1
        assert publish.payload == b'{"x":1}'
        await b.send(mqtt.encode_puback(publish.packet_id or 0))
        await asyncio.sleep(0.1)
        assert hub.broker is not None
        assert hub.broker.module_status()["b"]["queued"] == 0

    run_hub(tmp_path, DOC, first)
    run_hub(tmp_path, DOC, second)


def test_inputs_wait_for_the_subscription_of_a_new_session(tmp_path: Path) -> None:
    async def body(hub: DevHub) -> None:
        # given: a message queued for b, which never connected
        a = await login(hub, "a")
        await connack(a)
        await send_event(a, 1, "%24.on=out&%24.mid=m1")
        b = await login(hub, "b")
        await connack(b)

        # when: nothing until b subscribes
        with pytest.raises(TimeoutError):
            await b.packet(timeout=0.5)
        await b.send(mqtt.encode_subscribe(1, [(inputs("b"), 1)]))

        # then
        kinds = [(await b.packet()), (await b.packet())]
        assert [p.kind for p in kinds if p] == [mqtt.SUBACK, mqtt.PUBLISH]

    run_hub(tmp_path, DOC, body)


def test_messages_past_their_ttl_are_dropped(tmp_path: Path) -> None:
    clock = Clock()

    async def body(hub: DevHub) -> None:
        # given
        a = await login(hub, "a")
        await connack(a)
        await send_event(a, 1, "%24.on=out&%24.mid=m1")
        assert hub.broker is not None
        assert hub.broker.module_status()["b"]["queued"] == 1

        # when
        clock.now += 61
        dropped = hub.broker.expire()

        # then
        assert dropped == 1
        assert hub.broker.module_status()["b"]["queued"] == 0

    run_hub(tmp_path, DOC, body, clock)


def test_route_ttl_overrides_the_store_and_forward_ttl(tmp_path: Path) -> None:
    clock = Clock()
    doc = manifest(["a", "b"], {"ab": {"route": route("a", "b", "in"), "timeToLiveSecs": 600}}, ttl_secs=60)

    async def body(hub: DevHub) -> None:
        a = await login(hub, "a")
        await connack(a)
        await send_event(a, 1, "%24.on=out&%24.mid=m1")
        assert hub.broker is not None
        clock.now += 61
        assert hub.broker.expire() == 0
        clock.now += 600
        assert hub.broker.expire() == 1

    run_hub(tmp_path, doc, body, clock)


def test_workload_api_gives_the_trust_bundle_and_signs_for_the_current_generation(tmp_path: Path) -> None:
    async def body(hub: DevHub) -> None:
        assert hub.broker is not None
        key, generation = hub.broker.credentials("a")
        data = base64.b64encode(b"to sign").decode()
        sign = json.dumps({"keyId": "primary", "algo": "HMACSHA256", "data": data}).encode()
        socket_path = hub.paths.workload_socket

        def calls() -> list[tuple[int, Any]]:
            return [
                request(socket_path, "GET", "/trust-bundle?api-version=2019-01-30"),
                request(
                    socket_path, "POST", f"/modules/a/genid/{generation}/sign?api-version=2019-01-30", sign
                ),
                request(socket_path, "POST", "/modules/a/genid/stale/sign?api-version=2019-01-30", sign),
                request(socket_path, "POST", f"/modules/a/genid/{generation}/sign", b"{}"),
            ]

        # when
        bundle, signed, stale, bad = await asyncio.to_thread(calls)

        # then
        assert bundle == (200, {"certificate": (hub.paths.certs / "ca.pem").read_text()})
        assert signed == (200, {"digest": sas.sign(key, b"to sign")})
        assert stale[0] == 404
        assert bad[0] == 400

    run_hub(tmp_path, DOC, body)


def test_twins_persist_and_reseed_when_the_manifest_changes(tmp_path: Path) -> None:
    seeded = manifest(["a"], {}, desired={"a": {"x": 1}})
    changed = manifest(["a"], {}, desired={"a": {"x": 2}})
    seen: list[dict[str, Any]] = []

    async def patch(hub: DevHub) -> None:
        assert hub.broker is not None
        hub.broker.patch_desired("a", {"y": 3})

    async def read(hub: DevHub) -> None:
        assert hub.broker is not None
        seen.append(hub.broker.twin_document("a")["desired"])

    # when
    run_hub(tmp_path, seeded, patch)
    run_hub(tmp_path, seeded, read)
    run_hub(tmp_path, changed, read)

    # then
    assert seen == [{"x": 1, "y": 3, "$version": 2}, {"x": 2, "$version": 3}]


def test_unacknowledged_inputs_are_redelivered_with_dup_on_reconnect(tmp_path: Path) -> None:
    async def body(hub: DevHub) -> None:
        # given: b got the message and disconnected without acknowledging it
        b = await login(hub, "b")
        await connack(b)
        await b.send(mqtt.encode_subscribe(1, [(inputs("b"), 1)]))
        await b.packet()
        a = await login(hub, "a")
        await connack(a)
        await send_event(a, 1, "%24.on=out&%24.mid=m1")
        first = await b.packet()
        await b.aclose()

        # when
        again = await login(hub, "b")
        await connack(again)
        await again.send(mqtt.encode_subscribe(2, [(inputs("b"), 1)]))
        await again.packet()
        second = await again.packet()

        # then
        assert first is not None
        assert second is not None
        assert (first.kind, first.flags & 0x08) == (mqtt.PUBLISH, 0)
        assert (second.kind, second.flags & 0x08) == (mqtt.PUBLISH, 0x08)
        assert mqtt.decode_publish(second.flags, second.body).payload == b'{"x":1}'

    run_hub(tmp_path, DOC, body)


def test_a_taken_https_port_leaves_mqtt_working_and_says_why(tmp_path: Path) -> None:
    # given: something else listens on the port the hub wants for HTTPS
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        async def body(hub: DevHub) -> None:
            # when
            client = await login(hub, "a")

            # then
            assert await connack(client) == 0
            info = hub.info()
            assert info["httpsPort"] is None
            assert f"cannot listen on 127.0.0.1:{port}: the address is in use" in info["httpsProblem"]

        run_hub(tmp_path, DOC, body, https_port=port)
