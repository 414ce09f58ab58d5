"""Where span predictions go: the module client port, its real adapter and an in-memory one."""

from __future__ import annotations

import threading
from typing import Any, Protocol

from edgeloop.runtime.codec import OutboundMessage


class PredictionSink(Protocol):
    """Sends one encoded message to a module output."""

    def send(self, message: OutboundMessage) -> None:
        """Send ``message`` to ``message.output``; raises when it could not be sent."""
        ...


class ModuleClientSink:
    """``IoTHubModuleClient.send_message_to_output`` of ``azure-iot-device``, as a sink.

    The client is the app's own, created (``create_from_edge_environment``) and connected by
    the app; messages are JSON (``content_type`` application/json, utf-8) so that routes can
    filter on ``$body``, with ``schema``, ``sample_id`` and ``traceparent`` as properties.
    """

    def __init__(self, client: Any) -> None:
        self._client = client

    def send(self, message: OutboundMessage) -> None:
        from edgeloop.runtime.hub import sdk_message

        self._client.send_message_to_output(sdk_message(message), message.output)


class MemorySink:
    """Keeps every message sent (tests, and trying an app without a hub)."""

    def __init__(self) -> None:
        self.messages: list[OutboundMessage] = []
        self._lock = threading.Lock()

    def send(self, message: OutboundMessage) -> None:
        with self._lock:
            self.messages.append(message)
