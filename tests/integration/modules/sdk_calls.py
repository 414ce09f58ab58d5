"""The unmodified azure-iot-device SDK making the calls of Microsoft's edge samples.

``python -m tests.integration.modules.sdk_calls invoke MODULE METHOD PAYLOAD_JSON [TIMEOUT]``:
``invoke_method`` from a client made with ``create_from_edge_environment()``; prints one JSON
line (``{"result": ...}`` or ``{"error": type, "message": ...}``).

``python -m tests.integration.modules.sdk_calls websockets`` (or ``SDK_ACTION=websockets``): a
module on MQTT over WebSockets (``websockets=True``): answers every method with
``{"echo": payload}``, records inputs, twin and desired patches in ``SDK_RECORD`` (JSONL),
reports ``{"transport": "websockets"}``, sends ``{"hello": "websockets"}`` on output ``out``;
runs until SIGTERM.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
from typing import Any


def _record(entry: dict[str, Any]) -> None:
    with open(os.environ["SDK_RECORD"], "a", encoding="utf-8") as out:
        out.write(json.dumps(entry) + "\n")


def invoke(module: str, method: str, payload: str, timeout: str = "10") -> int:
    from azure.iot.device import IoTHubModuleClient

    client = IoTHubModuleClient.create_from_edge_environment(connection_retry=False)
    params = {
        "methodName": method,
        "payload": json.loads(payload),
        "responseTimeoutInSeconds": float(timeout),
    }
    try:
        result = client.invoke_method(params, os.environ["IOTEDGE_DEVICEID"], module)
    except Exception as exc:
        print(json.dumps({"error": type(exc).__name__, "message": str(exc), "cause": repr(exc.__cause__)}))
        return 1
    finally:
        client.shutdown()
    print(json.dumps({"result": result}), flush=True)
    return 0


def websockets_module() -> int:
    from azure.iot.device import IoTHubModuleClient, Message, MethodResponse

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    client = IoTHubModuleClient.create_from_edge_environment(websockets=True)

    def on_method(request: Any) -> None:
        _record({"event": "method", "name": request.name, "payload": request.payload})
        client.send_method_response(
            MethodResponse.create_from_method_request(request, 200, {"echo": request.payload})
        )

    def on_message(message: Any) -> None:
        _record({"event": "input", "input": message.input_name, "body": json.loads(message.data)})

    client.on_method_request_received = on_method
    client.on_message_received = on_message
    client.on_twin_desired_properties_patch_received = lambda patch: _record(
        {"event": "desired", "patch": patch}
    )
    client.connect()
    _record({"event": "twin", "twin": client.get_twin()})
    client.patch_twin_reported_properties({"transport": "websockets"})
    message = Message(
        json.dumps({"hello": "websockets"}), content_encoding="utf-8", content_type="application/json"
    )
    client.send_message_to_output(message, "out")
    _record({"event": "sent"})
    stop.wait()
    client.shutdown()
    return 0


def main(argv: list[str]) -> int:
    argv = argv or os.environ.get("SDK_ACTION", "").split()
    if argv[:1] == ["invoke"]:
        return invoke(*argv[1:])
    if argv[:1] == ["websockets"]:
        return websockets_module()
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
