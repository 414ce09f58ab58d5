"""The VS Code launch configurations agree with the modules' debug ports and the debug template."""

from __future__ import annotations

import json
from typing import Any

import pytest

from edgeloop.manifest import load_module_specs
from tests.conftest import REPO_ROOT
from tests.packaging_layout import MODULES


def launch_configs() -> list[dict[str, Any]]:
    configs: list[dict[str, Any]] = json.loads((REPO_ROOT / ".vscode" / "launch.json").read_text())[
        "configurations"
    ]
    return configs


@pytest.mark.parametrize("module", MODULES)
def test_attach_config_uses_the_port_the_debug_template_publishes(module: str) -> None:
    # given
    spec = load_module_specs(REPO_ROOT / "modules")[module]
    debug = json.loads((REPO_ROOT / "deployment.debug.template.json").read_text())
    options = debug["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"][module]["settings"]
    published = options["createOptions"]["HostConfig"]["PortBindings"]["5678/tcp"][0]["HostPort"]
    # when
    attach = [c for c in launch_configs() if c["request"] == "attach" and f"/edgeloop_{module}" in str(c)]
    # then
    assert [c["connect"]["port"] for c in attach] == [spec.debug_port]
    assert str(spec.debug_port) == published
    assert {m["remoteRoot"] for m in attach[0]["pathMappings"]} == {
        f"/app/edgeloop_{module}",
        "/app/edgeloop",
    }


@pytest.mark.parametrize("module", MODULES)
def test_launch_config_runs_the_module_with_the_dev_hub_environment(module: str) -> None:
    # when
    launch = [c for c in launch_configs() if c["request"] == "launch" and c["module"] == f"edgeloop_{module}"]
    # then
    assert len(launch) == 1
    assert launch[0]["envFile"].endswith(f".edgeloop/dev/env/{module}.env")
