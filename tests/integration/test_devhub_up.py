"""``edgeloop dev up`` runs the manifest's modules as processes under a hub, with Azurite."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edgeloop.devhub.control import ControlClient, ControlError
from edgeloop.devhub.paths import StatePaths
from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration.modules.manifests import manifest
from tests.support import wait_for

pytestmark = pytest.mark.integration

# A module as the checkout would hold it: modules/echo/edgeloop_echo, on the shared runtime.
ECHO_MAIN = """
import json, os, sys
from pydantic import BaseModel, ConfigDict
from edgeloop.runtime import EdgeModule, MethodRegistry, run_module

class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

class Echo(EdgeModule[Config]):
    name = "echo"
    config_model = Config

    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("crash", lambda _p: os._exit(3), payload_model=None)

    def start(self, ctx) -> None:
        state = os.environ["EDGELOOP_STATE_DIR"]
        with open(os.path.join(state, "starts.jsonl"), "a") as out:
            out.write(json.dumps({"pid": os.getpid(), "env": dict(os.environ)}) + "\\n")

sys.exit(run_module(Echo()))
"""


def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "checkout"
    package = root / "modules" / "echo" / "edgeloop_echo"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "__main__.py").write_text(ECHO_MAIN)
    (root / "src").symlink_to(REPO_ROOT / "src")
    doc = manifest(["echo", "external"], {}, env={"echo": {"EDGELOOP_STATE_DIR": "/state/echo"}})
    agent = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    agent["echo"]["settings"]["createOptions"] = {"HostConfig": {"Binds": ["/var/lib/thing/data:/state"]}}
    agent["external"]["settings"]["image"] = "mcr.microsoft.com/azureiotedge-simulated-temperature-sensor:1.5"
    (root / "deployment.template.json").write_text(json.dumps(doc))
    return root


def start_dev_up(root: Path, state: Path, address: str, env: dict[str, str]) -> subprocess.Popen[str]:
    """``edgeloop dev up`` as a user runs it in the checkout ``root``, output captured."""
    command = [sys.executable, "-m", "edgeloop", "dev", "up", "--state-dir", str(state), "--bind", address]
    return subprocess.Popen(
        command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def module_connected(client: ControlClient, module: str) -> bool:
    """Whether the running hub sees ``module`` connected (False while the hub is not up yet)."""
    try:
        return bool(client.status()["modules"][module]["connected"])
    except ControlError:
        return False


def test_dev_up_runs_restarts_and_stops_modules(tmp_path: Path, loopback_address: str) -> None:
    # given
    root = checkout(tmp_path)
    state = tmp_path / "state"
    (state / "volumes" / "data" / "echo").mkdir(parents=True)
    starts = state / "volumes" / "data" / "echo" / "starts.jsonl"
    env = subprocess_env({"OTEL_SERVICE_NAME": "edgeloop-test", "UNRELATED_SECRET": "x"})
    up = start_dev_up(root, state, loopback_address, env)
    client = ControlClient(StatePaths.of(state).control_socket)

    def connected() -> bool:
        return module_connected(client, "echo")

    try:
        # when: it starts, then the module crashes
        wait_for(connected, 60, "echo to connect")
        # connected comes before the module's start() has run: wait for what it writes
        wait_for(lambda: starts.exists() and starts.read_text().strip(), 30, "echo to start")
        first = json.loads(starts.read_text().splitlines()[0])
        crashed = client.invoke("echo", "crash", b"null", timeout=2)
        wait_for(lambda: len(starts.read_text().splitlines()) == 2, 30, "echo to be restarted")
        wait_for(connected, 30, "echo to reconnect")
        azurite = client.status()["hub"]["services"]["azurite"]
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)

    # then
    env_seen = first["env"]
    assert crashed["status"] == 504
    assert env_seen["IOTEDGE_MODULEID"] == "echo"
    assert env_seen["EDGELOOP_STATE_DIR"] == str(state / "volumes" / "data" / "echo")
    assert env_seen["OTEL_SERVICE_NAME"] == "edgeloop-test"
    assert "UNRELATED_SECRET" not in env_seen
    assert env_seen["EDGELOOP_STORAGE_CONNECTION_STRING"].startswith("DefaultEndpointsProtocol=http;")
    # and dev status says where Azurite listens and in which variable modules got it
    assert azurite["moduleEnv"] == "EDGELOOP_STORAGE_CONNECTION_STRING"
    assert f"BlobEndpoint={azurite['blobEndpoint']}" in env_seen["EDGELOOP_STORAGE_CONNECTION_STRING"]
    assert "external: skipped" in output
    assert re.search(r"echo: exited with 3 .*; restarting in 1s", output), output
    assert up.returncode == 0, output
    second_pid = json.loads(starts.read_text().splitlines()[1])["pid"]
    for pid in (first["pid"], second_pid):
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert (state / "env" / "external.env").exists()
