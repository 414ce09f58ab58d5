"""The hub's TLS transport against a real TLS client: records split over reads and many records
in one read reach the protocol whole and in order, writes larger than the socket takes at once
get through, a peer's close is seen, and a client that does not speak TLS is dropped while
others are served."""

from __future__ import annotations

import asyncio
import hashlib
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devhub.certs import ensure_certificates, server_context
from edgeloop.devhub.tls import TlsServer


class Recorder:
    """A protocol that keeps what it gets and answers ``send N\\n`` with N bytes."""

    def __init__(self, events: list[Recorder]) -> None:
        self.transport: Any = None
        self.data = bytearray()
        self.lost: asyncio.Future[Exception | None] = asyncio.get_running_loop().create_future()
        events.append(self)

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.data += data
        if self.data.endswith(b"\n") and self.data.startswith(b"send "):
            size = int(self.data[5:-1])
            self.data.clear()
            self.transport.write(pattern(size))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.lost.done():
            self.lost.set_result(exc)


def pattern(size: int) -> bytes:
    block = hashlib.sha256(str(size).encode()).digest() * 64
    return (block * (size // len(block) + 1))[:size]


async def serve(tmp_path: Path) -> tuple[TlsServer, int, ssl.SSLContext, list[Recorder]]:
    certs = ensure_certificates(tmp_path / "certs", "127.0.0.1")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    protocols: list[Recorder] = []
    server = TlsServer(asyncio.get_running_loop(), sock, server_context(certs), lambda: Recorder(protocols))
    server.start()
    client = ssl.create_default_context(cafile=str(certs.ca_cert))
    return server, sock.getsockname()[1], client, protocols


async def until(condition: Any, timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_many_records_and_split_records_reach_the_protocol_whole_and_in_order(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, port, client, protocols = await serve(tmp_path)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        # given many small records written at once, then one payload of many records
        small = [f"packet {i};".encode() for i in range(500)]
        for chunk in small:
            writer.write(chunk)
        big = pattern(3 * 1024 * 1024 + 17)

        # when they are sent
        writer.write(big)
        await writer.drain()
        expected = b"".join(small) + big
        await until(lambda: protocols and len(protocols[0].data) >= len(expected))

        # then the protocol has every byte in order
        assert bytes(protocols[0].data) == expected
        writer.close()
        server.close_all()
        server.close()

    asyncio.run(scenario())


def test_a_write_larger_than_the_socket_takes_gets_through_to_a_slow_reader(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, port, client, protocols = await serve(tmp_path)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client, limit=2**16)
        size = 8 * 1024 * 1024

        # given a client that asks for 8 MB and reads it slowly
        writer.write(f"send {size}\n".encode())
        await writer.drain()
        await until(lambda: bool(protocols))
        await asyncio.sleep(0.2)  # the server's socket buffer fills meanwhile
        received = bytearray()

        # when it reads
        while len(received) < size:
            received += await asyncio.wait_for(reader.read(2**16), 10)

        # then it got all of it, intact
        assert bytes(received) == pattern(size)
        writer.close()
        server.close_all()
        server.close()

    asyncio.run(scenario())


def test_a_peer_that_closes_is_seen_as_lost(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, port, client, protocols = await serve(tmp_path)
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.write(b"hello")
        await writer.drain()
        await until(lambda: protocols and bytes(protocols[0].data) == b"hello")

        # when the client goes away
        writer.close()

        # then the protocol hears of it
        assert await asyncio.wait_for(protocols[0].lost, 10) is None
        await until(lambda: not server._transports)
        server.close()

    asyncio.run(scenario())


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_a_client_that_does_not_speak_tls_is_dropped_and_others_are_served(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, port, client, protocols = await serve(tmp_path)
        # given a client that sends plain text instead of a TLS hello
        raw_reader, raw_writer = await asyncio.open_connection("127.0.0.1", port)
        raw_writer.write(b"GET / HTTP/1.1\r\n\r\n")
        await raw_writer.drain()

        # then the hub closes it without a protocol ever being made
        assert await asyncio.wait_for(raw_reader.read(), 10) is not None
        assert protocols == []

        # and a TLS client is served next
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.write(b"still here")
        await writer.drain()
        await until(lambda: protocols and bytes(protocols[0].data) == b"still here")
        raw_writer.close()
        writer.close()
        server.close_all()
        server.close()

    asyncio.run(scenario())


class _Renegotiating:
    """The server's TLS object as during a client's renegotiation: writes wait for a read."""

    def __init__(self, real: ssl.SSLObject) -> None:
        self.real = real
        self.blocked = True

    def write(self, data: bytes) -> int:
        if self.blocked:
            raise ssl.SSLWantReadError("renegotiating")
        return self.real.write(data)

    def read(self, size: int, buffer: Any) -> int:
        self.blocked = False  # the handshake record came in and finished it
        return self.real.read(size, buffer)


def test_writes_during_a_renegotiation_go_out_in_order_once_it_is_done(tmp_path: Path) -> None:
    async def scenario() -> None:
        server, port, client, protocols = await serve(tmp_path)
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        writer.write(b"hi")
        await writer.drain()
        await until(lambda: protocols and bytes(protocols[0].data) == b"hi")
        transport = protocols[0].transport
        transport._ssl = _Renegotiating(transport._ssl)

        # given writes that OpenSSL cannot take while the client renegotiates
        transport.write(b"one,")
        transport.write(b"two,")
        assert not transport.is_closing()

        # when the client's next record arrives and the renegotiation is over
        writer.write(b"more")
        await writer.drain()
        transport.write(b"three")

        # then everything reaches the client in the order written
        received = b""
        while len(received) < len(b"one,two,three"):
            received += await asyncio.wait_for(reader.read(100), 10)
        assert received == b"one,two,three"
        writer.close()
        server.close_all()
        server.close()

    asyncio.run(scenario())


def test_a_low_water_mark_holds_back_a_lone_acknowledgement_until_read_now(tmp_path: Path) -> None:
    """With the hub's mark, one PUBACK in a TLS 1.2 record (what the SDK sends) does not wake the
    loop; ``read_now`` reads it; anything larger (a PUBLISH) wakes it at once."""

    async def scenario() -> None:
        from edgeloop.devhub import ackreads, mqtt

        server, port, client, protocols = await serve(tmp_path)
        client.maximum_version = ssl.TLSVersion.TLSv1_2  # as the SDK
        _reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client)
        await until(lambda: protocols and protocols[0].transport is not None)
        protocols[0].transport.set_low_water(ackreads.ACK_LOW_WATER)

        writer.write(mqtt.encode_puback(7))
        await writer.drain()
        await asyncio.sleep(0.2)
        assert protocols[0].data == b""  # the loop was not woken for it
        protocols[0].transport.read_now()
        assert protocols[0].data == mqtt.encode_puback(7)

        publish = mqtt.encode_publish("devices/d/modules/m/messages/events/", b"{}", 1, 8)
        writer.write(publish)
        await writer.drain()
        await until(lambda: protocols[0].data.endswith(publish), timeout=1.0)

        protocols[0].transport.set_low_water(1)
        writer.write(mqtt.encode_puback(9))
        await writer.drain()
        await until(lambda: protocols[0].data.endswith(mqtt.encode_puback(9)), timeout=1.0)
        writer.close()
        server.close_all()
        server.close()

    asyncio.run(scenario())
