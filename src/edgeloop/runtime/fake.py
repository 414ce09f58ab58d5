"""An in-memory ``HubClient`` for unit tests: inject inputs, patches and method calls; read
back what the module sent and reported. No threads of its own: handlers run on the caller's
thread, as the SDK runs them on its own."""

from __future__ import annotations

import copy
import threading
from collections.abc import Sequence
from typing import Any

from edgeloop.contracts import Contract
from edgeloop.runtime.codec import InboundMessage, OutboundMessage, decode, encode
from edgeloop.runtime.config import merge_patch
from edgeloop.runtime.hub import (
    InputHandler,
    MethodCall,
    MethodHandler,
    MethodResponse,
    PatchHandler,
)


class FakeHubClient:
    """Records everything; ``connected`` flips on ``connect`` and off on ``shutdown``."""

    def __init__(self, desired: dict[str, Any] | None = None) -> None:
        self.desired: dict[str, Any] = copy.deepcopy(desired or {})
        self.desired.setdefault("$version", 1)
        self.reported: dict[str, Any] = {}
        self.reported_patches: list[dict[str, Any]] = []
        self.sent: list[OutboundMessage] = []
        self.acknowledged: list[InboundMessage] = []
        self.responses: dict[str, MethodResponse] = {}
        self.connected = False
        self.handlers_set_before_connect = False
        self._on_input: InputHandler | None = None
        self._on_patch: PatchHandler | None = None
        self._on_method: MethodHandler | None = None
        self._responded = threading.Condition()
        self._next_rid = 0

    # -- HubClient -------------------------------------------------------------------------
    def set_handlers(
        self, *, on_input: InputHandler, on_desired_patch: PatchHandler, on_method: MethodHandler
    ) -> None:
        self._on_input, self._on_patch, self._on_method = on_input, on_desired_patch, on_method

    def connect(self) -> None:
        self.handlers_set_before_connect = None not in (self._on_input, self._on_patch, self._on_method)
        self.connected = True

    def get_twin(self) -> dict[str, Any]:
        return {"desired": copy.deepcopy(self.desired), "reported": copy.deepcopy(self.reported)}

    def patch_reported(self, patch: dict[str, Any]) -> None:
        self.reported_patches.append(copy.deepcopy(patch))
        merge_patch(self.reported, patch)

    def send(self, message: OutboundMessage) -> None:
        self.sent.append(message)

    def acknowledge(self, message: InboundMessage) -> None:
        self.acknowledged.append(message)

    def respond(self, call: MethodCall, response: MethodResponse) -> None:
        with self._responded:
            self.responses[call.request_id] = response
            self._responded.notify_all()

    def shutdown(self) -> None:
        self.connected = False

    # -- test helpers ----------------------------------------------------------------------
    def push_input(self, input_name: str, items: Sequence[Contract], *, max_batch: int = 64) -> None:
        """Deliver contract objects on an input, encoded as the hub would carry them."""
        assert self._on_input is not None, "handlers not set"
        for message in encode(input_name, items, max_batch=max_batch):
            self._on_input(
                InboundMessage(
                    input_name=input_name,
                    body=message.body,
                    properties=dict(message.properties),
                    message_id=message.message_id,
                    content_type=message.content_type,
                )
            )

    def push_raw_input(self, input_name: str, body: bytes) -> None:
        assert self._on_input is not None, "handlers not set"
        self._on_input(InboundMessage(input_name=input_name, body=body))

    def patch_desired(self, patch: dict[str, Any], *, replay: bool = False) -> None:
        """Apply a desired patch as IoT Hub would (``$version`` bumped unless ``replay``)."""
        assert self._on_patch is not None, "handlers not set"
        if not replay:
            merge_patch(self.desired, patch)
            self.desired["$version"] = int(self.desired.get("$version", 0)) + 1
        body = copy.deepcopy(patch)
        body["$version"] = self.desired["$version"]
        self._on_patch(body)

    def call_method(self, name: str, payload: Any = None, timeout: float = 10.0) -> MethodResponse:
        """Invoke a direct method and wait for the module's answer."""
        assert self._on_method is not None, "handlers not set"
        self._next_rid += 1
        rid = str(self._next_rid)
        self._on_method(MethodCall(request_id=rid, name=name, payload=payload))
        with self._responded:
            if not self._responded.wait_for(lambda: rid in self.responses, timeout):
                raise TimeoutError(f"method {name!r} got no answer in {timeout}s")
            return self.responses.pop(rid)

    def sent_items(self, output: str | None = None) -> list[Contract]:
        """Everything sent (to ``output`` when given), decoded back into contracts."""
        items: list[Contract] = []
        for message in self.sent:
            if output is None or message.output == output:
                items.extend(decode(message.body))
        return items
