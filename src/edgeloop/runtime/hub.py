"""The hub port: what a module needs from edgeHub, with the real SDK adapter.

``HubClient`` is the small interface the runtime talks to. ``SdkHubClient`` wraps
``azure.iot.device.IoTHubModuleClient`` and translates its exceptions into
``edgeloop.errors.HubError``; ``edgeloop.runtime.fake.FakeHubClient`` is the in-memory twin
that unit tests pass in instead.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edgeloop.errors import HubConnectionError, HubCredentialError, HubError, HubTimeoutError
from edgeloop.runtime.acks import DeferredPubacks
from edgeloop.runtime.codec import InboundMessage, OutboundMessage

log = logging.getLogger(__name__)


def sdk_message(message: OutboundMessage) -> Any:
    """The SDK's ``Message`` for an outbound message: body, id, content type and encoding (so that
    routes can filter on ``$body``) and the application properties."""
    from azure.iot.device import Message

    msg = Message(
        message.body,
        message_id=message.message_id,
        content_encoding=message.content_encoding,
        content_type=message.content_type,
    )
    msg.custom_properties.update(message.properties)
    return msg


@dataclass(frozen=True)
class MethodCall:
    """A direct method request; ``handle`` is the adapter's own request object."""

    request_id: str
    name: str
    payload: Any
    handle: Any = None


@dataclass(frozen=True)
class MethodResponse:
    status: int
    payload: Any


InputHandler = Callable[[InboundMessage], None]
PatchHandler = Callable[[dict[str, Any]], None]
MethodHandler = Callable[[MethodCall], None]


class HubClient(Protocol):
    """The module's connection to its hub. Handlers are set before ``connect``.

    Handlers may be called on the adapter's own threads; the runtime moves them onto its queue.
    Every call may raise ``HubError`` (or a subclass).
    """

    def set_handlers(
        self, *, on_input: InputHandler, on_desired_patch: PatchHandler, on_method: MethodHandler
    ) -> None: ...

    def connect(self) -> None: ...

    def get_twin(self) -> dict[str, Any]: ...

    def patch_reported(self, patch: dict[str, Any]) -> None: ...

    def send(self, message: OutboundMessage) -> None: ...

    def acknowledge(self, message: InboundMessage) -> None:
        """The module has handled ``message`` (taken it in durably or passed on what it
        derived): the hub may forget it. Until then a restart gets it again."""
        ...

    def respond(self, call: MethodCall, response: MethodResponse) -> None: ...

    def shutdown(self) -> None: ...


def _translate(exc: Exception) -> HubError:
    from azure.iot.device import exceptions as sdk

    if isinstance(exc, sdk.CredentialError):
        return HubCredentialError(f"the hub refused the module's credentials: {exc}")
    if isinstance(exc, sdk.OperationTimeout):
        return HubTimeoutError(f"hub operation timed out: {exc}")
    if isinstance(exc, sdk.ConnectionFailedError | sdk.ConnectionDroppedError | sdk.NoConnectionError):
        return HubConnectionError(f"cannot reach the hub: {exc}")
    return HubError(f"hub client error: {exc!r}")


class SdkHubClient:
    """``HubClient`` over the real ``azure-iot-device`` module client."""

    def __init__(self, client: Any, *, defer_acks: bool = True) -> None:
        self._client = client
        self._acks = DeferredPubacks.attach(client) if defer_acks else None
        self._sweeper: threading.Thread | None = None
        self._closed = threading.Event()

    @classmethod
    def from_edge_environment(cls) -> SdkHubClient:
        """Build the client the way a module runs under IoT Edge (or the dev hub).

        Raises:
            HubError: the IOTEDGE_* environment is missing or the workload API is unreachable.
        """
        from azure.iot.device import IoTHubModuleClient

        try:
            return cls(IoTHubModuleClient.create_from_edge_environment())
        except Exception as exc:
            raise HubError(
                "cannot create the module client from the IoT Edge environment "
                f"(IOTEDGE_* variables and the workload API): {exc}"
            ) from exc

    def set_handlers(
        self, *, on_input: InputHandler, on_desired_patch: PatchHandler, on_method: MethodHandler
    ) -> None:
        def _input(message: Any) -> None:
            data = message.data
            body = data if isinstance(data, bytes) else str(data).encode("utf-8")
            props = {str(k): str(v) for k, v in (message.custom_properties or {}).items()}
            inbound = InboundMessage(
                input_name=message.input_name or "",
                body=body,
                properties=props,
                message_id=message.message_id,
                content_type=message.content_type,
            )
            if self._acks is not None and inbound.key is not None:
                self._acks.delivered(inbound.key)
            on_input(inbound)

        def _method(request: Any) -> None:
            on_method(
                MethodCall(
                    request_id=request.request_id, name=request.name, payload=request.payload, handle=request
                )
            )

        self._client.on_message_received = _input
        self._client.on_twin_desired_properties_patch_received = on_desired_patch
        self._client.on_method_request_received = _method

    def connect(self) -> None:
        self._call(self._client.connect)
        if self._acks is not None and self._sweeper is None:
            self._sweeper = threading.Thread(target=self._sweep, name="ack-sweeper", daemon=True)
            self._sweeper.start()

    def acknowledge(self, message: InboundMessage) -> None:
        if self._acks is not None and message.key is not None:
            self._acks.release(message.key)

    def _sweep(self) -> None:
        acks = self._acks
        while acks is not None and not self._closed.wait(5.0):
            acks.sweep()

    def get_twin(self) -> dict[str, Any]:
        twin: dict[str, Any] = self._call(self._client.get_twin)
        return twin

    def patch_reported(self, patch: dict[str, Any]) -> None:
        self._call(self._client.patch_twin_reported_properties, patch)

    def send(self, message: OutboundMessage) -> None:
        self._call(self._client.send_message_to_output, sdk_message(message), message.output)

    def respond(self, call: MethodCall, response: MethodResponse) -> None:
        from azure.iot.device import MethodResponse as SdkMethodResponse

        sdk_response = SdkMethodResponse.create_from_method_request(
            call.handle, response.status, response.payload
        )
        self._call(self._client.send_method_response, sdk_response)

    def shutdown(self) -> None:
        self._closed.set()
        try:
            self._client.shutdown()
        except Exception:
            log.warning("module client shutdown failed", exc_info=True)

    @staticmethod
    def _call(fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except HubError:
            raise
        except Exception as exc:
            raise _translate(exc) from exc
