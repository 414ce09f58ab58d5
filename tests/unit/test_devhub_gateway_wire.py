"""The gateway port's wire formats: WebSocket frames and HTTP request heads."""

from __future__ import annotations

import errno
import os
import struct

import pytest

from edgeloop.devhub import wsframes
from edgeloop.devhub.app import _bind_advice
from edgeloop.devhub.httpwire import HttpError, HttpResponse, body_length, parse_head
from edgeloop.devhub.wsframes import FrameReader, WebSocketError


def client_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bytes = b"\x01\x02\x03\x04"
) -> bytes:
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", (0x80 if fin else 0) | opcode, 0x80 | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", (0x80 if fin else 0) | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", (0x80 if fin else 0) | opcode, 0x80 | 127, length)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + masked


def test_accept_key_is_the_rfc_example() -> None:
    assert wsframes.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 300_000])
def test_masked_frames_of_every_length_class_decode_whole_even_byte_by_byte(size: int) -> None:
    # given
    payload = os.urandom(size)
    wire = client_frame(wsframes.BINARY, payload) + client_frame(wsframes.PING, b"hi")
    reader = FrameReader(max_bytes=512 * 1024)

    # when
    frames = [f for i in range(0, len(wire), 4096) for f in reader.feed(wire[i : i + 4096])]

    # then
    assert frames == [wsframes.Frame(wsframes.BINARY, payload), wsframes.Frame(wsframes.PING, b"hi")]


@pytest.mark.parametrize(
    ("wire", "code", "words"),
    [
        (b"\x82\x05hello", wsframes.PROTOCOL_ERROR, "not masked"),
        (b"\xc2\x80abcd", wsframes.PROTOCOL_ERROR, "reserved bits"),
        (b"\x83\x80abcd", wsframes.PROTOCOL_ERROR, "unknown opcode"),
        (client_frame(wsframes.PING, b"x" * 126), wsframes.PROTOCOL_ERROR, "control frame"),
        (client_frame(wsframes.PING, b"x", fin=False), wsframes.PROTOCOL_ERROR, "control frame"),
        (b"\x82\xff" + struct.pack("!Q", 1 << 40), wsframes.TOO_BIG, "over the 1024-byte limit"),
    ],
    ids=["unmasked", "reserved", "opcode", "long-ping", "fragmented-ping", "oversize"],
)
def test_bad_frames_name_the_problem_and_the_close_code(wire: bytes, code: int, words: str) -> None:
    with pytest.raises(WebSocketError, match=words) as raised:
        FrameReader(max_bytes=1024).feed(wire)
    assert raised.value.code == code


def test_server_frames_are_unmasked_with_the_shortest_length() -> None:
    assert wsframes.encode_frame(wsframes.BINARY, b"ab") == b"\x82\x02ab"
    assert wsframes.encode_frame(wsframes.BINARY, b"a" * 200)[:4] == b"\x82\x7e\x00\xc8"
    assert wsframes.encode_close(1003) == b"\x88\x02\x03\xeb"


def test_request_head_is_parsed_with_lower_case_headers_and_query() -> None:
    # given
    raw = b"POST /twins/d/modules/m/methods?api-version=2019-10-01 HTTP/1.1\r\nAuthorization: SAS x\r\n"
    raw += b"Content-Length: 3\r\n\r\n{}x"

    # when
    request, used = parse_head(raw) or (None, 0)

    # then
    assert request is not None
    assert (request.method, request.path, request.query) == (
        "POST", "/twins/d/modules/m/methods", {"api-version": "2019-10-01"}
    )  # fmt: skip
    assert request.header("AUTHORIZATION") == "SAS x"
    assert raw[used:] == b"{}x"
    assert body_length(request) == 3


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"hello\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nno colon here\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n" + b"X: " + b"y" * 20000, 431),
    ],
    ids=["request-line", "header-line", "head-too-long"],
)
def test_malformed_heads_are_refused(raw: bytes, status: int) -> None:
    with pytest.raises(HttpError) as raised:
        parse_head(raw)
    assert raised.value.status == status


@pytest.mark.parametrize(
    ("header", "status"),
    [(b"Content-Length: ten", 400), (b"Content-Length: 99999999", 413), (b"Transfer-Encoding: chunked", 400)],
)
def test_bodies_without_a_usable_length_are_refused(header: bytes, status: int) -> None:
    parsed = parse_head(b"POST / HTTP/1.1\r\n" + header + b"\r\n\r\n")
    assert parsed is not None
    with pytest.raises(HttpError) as raised:
        body_length(parsed[0])
    assert raised.value.status == status


def test_upgrade_response_has_no_body_headers_and_one_connection_line() -> None:
    # paho refuses a handshake where a line naming "connection" lacks "upgrade"
    text = HttpResponse(101, headers={"Upgrade": "websocket", "Connection": "Upgrade"}).encode().decode()
    assert [line for line in text.split("\r\n") if "connection" in line.lower()] == ["Connection: Upgrade"]
    assert "Content-Length" not in text


@pytest.mark.parametrize(
    ("err", "words"),
    [
        (errno.EACCES, "sysctl net.ipv4.ip_unprivileged_port_start=443"),
        (errno.EACCES, "setcap cap_net_bind_service"),
        (errno.EADDRINUSE, "in use"),
    ],
)
def test_bind_failures_say_how_to_allow_the_port(err: int, words: str) -> None:
    advice = _bind_advice(("127.0.0.1", 443), OSError(err, os.strerror(err)))
    assert "127.0.0.1:443" in advice
    assert words in advice
