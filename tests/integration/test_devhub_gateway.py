"""The dev hub's HTTPS port (443, as edgeHub): module-to-module direct methods and MQTT over
WebSockets, driven by the unmodified SDK, plus the bad input edgeHub refuses."""

from __future__ import annotations

import base64
import json
import socket
import ssl
import struct
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devhub import sas
from edgeloop.devhub.httpunix import request as unix_request
from edgeloop.devhub.testing import HubProcess
from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import PROBE, manifest, route
from tests.support import wait_for

pytestmark = pytest.mark.integration

SDK_CALLS = "tests.integration.modules.sdk_calls"
HTTPS_PORT = 443


def gateway_hub(dev_hub: HubFactory, doc: dict[str, Any]) -> HubProcess:
    """A started hub whose HTTPS port is bound; the test skips (with the hub's reason) if not."""
    hub = dev_hub(doc)
    info = hub.status()["hub"]
    if info["httpsPort"] is None:
        pytest.skip(f"the dev hub could not bind port {HTTPS_PORT}: {info['httpsProblem']}")
    return hub


def sdk_invoke(
    hub: HubProcess, caller: str, module: str, method: str, payload: Any, timeout: float = 10
) -> Any:
    """``invoke_method`` from a client made with ``create_from_edge_environment()`` as ``caller``."""
    command = [sys.executable, "-m", SDK_CALLS, "invoke", module, method, json.dumps(payload), str(timeout)]
    done = subprocess.run(
        command,
        env=subprocess_env(hub.module_env(caller)),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, f"no output from the SDK caller:\n{done.stderr[-2000:]}"
    return json.loads(lines[-1])


def module_token(hub: HubProcess, module: str) -> str:
    """A SAS token for ``module`` signed by the hub's workload API (as the SDK gets one)."""
    env = hub.module_env(module)
    uri = sas.resource_uri(env["IOTEDGE_IOTHUBHOSTNAME"], env["IOTEDGE_DEVICEID"], module)
    expiry = int(time.time()) + 3600
    sr = urllib.parse.quote(uri, safe="")
    data = base64.b64encode(f"{sr}\n{expiry}".encode()).decode()
    target = f"/modules/{module}/genid/{env['IOTEDGE_MODULEGENERATIONID']}/sign?api-version=2019-01-30"
    body = json.dumps({"keyId": "primary", "algo": "HMACSHA256", "data": data}).encode()
    status, doc = unix_request(hub.paths.workload_socket, "POST", target, body)
    assert status == 200, doc
    sig = urllib.parse.quote(doc["digest"], safe="")
    return f"SharedAccessSignature sr={sr}&sig={sig}&se={expiry}"


def tls_socket(hub: HubProcess) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=str(hub.paths.certs / "ca.pem"))
    raw = socket.create_connection((hub.address, HTTPS_PORT), timeout=10)
    return context.wrap_socket(raw, server_hostname=hub.address)


