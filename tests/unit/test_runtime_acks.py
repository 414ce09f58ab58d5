"""Input acknowledgements held until the module has handled the message (``DeferredPubacks``),
driven through a stand-in for paho's client with the calls paho 1.x makes per QoS 1 PUBLISH."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from edgeloop.runtime.acks import DeferredPubacks, input_key


class Paho:
    """The four paho methods ``DeferredPubacks`` wraps, recording what goes on the wire."""

    def __init__(self) -> None:
        self.pubacks: list[int] = []
        self.handed_to_sdk: list[Any] = []
        self.on_message: Any = None

    def _handle_on_message(self, message: Any) -> None:
        self.handed_to_sdk.append(message)
        if self.on_message is not None:
            self.on_message(message)

    def _send_puback(self, mid: int) -> int:
        self.pubacks.append(mid)
        return 0

    def _handle_connack(self) -> int:
        return 0

    def _do_on_disconnect(self, rc: int, properties: Any = None) -> None:
        return None

    def receive(self, mid: int, topic: str) -> None:
        """What paho's ``_handle_publish`` does for QoS 1: the callback, then the PUBACK."""
        self._handle_on_message(SimpleNamespace(mid=mid, qos=1, topic=topic.encode()))
        self._send_puback(mid)


def input_topic(message_id: str | None, name: str = "frames") -> str:
    props = f"%24.mid={message_id}&%24.ct=application%2Fjson" if message_id else "%24.ct=application%2Fjson"
    return f"devices/dev1/modules/inference/inputs/{name}/{props}"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def wire() -> tuple[Paho, DeferredPubacks, Clock]:
    paho, clock = Paho(), Clock()
    acks = DeferredPubacks(paho, undelivered_after_s=30.0, monotonic=clock)
    acks._install()
    paho._handle_connack()
    return paho, acks, clock


def test_input_topic_keys_follow_the_sdk_parsing() -> None:
    assert input_key(input_topic("m-1", "selected")) == ("selected", "m-1")
    assert input_key(input_topic(None)) is None
    assert input_key("$iothub/twin/res/200/?$rid=5") is None
    assert input_key("$iothub/methods/POST/getStats/?$rid=1") is None
    assert input_key("devices/dev1/modules/m/inputs") is None


def test_an_input_puback_waits_for_release(wire: tuple[Paho, DeferredPubacks, Clock]) -> None:
    # given
    paho, acks, _ = wire
    # when
    paho.receive(1, input_topic("a"))
    # then
    assert paho.pubacks == []
    assert acks.pending() == 1
    acks.delivered(("frames", "a"))
    acks.release(("frames", "a"))
    assert paho.pubacks == [1]
    assert acks.pending() == 0


def test_pubacks_leave_in_arrival_order_whatever_order_the_module_finishes(
    wire: tuple[Paho, DeferredPubacks, Clock],
) -> None:
    # given
    paho, acks, _ = wire
    for mid, message_id in [(1, "a"), (2, "b"), (3, "c")]:
        paho.receive(mid, input_topic(message_id))
        acks.delivered(("frames", message_id))
    # when: the later two are handled first
    acks.release(("frames", "c"))
    acks.release(("frames", "b"))
    # then: nothing goes before the first
    assert paho.pubacks == []
    acks.release(("frames", "a"))
    assert paho.pubacks == [1, 2, 3]


def test_twin_method_and_id_less_messages_are_acknowledged_at_once(
    wire: tuple[Paho, DeferredPubacks, Clock],
) -> None:
    paho, acks, _ = wire
    paho.receive(1, "$iothub/twin/PATCH/properties/desired/?$version=3")
    paho.receive(2, "$iothub/methods/POST/getStats/?$rid=7")
    paho.receive(3, input_topic(None))
    assert paho.pubacks == [1, 2, 3]
    assert acks.pending() == 0


def test_a_release_before_paho_gets_to_its_puback_sends_it_once(
    wire: tuple[Paho, DeferredPubacks, Clock],
) -> None:
    # given: the module handles the message while paho is still inside the callback
    paho, acks, _ = wire

    def handled_at_once(message: Any) -> None:
        acks.delivered(("frames", "fast"))
        acks.release(("frames", "fast"))

    paho.on_message = handled_at_once
    # when
    paho.receive(9, input_topic("fast"))
    # then
    assert paho.pubacks == [9]


def test_what_is_held_at_a_disconnect_is_never_acknowledged_on_the_next_connection(
    wire: tuple[Paho, DeferredPubacks, Clock],
) -> None:
    # given
    paho, acks, _ = wire
    paho.receive(1, input_topic("a"))
    acks.delivered(("frames", "a"))
    # when: the connection drops, comes back, and the old message's handling ends
    paho._do_on_disconnect(1)
    paho._handle_connack()
    acks.release(("frames", "a"))
    # then: packet id 1 belonged to the old connection; the hub sends the message again
    assert paho.pubacks == []
    paho.receive(1, input_topic("a"))
    acks.release(("frames", "a"))
    assert paho.pubacks == [1]
    assert acks.counters["dropped_on_disconnect"] == 1


def test_a_message_the_sdk_never_delivered_stops_holding_back_the_rest_after_a_while(
    wire: tuple[Paho, DeferredPubacks, Clock],
) -> None:
    # given: message a never reaches the module, b is handled
    paho, acks, clock = wire
    paho.receive(1, input_topic("a"))
    paho.receive(2, input_topic("b"))
    acks.delivered(("frames", "b"))
    acks.release(("frames", "b"))
    clock.now = 29.0
    acks.sweep()
    assert paho.pubacks == []
    # when
    clock.now = 31.0
    acks.sweep()
    # then
    assert paho.pubacks == [1, 2]
    assert acks.counters["forced"] == 1


def test_a_delivered_message_is_held_however_long_the_module_takes(
    wire: tuple[Paho, DeferredPubacks, Clock],
) -> None:
    paho, acks, clock = wire
    paho.receive(1, input_topic("a"))
    acks.delivered(("frames", "a"))
    clock.now = 3600.0
    acks.sweep()
    assert paho.pubacks == []


def test_attaches_to_the_paho_client_inside_the_real_sdk_client() -> None:
    # given: the SDK's module client, built but not connected
    from azure.iot.device import IoTHubModuleClient

    client = IoTHubModuleClient.create_from_connection_string(
        "HostName=hub.example;DeviceId=dev1;ModuleId=inference;SharedAccessKey=c2VjcmV0a2V5c2VjcmV0a2V5"
    )
    try:
        # when
        acks = DeferredPubacks.attach(client)
        # then: its paho client's acknowledgement path now goes through us
        assert acks is not None
        paho = acks._paho
        assert type(paho).__module__ == "paho.mqtt.client"
        assert paho._send_puback.__qualname__.startswith("DeferredPubacks")
    finally:
        client.shutdown()


def test_attach_gives_up_cleanly_on_a_client_without_the_expected_insides() -> None:
    assert DeferredPubacks.attach(object()) is None
