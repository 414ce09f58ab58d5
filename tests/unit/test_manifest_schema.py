"""``manifest check --schema`` finds the shipped schema or fails with a clear message; an
arm32v7 manifest that cannot resolve a module image says why."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeloop import cli
from edgeloop.errors import ConfigError
from edgeloop.manifest import check_manifest, load_module_specs
from edgeloop.manifest_schema import DEFAULT_SCHEMA, load_schema, shipped_schemas
from tests.conftest import REPO_ROOT
from tests.unit.test_manifest import generated, layout, template_of

__all__ = ["layout"]  # the fixture, used by name below


def test_the_deployment_schema_ships_with_the_package_and_its_notice() -> None:
    assert DEFAULT_SCHEMA in shipped_schemas()
    shipped = REPO_ROOT / "src" / "edgeloop" / "deploy_schemas"
    assert "Apache License 2.0" in (shipped / "NOTICE.md").read_text()
    assert load_schema(DEFAULT_SCHEMA)["title"].startswith("JSON schema for Azure IoT Edge Deployment")


def test_a_schema_path_is_read_and_a_missing_one_is_named(tmp_path: Path) -> None:
    own = tmp_path / "mine.json"
    own.write_text('{"type": "object"}')
    assert load_schema(str(own)) == {"type": "object"}
    with pytest.raises(ConfigError, match=r"schema 'nope.json' not found: .* ships only azure-iot-edge"):
        load_schema("nope.json")
    with pytest.raises(ConfigError, match="not found"):
        load_schema(str(tmp_path / DEFAULT_SCHEMA))  # a path that does not exist is not a name


def test_cli_checks_a_generated_manifest_with_the_shipped_schema(
    layout: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: a generated manifest, in a folder that holds no schema file
    monkeypatch.chdir(layout)
    Path("config").mkdir()
    Path("config/deployment.amd64.json").write_text(json.dumps(generated(template_of(layout))))
    # when
    ok = cli.main(["manifest", "check", "config/deployment.amd64.json", "--schema", DEFAULT_SCHEMA])
    missing = cli.main(["manifest", "check", "config/deployment.amd64.json", "--schema", "v9.json"])
    # then
    out = capsys.readouterr().out
    assert (ok, missing) == (0, 2), out
    assert "config/deployment.amd64.json: ok" in out
    assert "edgeloop manifest check: schema 'v9.json' not found" in out


def test_an_arm32v7_manifest_names_the_modules_that_do_not_build_there(layout: Path) -> None:
    # given: what iotedgedev genconfig -P arm32v7 makes: only the uploader has an arm32v7 image
    doc = generated(template_of(layout))
    modules = doc["modulesContent"]["$edgeAgent"]["properties.desired"]["modules"]
    for name, module in modules.items():
        module["settings"]["image"] = (
            "r.example/edgeloop-uploader:0.1.0-arm32v7" if name == "uploader" else f"${{MODULES.{name}}}"
        )
    # when
    problems = check_manifest(doc, specs=load_module_specs(layout / "modules"))
    # then
    messages = [p.message for p in problems]
    assert len(messages) == 3, messages
    capture = next(m for m in messages if "MODULES.capture" in m)
    assert "builds no 'arm32v7' image, so this manifest cannot run on arm32v7" in capture
    assert "use the amd64 or arm64v8 manifest, or leave the module out" in capture
