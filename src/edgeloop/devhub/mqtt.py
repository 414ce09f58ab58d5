"""MQTT 3.1.1 packets: the subset the Azure IoT device SDK sends and expects.

``PacketReader`` splits a byte stream into packets and refuses oversize or malformed ones;
the ``decode_*`` functions read packet bodies and the ``encode_*`` functions build packets.
QoS 2 and retained messages are not part of the edgeHub protocol and are refused.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from edgeloop.errors import EdgeLoopError

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14

# CONNACK return codes.
ACCEPTED = 0
REFUSED_PROTOCOL = 1
REFUSED_IDENTIFIER = 2
REFUSED_UNAVAILABLE = 3
REFUSED_BAD_CREDENTIALS = 4
REFUSED_NOT_AUTHORIZED = 5

SUBACK_FAILURE = 0x80


class ProtocolError(EdgeLoopError):
    """A client sent bytes that are not a valid MQTT 3.1.1 packet (or one over the size limit)."""


@dataclass(slots=True)
class Connect:
    client_id: str
    username: str | None
    password: str | None
    keepalive: int
    clean_session: bool
    has_will: bool


@dataclass(slots=True)
class Publish:
    topic: str
    payload: bytes
    qos: int
    packet_id: int | None
    dup: bool = False
    retain: bool = False


@dataclass(slots=True)
class Packet:
    kind: int
    flags: int
    body: bytes


class PacketReader:
    """Accumulates bytes and yields complete packets."""

    def __init__(self, max_packet_bytes: int) -> None:
        self._buf = bytearray()
        self._max = max_packet_bytes

    def feed(self, data: bytes) -> list[Packet]:
        """Add ``data``; return the packets it completes.

        Raises:
            ProtocolError: a remaining-length field is malformed or over the size limit.
        """
        buf: bytes | bytearray
        if self._buf:
            self._buf += data
            buf = self._buf
        else:
            buf = data  # the usual case: parse the read as it is, keep only a partial tail
        packets: list[Packet] = []
        pos = 0
        end = len(buf)
        while end - pos >= 2:
            length = 0
            multiplier = 1
            index = pos + 1
            while True:
                if index >= end:
                    self._keep(buf, pos)
                    return packets
                byte = buf[index]
                length += (byte & 0x7F) * multiplier
                index += 1
                if not byte & 0x80:
                    break
                multiplier *= 128
                if multiplier > 128**3:
                    raise ProtocolError("malformed remaining length (more than 4 bytes)")
            if length > self._max:
                raise ProtocolError(f"packet of {length} bytes is over the {self._max}-byte limit")
            if end - index < length:
                break
            first = buf[pos]
            packets.append(Packet(first >> 4, first & 0x0F, bytes(buf[index : index + length])))
            pos = index + length
        self._keep(buf, pos)
        return packets

    def _keep(self, buf: bytes | bytearray, pos: int) -> None:
        """Keep the unparsed tail ``buf[pos:]`` for the next read."""
        if buf is self._buf:
            if pos:
                del self._buf[:pos]
        elif pos < len(buf):
            self._buf = bytearray(buf[pos:])


def _string(body: bytes, pos: int) -> tuple[str, int]:
    raw, pos = _binary(body, pos)
    try:
        return raw.decode("utf-8"), pos
    except UnicodeDecodeError as exc:
        raise ProtocolError("string field is not UTF-8") from exc


def _binary(body: bytes, pos: int) -> tuple[bytes, int]:
    if pos + 2 > len(body):
        raise ProtocolError("truncated length field")
    (length,) = struct.unpack_from("!H", body, pos)
    pos += 2
    if pos + length > len(body):
        raise ProtocolError("truncated string field")
    return body[pos : pos + length], pos + length


def decode_connect(body: bytes) -> Connect:
    protocol, pos = _string(body, 0)
    if protocol != "MQTT" or pos + 4 > len(body):
        raise ProtocolError(f"unsupported protocol name {protocol!r}")
    level, flags = body[pos], body[pos + 1]
    if level != 4:
        raise ProtocolError(f"unsupported protocol level {level} (MQTT 3.1.1 is 4)")
    (keepalive,) = struct.unpack_from("!H", body, pos + 2)
    pos += 4
    client_id, pos = _string(body, pos)
    has_will = bool(flags & 0x04)
    if has_will:
        _, pos = _string(body, pos)
        _, pos = _binary(body, pos)
    username = password = None
    if flags & 0x80:
        username, pos = _string(body, pos)
    if flags & 0x40:
        raw, pos = _binary(body, pos)
        password = raw.decode("utf-8", errors="replace")
    return Connect(client_id, username, password, keepalive, bool(flags & 0x02), has_will)


def decode_publish(flags: int, body: bytes) -> Publish:
    qos = (flags >> 1) & 0x03
    if qos > 1:
        raise ProtocolError(f"QoS {qos} is not supported (edgeHub speaks QoS 0 and 1)")
    topic, pos = _string(body, 0)
    packet_id = None
    if qos:
        if pos + 2 > len(body):
            raise ProtocolError("truncated packet id")
        (packet_id,) = struct.unpack_from("!H", body, pos)
        pos += 2
    return Publish(topic, body[pos:], qos, packet_id, bool(flags & 0x08), bool(flags & 0x01))


def decode_packet_id(body: bytes) -> int:
    if len(body) != 2:
        raise ProtocolError("acknowledgement must hold exactly a packet id")
    return int(struct.unpack("!H", body)[0])


def decode_subscribe(body: bytes) -> tuple[int, list[tuple[str, int]]]:
    if len(body) < 2:
        raise ProtocolError("truncated SUBSCRIBE")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    pos = 2
    filters = []
    while pos < len(body):
        topic, pos = _string(body, pos)
        if pos >= len(body):
            raise ProtocolError("SUBSCRIBE filter without QoS byte")
        filters.append((topic, body[pos] & 0x03))
        pos += 1
    if not filters:
        raise ProtocolError("SUBSCRIBE without topic filters")
    return packet_id, filters


def decode_unsubscribe(body: bytes) -> tuple[int, list[str]]:
    if len(body) < 2:
        raise ProtocolError("truncated UNSUBSCRIBE")
    (packet_id,) = struct.unpack_from("!H", body, 0)
    pos = 2
    topics = []
    while pos < len(body):
        topic, pos = _string(body, pos)
        topics.append(topic)
    return packet_id, topics


def _length(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def encode_connack(return_code: int, session_present: bool = False) -> bytes:
    return bytes([CONNACK << 4, 2, 1 if session_present and return_code == 0 else 0, return_code])


def encode_publish(topic: str, payload: bytes, qos: int = 0, packet_id: int = 0, dup: bool = False) -> bytes:
    raw_topic = topic.encode("utf-8")
    flags = (qos << 1) | (0x08 if dup else 0)
    size = 2 + len(raw_topic) + (2 if qos else 0) + len(payload)
    parts = [bytes([(PUBLISH << 4) | flags]), _length(size), struct.pack("!H", len(raw_topic)), raw_topic]
    if qos:
        parts.append(struct.pack("!H", packet_id))
    parts.append(payload)
    return b"".join(parts)  # the payload is copied once


def encode_puback(packet_id: int) -> bytes:
    return struct.pack("!BBH", PUBACK << 4, 2, packet_id)


def encode_suback(packet_id: int, codes: list[int]) -> bytes:
    body = struct.pack("!H", packet_id) + bytes(codes)
    return bytes([SUBACK << 4]) + _length(len(body)) + body


def encode_unsuback(packet_id: int) -> bytes:
    return struct.pack("!BBH", UNSUBACK << 4, 2, packet_id)


def encode_pingresp() -> bytes:
    return bytes([PINGRESP << 4, 0])


def _field(text: str | bytes) -> bytes:
    raw = text.encode("utf-8") if isinstance(text, str) else text
    return struct.pack("!H", len(raw)) + raw


def encode_connect(
    client_id: str, username: str | None = None, password: str | None = None, keepalive: int = 60,
    clean_session: bool = False,
) -> bytes:  # fmt: skip
    """A CONNECT packet (for tools and tests; modules use the SDK)."""
    flags = (0x02 if clean_session else 0) | (0x80 if username is not None else 0)
    flags |= 0x40 if password is not None else 0
    body = _field("MQTT") + bytes([4, flags]) + struct.pack("!H", keepalive) + _field(client_id)
    if username is not None:
        body += _field(username)
    if password is not None:
        body += _field(password)
    return bytes([CONNECT << 4]) + _length(len(body)) + body


def encode_subscribe(packet_id: int, filters: list[tuple[str, int]]) -> bytes:
    body = struct.pack("!H", packet_id) + b"".join(_field(f) + bytes([q]) for f, q in filters)
    return bytes([(SUBSCRIBE << 4) | 0x02]) + _length(len(body)) + body