def https_post(hub: HubProcess, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    with tls_socket(hub) as sock:
        head = "".join(f"{k}: {v}\r\n" for k, v in {**headers, "Content-Length": str(len(body))}.items())
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {hub.address}\r\n{head}\r\n".encode() + body)
        raw = b""
        while chunk := sock.recv(65536):
            raw += chunk
    head_text, _, payload = raw.partition(b"\r\n\r\n")
    return int(head_text.split(b" ")[1]), json.loads(payload)


def methods_path(module: str, device: str = "edgeloop-dev") -> str:
    return f"/twins/{device}/modules/{module}/methods?api-version=2019-10-01"


def start_probe(module_process: ModuleFactory, hub: HubProcess, name: str, tmp_path: Path) -> Path:
    record = tmp_path / f"{name}.jsonl"
    module_process(hub, name, package=PROBE, env={"PROBE_RECORD": str(record), "PROBE_SOURCE": name})
    return record


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def events(path: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in read_jsonl(path) if e["event"] == kind]


def test_invoke_method_between_modules_with_the_sdk(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given: probe "a" runs; "caller" is a module of the manifest; "off" is one that is not running
    hub = gateway_hub(dev_hub, manifest(["a", "caller", "off"], {}))
    start_probe(module_process, hub, "a", tmp_path)
    hub.wait_connected("a")

    # when
    ok = sdk_invoke(hub, "caller", "a", "echo", {"x": [1, 2]})
    module_refused = sdk_invoke(hub, "caller", "a", "send", {"count": "many"})
    disconnected = sdk_invoke(hub, "caller", "off", "echo", None)
    unknown = sdk_invoke(hub, "caller", "ghost", "echo", None)

    # then: the module's answer comes back whole; the hub's 404s reach the SDK as IoT Hub's
    assert ok == {"result": {"status": 200, "payload": {"echo": {"x": [1, 2]}}}}
    assert module_refused["result"]["status"] == 400
    assert "count" in json.dumps(module_refused["result"]["payload"])
    for failed in (disconnected, unknown):  # as the SDK surfaces IoT Hub's 404
        assert failed["error"] == "ClientError"
        assert "ServiceError" in failed["cause"]
        assert "404" in failed["cause"]
    assert hub.status()["stats"]["module_method_calls"] >= 3


def test_https_port_refuses_bad_requests_and_keeps_serving(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given
    hub = gateway_hub(dev_hub, manifest(["a", "caller", "off"], {}))
    start_probe(module_process, hub, "a", tmp_path)
    hub.wait_connected("a")
    token = module_token(hub, "caller")
    good = json.dumps({"methodName": "echo", "payload": {"n": 1}}).encode()
    wrong_key = sas.make_token(
        sas.new_key(),
        sas.resource_uri("edgeloop-dev.azure-devices.net", "edgeloop-dev", "caller"),
        int(time.time()) + 600,
    )

    # when
    answers = {
        "ok": https_post(hub, methods_path("a"), good, {"Authorization": token}),
        "wrong-sas": https_post(hub, methods_path("a"), good, {"Authorization": wrong_key}),
        "no-auth": https_post(hub, methods_path("a"), good, {}),
        "not-json": https_post(hub, methods_path("a"), b"{payload", {"Authorization": token}),
        "no-method-name": https_post(hub, methods_path("a"), b'{"payload": 1}', {"Authorization": token}),
        "unknown-module": https_post(hub, methods_path("ghost"), good, {"Authorization": token}),
        "disconnected": https_post(hub, methods_path("off"), good, {"Authorization": token}),
        "other-device": https_post(hub, methods_path("a", "elsewhere"), good, {"Authorization": token}),
        "timeout": https_post(
            hub,
            methods_path("a"),
            json.dumps(
                {"methodName": "sleep", "payload": {"seconds": 3}, "responseTimeoutInSeconds": 1}
            ).encode(),
            {"Authorization": token},
        ),
    }

    # then
    assert answers["ok"] == (200, {"status": 200, "payload": {"echo": {"n": 1}}})
    statuses = {name: status for name, (status, _) in answers.items()}
    assert statuses == {
        "ok": 200,
        "wrong-sas": 401,
        "no-auth": 401,
        "not-json": 400,
        "no-method-name": 400,
        "unknown-module": 404,
        "disconnected": 404,
        "other-device": 404,
        "timeout": 504,
    }
    assert "signature" in answers["wrong-sas"][1]["message"]
    assert "methodName" in answers["no-method-name"][1]["message"]
    assert "'off' is not connected" in answers["disconnected"][1]["message"]
    assert hub.invoke("a", "echo", {"still": "up"})["status"] == 200


def test_websockets_module_sends_receives_twin_and_methods(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given: "w" uses MQTT over WebSockets, its output goes upstream; "b" (plain MQTT) sends to w
    doc = manifest(
        ["w", "b"],
        {"w-up": "FROM /messages/modules/w/outputs/* INTO $upstream", "b-to-w": route("b", "w", "fromb")},
        desired={"w": {"label": "start"}},
    )
    hub = gateway_hub(dev_hub, doc)
    start_probe(module_process, hub, "b", tmp_path)
    hub.wait_connected("b", inputs=True)
    record = tmp_path / "w.jsonl"
    module_process(hub, "w", package=SDK_CALLS, env={"SDK_ACTION": "websockets", "SDK_RECORD": str(record)})
    wait_for(
        lambda: any(e["event"] == "sent" for e in read_jsonl(record)), what="the websockets module to send"
    )
    hub.wait_connected("w", inputs=True)

    # when
    method = hub.invoke("w", "ping", {"n": 7})
    hub.patch_desired("w", {"label": "patched"})
    assert hub.invoke("b", "send", {"count": 2})["status"] == 200

    # then
    twin = next(e["twin"] for e in read_jsonl(record) if e["event"] == "twin")
    inputs = wait_for(
        lambda: len(events(record, "input")) >= 2 and events(record, "input"), what="two inputs"
    )
    patch = wait_for(
        lambda: [e for e in read_jsonl(record) if e["event"] == "desired"], what="a desired patch"
    )
    upstream = wait_for(hub.upstream, what="w's message upstream")
    assert method == {"status": 200, "payload": {"echo": {"n": 7}}}
    assert twin["desired"]["label"] == "start"
    assert hub.wait_reported("w", lambda r: r.get("transport") == "websockets")
    assert patch[0]["patch"]["label"] == "patched"
    assert {e["input"] for e in inputs} == {"fromb"}
    assert (upstream[0]["module"], upstream[0]["output"], upstream[0]["body"]) == (
        "w",
        "out",
        {"hello": "websockets"},
    )
    assert hub.status()["stats"]["websocket_connections"] >= 1


def _ws_handshake(sock: ssl.SSLSocket) -> bytes:
    key = base64.b64encode(b"0123456789abcdef").decode()
    headers = {
        "Host": "x",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": "mqtt",
    }
    lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    sock.sendall(f"GET /$iothub/websocket HTTP/1.1\r\n{lines}\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    return head


def _read_until_closed(sock: ssl.SSLSocket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (ConnectionError, ssl.SSLError):
        pass
    return data


@pytest.mark.parametrize(
    ("frames", "close_code"),
    [
        (b"\x82\x05hello", 1002),  # unmasked client frame
        (b"\x81\x84abcd" + bytes(x ^ y for x, y in zip(b"mqtt", b"abcd", strict=True)), 1003),  # text frame
        (b"\xf2\x80abcd", 1002),  # reserved bits
        (b"\x82\xff" + struct.pack("!Q", 1 << 40) + b"abcd", 1009),  # a terabyte frame announced
    ],
    ids=["unmasked", "text", "reserved-bits", "oversize"],
)
def test_garbage_websocket_frames_close_only_that_connection(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path, frames: bytes, close_code: int
) -> None:
    # given
    hub = gateway_hub(dev_hub, manifest(["a"], {}))
    start_probe(module_process, hub, "a", tmp_path)
    hub.wait_connected("a")

    # when
    with tls_socket(hub) as sock:
        head = _ws_handshake(sock)
        sock.sendall(frames)
        closing = _read_until_closed(sock)
    with tls_socket(hub) as sock:
        sock.sendall(b"\x00\x01garbage that is no HTTP request\r\n\r\n")
        not_http = _read_until_closed(sock)

    # then
    assert head.startswith(b"HTTP/1.1 101 ")
    assert closing[:2] == b"\x88\x02"
    assert struct.unpack("!H", closing[2:4])[0] == close_code
    assert not_http.startswith(b"HTTP/1.1 400 ")
    assert hub.invoke("a", "echo", {"still": "up"})["status"] == 200
    assert hub.status()["stats"]["websocket_errors"] >= 1
