"""prepare-device.sh makes every folder the manifest binds, owned by the modules' user; the
observability layer is a complete layered deployment."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

EDGE_CONFIG = REPO_ROOT / "edge-config"
HOST_ROOT = "/var/lib/edgeloop/"


def _agent_modules() -> dict[str, dict[str, object]]:
    doc = json.loads((REPO_ROOT / "deployment.template.json").read_text())
    desired = doc["modulesContent"]["$edgeAgent"]["properties.desired"]
    return {**desired["systemModules"], **desired["modules"]}


def _bound_folders() -> dict[str, str]:
    """Host folder under /var/lib/edgeloop -> the module binding it."""
    found = {}
    for name, module in _agent_modules().items():
        options = module["settings"]["createOptions"]  # type: ignore[index]
        for bind in options.get("HostConfig", {}).get("Binds", []):
            host = bind.split(":")[0]
            assert host.startswith(HOST_ROOT), f"{name} binds {host}, outside {HOST_ROOT}"
            found[host.removeprefix(HOST_ROOT)] = name
    return found


def test_the_modules_user_is_the_one_prepare_device_uses() -> None:
    users = {
        re.search(r"^USER (\d+):", p.read_text(), re.M).group(1)  # type: ignore[union-attr]
        for p in REPO_ROOT.glob("modules/*/Dockerfile.*")
    }
    assert users == {"10001"}
    assert 'MODULE_UID="${EDGELOOP_MODULE_UID:-10001}"' in (EDGE_CONFIG / "prepare-device.sh").read_text()


@pytest.mark.skipif(os.geteuid() != 0, reason="prepare-device.sh changes owners: run as root")
def test_prepare_device_creates_every_bound_folder_owned_by_its_user(tmp_path: Path) -> None:
    # when
    env = {**os.environ, "EDGELOOP_HOST_ROOT": str(tmp_path / "edgeloop")}
    subprocess.run(["bash", str(EDGE_CONFIG / "prepare-device.sh")], env=env, check=True, capture_output=True)
    # then
    for folder, module in _bound_folders().items():
        path = tmp_path / "edgeloop" / folder
        assert path.is_dir(), f"{folder} (bound by {module}) was not created"
        stat = path.stat()
        if module == "edgeHub":
            assert stat.st_uid == 1000
        elif folder == "secrets":
            assert (stat.st_uid, stat.st_gid, stat.st_mode & 0o777) == (0, 10001, 0o750)
        else:
            assert stat.st_uid == 10001, f"{folder} is owned by {stat.st_uid}"


def test_the_observability_layer_is_a_layered_deployment_that_points_modules_at_jaeger() -> None:
    doc = json.loads((EDGE_CONFIG / "observability.layered.json").read_text())
    agent = doc["content"]["modulesContent"]["$edgeAgent"]
    for module in ("capture", "inference", "filter", "uploader"):
        endpoint = agent[f"properties.desired.modules.{module}.env.OTEL_EXPORTER_OTLP_ENDPOINT"]
        assert endpoint == {"value": "http://jaeger:4318"}
    assert agent["properties.desired.modules.jaeger"]["env"]["JAEGER_LISTEN_HOST"] == {"value": "0.0.0.0"}
    scraped = agent["properties.desired.modules.metricscollector"]["env"]["MetricsEndpointsCSV"]["value"]
    assert all(f"http://{m}:9600/metrics" in scraped for m in ("capture", "inference", "filter", "uploader"))
