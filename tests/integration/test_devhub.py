"""The dev hub with the real SDK: test modules run as processes against a hub process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devhub.testing import HubProcess
from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import PROBE, manifest, route
from tests.support import wait_for

pytestmark = pytest.mark.integration


def records(path: Path, event: str = "input") -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    return [e for e in (json.loads(line) for line in lines if line.strip()) if e["event"] == event]


def start_probe(module_process: ModuleFactory, hub: HubProcess, name: str, tmp_path: Path) -> Path:
    record = tmp_path / f"{name}.jsonl"
    module_process(hub, name, package=PROBE, env={"PROBE_RECORD": str(record), "PROBE_SOURCE": name})
    return record


def test_routes_apply_where_conditions_and_upstream_gets_the_rest(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given: even samples of zone 'a' go to b; sample_id starting "a-00000" and odd go upstream
    doc = manifest(
        ["a", "b"],
        {
            "evens": route(
                "a", "b", "evens", where="$body.attributes.parity = 'even' AND $body.vector[0] >= 2"
            ),
            "odds": "FROM /messages/modules/a/outputs/* WHERE $body.attributes.parity <> 'even' "
            "AND STARTS_WITH(sample_id, 'a-') AND $connectionModuleId = 'a' INTO $upstream",
        },
    )
    hub = dev_hub(doc)
    received = start_probe(module_process, hub, "b", tmp_path)
    start_probe(module_process, hub, "a", tmp_path)
    hub.wait_connected("b", inputs=True)
    hub.wait_connected("a")

    # when
    assert hub.invoke("a", "send", {"count": 8})["status"] == 200

    # then
    got = wait_for(lambda: len(records(received)) >= 3 and records(received), what="three routed messages")
    upstream = wait_for(lambda: len(hub.upstream()) >= 4 and hub.upstream(), what="four upstream messages")
    assert sorted(s for r in got for s in r["samples"]) == ["a-000002", "a-000004", "a-000006"]
    assert {r["input"] for r in got} == {"evens"}
    assert got[0]["properties"]["$.cmid"] == "a"
    assert [u["body"]["seq"] for u in upstream] == [1, 3, 5, 7]
    assert upstream[0]["module"] == "a"
    assert upstream[0]["output"] == "out"


def test_twin_at_start_desired_patches_and_reported_properties(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given
    hub = dev_hub(manifest(["a"], {}, desired={"a": {"label": "from-manifest", "threshold": 1.5}}))
    record = start_probe(module_process, hub, "a", tmp_path)
    hub.wait_connected("a")

    # when
    reported_at_start = hub.wait_reported("a", lambda r: r.get("config", {}).get("label") == "from-manifest")
    twin = hub.patch_desired("a", {"label": "patched"})
    reported = hub.wait_reported("a", lambda r: r.get("config", {}).get("label") == "patched")
    refused = hub.patch_desired("a", {"threshold": -1})
    rejected = hub.wait_reported("a", lambda r: (r.get("configError") or {}).get("version") is not None)

    # then
    assert reported_at_start["config"] == {"label": "from-manifest", "threshold": 1.5}
    assert twin["properties"]["desired"] == {"label": "patched", "threshold": 1.5, "$version": 2}
    assert reported["configVersion"] == 2
    assert refused["properties"]["desired"]["$version"] == 3
    assert "threshold" in rejected["configError"]["reason"]
    assert rejected["config"]["label"] == "patched"
    assert [e["config"]["label"] for e in records(record, "config")] == ["from-manifest", "patched"]


@pytest.mark.parametrize(
    ("method", "payload", "raw", "timeout", "status"),
    [
        ("echo", {"x": [1, 2]}, None, 10.0, 200),
        ("send", {"count": "many"}, None, 10.0, 400),
        ("nosuch", None, None, 10.0, 404),
        ("echo", None, b"{not json", 10.0, 400),
        ("sleep", {"seconds": 2.5}, None, 1.0, 504),
    ],
    ids=["ok", "module-400", "unknown-method-404", "hub-400-not-json", "timeout-504"],
)
def test_direct_methods_answer_with_statuses(
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    tmp_path: Path,
    method: str,
    payload: Any,
    raw: bytes | None,
    timeout: float,
    status: int,
) -> None:
    # given
    hub = dev_hub(manifest(["a"], {}))
    start_probe(module_process, hub, "a", tmp_path)
    hub.wait_connected("a")

    # when
    result = hub.invoke("a", method, payload, timeout, raw=raw)

    # then
    assert result["status"] == status
    if status == 200:
        assert result["payload"] == {"echo": payload}


def test_method_to_a_module_that_is_not_connected_is_404(dev_hub: HubFactory) -> None:
    # given
    hub = dev_hub(manifest(["a"], {}))

    # when
    result = hub.invoke("a", "echo", {})

    # then
    assert result["status"] == 404
    assert "not connected" in result["payload"]["error"]


def run_connect_check(env: dict[str, str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.modules.connect_check"],
        env=subprocess_env(env),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert lines, done.stdout + done.stderr
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def test_right_key_connects_and_wrong_key_is_refused(dev_hub: HubFactory) -> None:
    # given
    hub = dev_hub(manifest(["a"], {}))
    env = hub.module_env("a")
    ca = str(hub.paths.certs / "ca.pem")
    wrong = "d3Jvbmcga2V5IHdyb25nIGtleSB3cm9uZyBrZXkgd3Jvbmc="

    # when
    good = run_connect_check(env)
    bad = run_connect_check({**env, "CHECK_KEY": wrong, "CHECK_CA": ca})

    # then
    assert good["result"] == "connected"
    assert bad["result"] == "CredentialError"
    assert hub.status()["stats"]["auth_failures"] == 1


def test_certificate_name_mismatch_is_refused(dev_hub: HubFactory, loopback_address: str) -> None:
    # given: the certificate names another host than the address modules connect to
    hub = dev_hub(
        manifest(["a"], {}), address=loopback_address, extra_args=["--gateway-host", "edgehub.invalid"]
    )
    env = {**hub.module_env("a"), "IOTEDGE_GATEWAYHOSTNAME": loopback_address}

    # when
    result = run_connect_check(env)

    # then
    assert result["result"] != "connected"
    assert "TlsExchangeAuthError" in result["cause"]
    assert hub.status()["stats"].get("connects", 0) == 0
