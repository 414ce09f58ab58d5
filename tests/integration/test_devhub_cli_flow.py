"""``edgeloop dev`` as a person uses it against a running hub: upstream with system properties,
status of a disconnected module, connection strings, ``twin --wait``, ``@file`` payloads,
``up --detach`` / ``down`` from a subfolder of the solution."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeloop.cli import main
from edgeloop.devhub.paths import StatePaths
from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import PROBE, manifest
from tests.support import wait_for

pytestmark = pytest.mark.integration


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_upstream_status_and_connection_string_as_a_person_reads_them(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: probe "a" sends upstream, then stops (its session stays stored)
    hub = dev_hub(manifest(["a"], {"up": "FROM /messages/modules/a/outputs/* INTO $upstream"}))
    state = str(hub.state_dir)
    probe = module_process(hub, "a", package=PROBE, env={"PROBE_SOURCE": "a"})
    hub.wait_connected("a")
    assert hub.invoke("a", "send", {"count": 1})["status"] == 200
    wait_for(hub.upstream, what="a message upstream")
    probe.stop()
    wait_for(lambda: not hub.status()["modules"]["a"]["connected"], what="a to disconnect")

    # when
    _, upstream_out, _ = run_cli(capsys, "dev", "upstream", "--state-dir", state)
    status_code, status_out, _ = run_cli(capsys, "dev", "status", "-o", "table", "--state-dir", state)
    _, status_json, _ = run_cli(capsys, "dev", "status", "--state-dir", state)
    conn_code, conn_out, _ = run_cli(capsys, "dev", "connection-string", "a", "--state-dir", state)

    # then: IoT Hub's system properties are on the entry
    system = json.loads(upstream_out.splitlines()[0])["system"]
    assert system["connectionModuleId"] == "a"
    assert system["connectionDeviceId"] == "edgeloop-dev"
    assert system["outputName"] == "out"
    assert system["contentType"] == "application/json"
    assert system["contentEncoding"] == "utf-8"
    assert system["messageId"]
    # and the disconnected module's stored session shows
    assert status_code == 0
    row = next(line for line in status_out.splitlines() if line.startswith("a "))
    assert "stored" in row
    assert "methods" in row
    assert any(
        s.startswith("$iothub/methods") for s in json.loads(status_json)["modules"]["a"]["subscriptions"]
    )
    # and the connection string, read while the hub runs, holds the module's real key
    assert conn_code == 0
    fields = dict(part.split("=", 1) for part in conn_out.strip().split(";"))
    assert fields["ModuleId"] == "a"
    assert fields["GatewayHostName"] == hub.address
    check = subprocess.run(
        [sys.executable, "-m", "tests.integration.modules.connect_check"],
        env=subprocess_env({**hub.module_env("a"), "CHECK_KEY": fields["SharedAccessKey"],
                            "CHECK_CA": str(hub.paths.certs / "ca.pem")}),
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert json.loads(check.stdout.strip().splitlines()[-1]) == {"result": "connected"}


def test_twin_wait_and_payload_files(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given
    hub = dev_hub(manifest(["a"], {}))
    state = str(hub.state_dir)
    module_process(hub, "a", package=PROBE, env={"PROBE_SOURCE": "a"})
    hub.wait_connected("a")
    (tmp_path / "good.json").write_text(json.dumps({"label": "from-file"}))
    (tmp_path / "payload.json").write_text(json.dumps({"x": 1}))

    # when
    applied = run_cli(capsys, "dev", "twin", "a", "--desired", f"@{tmp_path / 'good.json'}", "--wait",
                      "--state-dir", state)  # fmt: skip
    refused = run_cli(
        capsys, "dev", "twin", "a", "--desired", '{"threshold": -1}', "--wait", "--state-dir", state
    )
    invoked = run_cli(capsys, "dev", "invoke", "a", "echo", "--payload", f"@{tmp_path / 'payload.json'}",
                      "-o", "table", "--state-dir", state)  # fmt: skip
    unknown_method = run_cli(capsys, "dev", "invoke", "a", "nosuch", "--state-dir", state)

    # then
    assert applied[0] == 0
    assert json.loads(applied[1])["properties"]["reported"]["config"]["label"] == "from-file"
    assert refused[0] == 1
    assert "edgeloop dev twin: error: module 'a' refused desired version 3" in refused[2]
    assert "edgeloop dev twin: error: key 'threshold' = -1: " in refused[2]
    assert invoked[0] == 0
    assert invoked[1].splitlines()[0].split() == ["KEY", "VALUE"]
    assert "payload.echo.x" in invoked[1]
    assert unknown_method[0] == 1
    assert "edgeloop dev invoke: error: a.nosuch answered 404:" in unknown_method[2]


def test_up_detach_and_down_from_a_subfolder_of_the_solution(tmp_path: Path, loopback_address: str) -> None:
    # given: a solution folder with its manifest; commands run in a subfolder, no --state-dir
    root = tmp_path / "solution"
    sub = root / "modules" / "deep"
    sub.mkdir(parents=True)
    (root / "deployment.template.json").write_text(json.dumps(manifest(["a"], {})))
    env = subprocess_env()

    def edgeloop(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "edgeloop", *argv], cwd=sub, env=env,
                              capture_output=True, text=True, timeout=90)  # fmt: skip

    # when
    up = edgeloop("dev", "up", "--detach", "--bind", loopback_address, "--no-azurite")
    status = edgeloop("dev", "status", "-o", "json")
    again = edgeloop("dev", "up", "--detach", "--bind", loopback_address)
    down = edgeloop("dev", "down")
    after = edgeloop("dev", "status")

    # then
    assert up.returncode == 0, up.stderr
    assert "edgeloop dev down" in up.stdout
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["hub"]["stateDir"] == str(root / ".edgeloop" / "dev")
    assert again.returncode == 1
    assert "already runs" in again.stderr
    assert down.returncode == 0, down.stderr
    assert "stopped" in down.stdout
    assert after.returncode == 1
    assert "edgeloop dev status: error: no dev hub answers" in after.stderr
    assert not StatePaths.of(root / ".edgeloop" / "dev").info.exists()
