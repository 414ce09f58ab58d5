"""Acknowledge input messages to edgeHub only once the module has taken them in.

``azure-iot-device`` 2.x receives MQTT through paho-mqtt 1.x, which answers a QoS 1 PUBLISH
with PUBACK as soon as the SDK has queued the message in memory, before any module code runs.
A module killed between that PUBACK and the end of its handler loses the message: edgeHub has
deleted it. ``DeferredPubacks`` holds the PUBACK of every input message until the runtime says
the message is handled (``release``), then sends PUBACKs in the order the PUBLISHes arrived, as
MQTT 3.1.1 requires and edgeHub expects. A module killed before that gets the messages again on
its next connection (QoS 1: at least once; receivers drop duplicates by sample id).

It wraps three methods of the one paho client instance the SDK created (not the class), and
only input topics are held: twin, method and C2D messages are acknowledged as before. When
the SDK's internals do not look as expected, ``attach`` returns ``None`` and the module runs
with the SDK's own acknowledgement (logged as a warning).

A message the SDK never hands to the module (it drops messages it cannot route) would hold
every later acknowledgement back, so a held message that was not delivered to the runtime within
``undelivered_after_s`` is acknowledged anyway, with a warning.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

#: How a held message is identified: (input name, message id), as the SDK hands it over.
AckKey = tuple[str, str]


@dataclass
class _Held:
    mid: int
    key: AckKey
    generation: int
    received: float
    delivered: bool = False
    released: bool = False


def input_key(topic: str) -> AckKey | None:
    """The key of an input message from its MQTT topic, parsed as the SDK parses it; ``None``
    for other topics and for input messages without a message id (those are not held)."""
    from azure.iot.device.iothub.models import Message
    from azure.iot.device.iothub.pipeline import mqtt_topic_iothub as topics

    parts = topic.split("/")
    if len(parts) < 6 or parts[0] != "devices" or parts[2] != "modules" or parts[4] != "inputs":
        return None
    try:
        name = topics.get_input_name_from_topic(topic)
        probe = Message(b"")
        topics.extract_message_properties_from_topic(topic, probe)
    except ValueError:
        return None
    if not probe.message_id:
        return None
    return (name, str(probe.message_id))


class DeferredPubacks:
    """Holds input PUBACKs of one paho client until ``release``; see the module docstring."""

    def __init__(
        self,
        paho_client: Any,
        *,
        undelivered_after_s: float = 30.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._paho = paho_client
        self._undelivered_after_s = undelivered_after_s
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._held: deque[_Held] = deque()
        self._generation = 0
        self._connected = False
        self._current = threading.local()
        self._send_puback: Callable[[int], Any] = paho_client._send_puback
        self.counters = {"held": 0, "released": 0, "forced": 0, "dropped_on_disconnect": 0}

    # -- installation ------------------------------------------------------------------------
    @classmethod
    def attach(cls, sdk_client: Any, **kwargs: Any) -> DeferredPubacks | None:
        """Install on the paho client inside an ``IoTHubModuleClient``; ``None`` (and a warning)
        when it cannot be found or does not have the paho 1.x methods this relies on."""
        paho = _find_paho_client(sdk_client)
        needed = ("_handle_on_message", "_send_puback", "_handle_connack", "_do_on_disconnect")
        if paho is None or not all(callable(getattr(paho, name, None)) for name in needed):
            log.warning(
                "inputs are acknowledged by the SDK on receipt: cannot find its paho 1.x client "
                "to hold acknowledgements until inputs are handled"
            )
            return None
        acks = cls(paho, **kwargs)
        acks._install()
        return acks

    def _install(self) -> None:
        paho = self._paho
        on_message = paho._handle_on_message
        on_connack = paho._handle_connack
        on_disconnect = paho._do_on_disconnect

        def handle_on_message(message: Any) -> Any:
            # Held before the SDK sees it: its handler may finish (and release) before paho
            # gets to the PUBACK below.
            held = message.qos == 1 and self._hold(message)
            self._current.held_mid = message.mid if held else None
            return on_message(message)

        def send_puback(mid: int) -> Any:
            if getattr(self._current, "held_mid", None) == mid:
                self._current.held_mid = None
                return 0  # MQTT_ERR_SUCCESS: release() sends it, in order
            return self._send_puback(mid)

        def handle_connack() -> Any:
            result = on_connack()
            self._new_connection()
            return result

        def do_on_disconnect(rc: int, properties: Any = None) -> Any:
            self._lost_connection()
            return on_disconnect(rc, properties)

        paho._handle_on_message = handle_on_message
        paho._send_puback = send_puback
        paho._handle_connack = handle_connack
        paho._do_on_disconnect = do_on_disconnect

    # -- paho's network thread ---------------------------------------------------------------
    def _hold(self, message: Any) -> bool:
        try:
            topic = message.topic.decode("utf-8") if isinstance(message.topic, bytes) else message.topic
        except UnicodeDecodeError:
            return False
        key = input_key(topic)
        if key is None:
            return False
        with self._lock:
            if not self._connected:
                return False
            self._held.append(_Held(message.mid, key, self._generation, self._monotonic()))
            self.counters["held"] += 1
        return True

    def _new_connection(self) -> None:
        with self._lock:
            self._drop_held()
            self._generation += 1
            self._connected = True

    def _lost_connection(self) -> None:
        with self._lock:
            self._drop_held()
            self._connected = False

    def _drop_held(self) -> None:
        """Packet ids belong to one connection: what is still held will come again (DUP)."""
        if self._held:
            self.counters["dropped_on_disconnect"] += len(self._held)
            log.info("%d inputs not yet handled will be delivered again after reconnecting", len(self._held))
        self._held.clear()

    # -- the module's side -------------------------------------------------------------------
    def delivered(self, key: AckKey) -> None:
        """The SDK handed this message to the runtime (it is no longer the SDK's to drop)."""
        with self._lock:
            for held in self._held:
                if held.key == key and not held.delivered:
                    held.delivered = True
                    return

    def release(self, key: AckKey) -> None:
        """The module has handled this message: acknowledge it and every earlier one handled."""
        with self._lock:
            for held in self._held:
                if held.key == key and not held.released:
                    held.released = True
                    break
            self._flush()

    def sweep(self) -> None:
        """Acknowledge held messages the SDK never delivered (see the module docstring)."""
        with self._lock:
            self._flush()

    def pending(self) -> int:
        with self._lock:
            return len(self._held)

    def _flush(self) -> None:
        now = self._monotonic()
        while self._held:
            front = self._held[0]
            if not front.released:
                if front.delivered or now - front.received < self._undelivered_after_s:
                    return
                self.counters["forced"] += 1
                log.warning(
                    "input %s message %s was never handed to the module by the SDK; acknowledging it",
                    *front.key,
                )
            self._held.popleft()
            if front.generation == self._generation and self._connected:
                self._send_puback(front.mid)
                self.counters["released"] += 1


def _find_paho_client(sdk_client: Any) -> Any:
    """The paho client of an ``IoTHubModuleClient`` (its MQTT transport stage's transport)."""
    stage = getattr(getattr(sdk_client, "_mqtt_pipeline", None), "_pipeline", None)
    while stage is not None:
        transport = getattr(stage, "transport", None)
        paho = getattr(transport, "_mqtt_client", None)
        if paho is not None:
            return paho
        stage = getattr(stage, "next", None)
    return None
