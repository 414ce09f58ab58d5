"""The device runtime configurations, layered deployments and twin patches in edge-config/."""

from __future__ import annotations

import copy
import inspect
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from edgeloop.runtime import EdgeModule, merge_patch
from tests.conftest import REPO_ROOT

EDGE_CONFIG = REPO_ROOT / "edge-config"
LAYERS = sorted((EDGE_CONFIG / "layers").glob("*.layered.json"))
PATCHES = sorted((EDGE_CONFIG / "twin-patches").glob("*.json"))


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO_ROOT / "deployment.template.json").read_text())
    return loaded


def config_model(module: str) -> type[BaseModel]:
    """The module's config model, from its EdgeModule subclass in edgeloop_<module>.module."""
    code = pytest.importorskip(f"edgeloop_{module}.module")
    for _, cls in inspect.getmembers(code, inspect.isclass):
        if issubclass(cls, EdgeModule) and cls is not EdgeModule and hasattr(cls, "config_model"):
            return cls.config_model
    raise AssertionError(f"no EdgeModule with a config_model in edgeloop_{module}.module")


def desired_defaults(module: str) -> dict[str, Any]:
    defaults: dict[str, Any] = template()["modulesContent"][module]["properties.desired"]
    return defaults


@pytest.mark.parametrize(
    ("name", "source", "attestation"),
    [
        ("config.connection-string.toml", "manual", None),
        ("config.dps-symmetric-key.toml", "dps", "symmetric_key"),
        ("config.dps-x509.toml", "dps", "x509"),
    ],
)
def test_runtime_config_provisions_without_committed_secrets(
    name: str, source: str, attestation: str | None
) -> None:
    # given
    config = tomllib.loads((EDGE_CONFIG / name).read_text())
    # when
    provisioning = config["provisioning"]
    # then
    assert provisioning["source"] == source
    assert config["agent"]["config"]["image"] == "mcr.microsoft.com/azureiotedge-agent:1.5"
    if attestation is None:
        assert provisioning["connection_string"].startswith("<")
        return
    method = provisioning["attestation"]
    assert method["method"] == attestation
    secrets = [method.get("symmetric_key", {}).get("uri"), method.get("identity_pk")]
    assert all(s is None or s.startswith("file:///") for s in secrets)
    assert "value" not in method.get("symmetric_key", {})


@pytest.mark.parametrize("layer", LAYERS, ids=lambda p: p.name)
def test_layered_deployment_sets_twin_paths_of_known_modules(layer: Path) -> None:
    # given
    modules = template()["modulesContent"]
    # when
    content = json.loads(layer.read_text())["content"]["modulesContent"]
    # then
    for module, properties in content.items():
        assert module in modules
        assert all(key.startswith("properties.desired.") for key in properties), properties


def _layer_patches() -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for layer in LAYERS:
        for module, properties in json.loads(layer.read_text())["content"]["modulesContent"].items():
            patch: dict[str, Any] = {}
            for key, value in properties.items():
                patch[key.removeprefix("properties.desired.")] = value
            out.append((layer.name, module, patch))
    for file in PATCHES:
        out.append((file.name, file.name.split(".")[0], json.loads(file.read_text())))
    return out


@pytest.mark.parametrize(
    ("source", "module", "patch"), _layer_patches(), ids=lambda v: v if isinstance(v, str) else ""
)
def test_override_validates_against_the_module_config(
    source: str, module: str, patch: dict[str, Any]
) -> None:
    # given
    model = config_model(module)
    # when
    merged = copy.deepcopy(desired_defaults(module))
    merge_patch(merged, patch)
    # then
    model.model_validate(merged)
