"""SAS tokens, module environments and the MQTT packet codec."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from edgeloop.devhub import mqtt, sas
from edgeloop.devhub.envfiles import module_env, read_env_file, rewrite_paths, write_env_file
from edgeloop.devhub.manifest import Bind, ModuleSpec
from edgeloop.devhub.paths import StatePaths

URI = "hub.example/devices/d/modules/m"


@pytest.mark.parametrize(
    ("token_key", "uri", "expiry", "ok", "fragment"),
    [
        ("right", URI, 3600, True, ""),
        ("wrong", URI, 3600, False, "signature"),
        ("right", URI, -10, False, "expired"),
        ("right", "hub.example/devices/d/modules/other", 3600, False, "not"),
    ],
)
def test_sas_tokens(token_key: str, uri: str, expiry: int, ok: bool, fragment: str) -> None:
    # given
    keys = {"right": sas.new_key(), "wrong": sas.new_key()}
    now = time.time()
    token = sas.make_token(keys[token_key], uri, int(now + expiry))

    # when
    check = sas.check_token(token, key=keys["right"], uri=URI, now=now)

    # then
    assert check.ok is ok
    assert fragment in check.reason


@pytest.mark.parametrize("password", [None, "", "Bearer x", "SharedAccessSignature sr=a&se=1"])
def test_malformed_tokens_are_refused(password: str | None) -> None:
    assert not sas.check_token(password, key=sas.new_key(), uri=URI, now=0).ok


def test_bind_paths_in_env_point_at_local_folders(tmp_path: Path) -> None:
    # given
    folders = {"/samples": tmp_path / "samples", "/state": tmp_path / "filter"}
    env = {"A": "/samples", "B": "/samples/sub/x.jpg", "C": "/samplesX", "D": "/state", "E": "plain"}

    # when
    rewritten = rewrite_paths(env, folders)

    # then
    assert rewritten == {
        "A": str(tmp_path / "samples"),
        "B": str(tmp_path / "samples") + "/sub/x.jpg",
        "C": "/samplesX",
        "D": str(tmp_path / "filter"),
        "E": "plain",
    }


def test_module_env_has_the_iotedge_set_and_round_trips_through_a_file(tmp_path: Path) -> None:
    # given
    paths = StatePaths.of(tmp_path)
    spec = ModuleSpec(
        "m", "img", {"EDGELOOP_SAMPLES_DIR": "/samples"}, (Bind("/var/lib/x/samples", "/samples"),)
    )

    # when
    env = module_env(
        module=spec, hub_host="h", device_id="d", gateway_host="127.0.0.9", generation_id="g", paths=paths
    )
    write_env_file(paths.env_file("m"), env)

    # then
    assert env["IOTEDGE_MODULEID"] == "m"
    assert env["IOTEDGE_WORKLOADURI"] == f"unix://{paths.workload_socket}"
    assert env["EDGELOOP_SAMPLES_DIR"] == str(tmp_path / "volumes" / "samples")
    assert read_env_file(paths.env_file("m")) == env


def test_long_state_dirs_put_sockets_in_a_short_folder(tmp_path: Path) -> None:
    paths = StatePaths.of(tmp_path / ("x" * 120))
    assert len(str(paths.control_socket)) < 108
    assert paths.control_socket == StatePaths.of(tmp_path / ("x" * 120)).control_socket


def test_packet_reader_reassembles_packets_split_anywhere() -> None:
    # given
    stream = mqtt.encode_publish("t/1", b"x" * 300, qos=1, packet_id=9) + mqtt.encode_pingresp()
    reader = mqtt.PacketReader(1024)

    # when
    packets = [p for i in range(len(stream)) for p in reader.feed(stream[i : i + 1])]

    # then
    assert [p.kind for p in packets] == [mqtt.PUBLISH, mqtt.PINGRESP]
    publish = mqtt.decode_publish(packets[0].flags, packets[0].body)
    assert (publish.topic, publish.payload, publish.qos, publish.packet_id) == ("t/1", b"x" * 300, 1, 9)


def test_connect_round_trip() -> None:
    packet = mqtt.PacketReader(1024).feed(mqtt.encode_connect("d/m", "user", "pw", keepalive=30))[0]
    connect = mqtt.decode_connect(packet.body)
    assert (connect.client_id, connect.username, connect.password, connect.keepalive) == (
        "d/m",
        "user",
        "pw",
        30,
    )
    assert connect.clean_session is False


@pytest.mark.parametrize(
    ("flags", "body"),
    [
        (0x04, b"\x00\x01t"),  # QoS 2
        (0x02, b"\x00\x05t"),  # truncated topic
        (0x02, b"\x00\x01t\x00"),  # truncated packet id
    ],
)
def test_bad_publish_packets_raise_protocol_error(flags: int, body: bytes) -> None:
    with pytest.raises(mqtt.ProtocolError):
        mqtt.decode_publish(flags, body)


def test_oversize_packets_are_refused_from_their_header() -> None:
    with pytest.raises(mqtt.ProtocolError, match="over the 100-byte limit"):
        mqtt.PacketReader(100).feed(bytes([0x30, 0xC8, 0x01]))


@pytest.mark.parametrize("cut", [0, 1, 2, 5, 40])
def test_packet_reader_keeps_a_partial_tail_after_whole_packets(cut: int) -> None:
    # given
    whole = mqtt.encode_puback(1) + mqtt.encode_puback(2)
    third = mqtt.encode_publish("t", b"z" * 50, qos=1, packet_id=3)
    reader = mqtt.PacketReader(1024)

    # when
    first = reader.feed(whole + third[:cut])
    rest = reader.feed(third[cut:])

    # then
    assert [mqtt.decode_packet_id(p.body) for p in first] == [1, 2]
    assert [mqtt.decode_publish(p.flags, p.body).payload for p in rest] == [b"z" * 50]
