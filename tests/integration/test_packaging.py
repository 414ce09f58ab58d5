"""Packaging with the real tools: iotedgedev generates the deployment manifests offline, which
then pass the official schema and the project's own checks; hadolint passes every Dockerfile;
check-jsonschema passes the GitHub workflows against its built-in (offline) schema.

iotedgedev lives in its own virtual environment (its dependencies clash with the project's),
created on first use under .edgeloop/tools/ and reused after (about 40 s to create).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from edgeloop.manifest import check_manifest, load_env_names, load_module_specs
from tests.conftest import REPO_ROOT
from tests.packaging_layout import (
    MODULES,
    REGISTRY,
    TEMPLATES,
    copy_layout,
    deployment_schema,
    ensure_iotedgedev,
    genconfig,
    write_dotenv,
)

pytestmark = pytest.mark.integration

PLATFORMS = ("amd64", "arm64v8")


def _tool(name: str) -> str:
    """A console script installed beside this interpreter (the dev extras), else on PATH."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -e '.[dev]'")
    return found


@pytest.fixture(scope="session")
def iotedgedev() -> Path:
    return ensure_iotedgedev()


@pytest.fixture(scope="session")
def schema() -> dict[str, Any]:
    path = deployment_schema()
    if path is None:
        pytest.fail(
            "azure-iot-edge-deployment-2.0.json not found: set EDGELOOP_DEPLOYMENT_SCHEMA "
            "or put it in ../shared/schemas/"
        )
    loaded: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


@pytest.fixture(scope="module")
def solution(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_layout(tmp_path_factory.mktemp("solution"))
    write_dotenv(root)
    return root


@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("template", list(TEMPLATES))
def test_genconfig_output_passes_the_schema_and_the_project_checks(
    iotedgedev: Path, solution: Path, schema: dict[str, Any], template: str, platform: str
) -> None:
    # given
    specs = load_module_specs(solution / "modules")
    # when
    generated = genconfig(iotedgedev, solution, template, platform)
    # then
    problems = check_manifest(
        generated, specs=specs, env_names=load_env_names(solution / ".env.template"), schema=schema
    )
    assert [str(p) for p in problems] == []
    modules = generated["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    suffix = f"{platform}.debug" if "debug" in template else platform
    assert {name: m["settings"]["image"] for name, m in modules.items()} == {
        name: f"{REGISTRY}/edgeloop-{name}:0.1.0-{suffix}" for name in MODULES
    }
    registry = generated["modulesContent"]["$edgeAgent"]["properties.desired"]["runtime"]["settings"]
    assert registry["registryCredentials"]["registry"]["address"] == REGISTRY


def test_genconfig_output_with_a_broken_route_fails_the_project_checks(
    iotedgedev: Path, tmp_path: Path, schema: dict[str, Any]
) -> None:
    # given: a route to an input the filter does not declare, which the schema cannot see
    root = copy_layout(tmp_path)
    write_dotenv(root)
    template = json.loads((root / "deployment.template.json").read_text())
    routes = template["modulesContent"]["$edgeHub"]["properties.desired"]["routes"]
    routes["typo"] = (
        'FROM /messages/modules/capture/outputs/frames INTO BrokeredEndpoint("/modules/filter/inputs/frame")'
    )
    (root / "deployment.template.json").write_text(json.dumps(template))
    # when
    generated = genconfig(iotedgedev, root, "deployment.template.json", "amd64")
    problems = check_manifest(generated, specs=load_module_specs(root / "modules"), schema=schema)
    # then
    assert [p.where for p in problems] == ["$edgeHub.routes.typo"]


def test_hadolint_passes_every_dockerfile() -> None:
    # given
    dockerfiles = sorted((REPO_ROOT / "modules").glob("*/Dockerfile.*"))
    assert {p.parent.name for p in dockerfiles} == set(MODULES)
    # when
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", "--failure-threshold", "style", *map(str, dockerfiles)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_hadolint_reports_an_unpinned_install(tmp_path: Path) -> None:
    # given: the check above can fail
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("FROM python:3.12-slim\nRUN pip install requests\n")
    # when
    result = subprocess.run(
        [_tool("hadolint"), "--no-color", str(dockerfile)], capture_output=True, text=True
    )
    # then
    assert result.returncode != 0
    assert "DL3013" in result.stdout


def test_workflows_pass_the_github_workflow_schema() -> None:
    # given
    workflows = sorted((REPO_ROOT / ".github" / "workflows").glob("*.yml"))
    assert {p.name for p in workflows} >= {"ci.yml", "build-and-deploy.yml"}
    # when
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", *map(str, workflows)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then
    assert result.returncode == 0, result.stdout + result.stderr


def test_workflow_schema_check_rejects_a_broken_workflow(tmp_path: Path) -> None:
    # given
    broken = tmp_path / "broken.yml"
    broken.write_text("on: push\njobs:\n  build:\n    steps: []\n")
    # when
    result = subprocess.run(
        [_tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(broken)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # then
    assert result.returncode != 0
