"""Deployment manifests for dev hub tests, built in code."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PROBE = "tests.integration.modules.probe"


def manifest(
    modules: list[str],
    routes: Mapping[str, Any],
    *,
    desired: Mapping[str, dict[str, Any]] | None = None,
    env: Mapping[str, dict[str, str]] | None = None,
    ttl_secs: int = 7200,
) -> dict[str, Any]:
    """A deployment manifest with ``modules`` (all the same probe image) and ``routes``."""
    desired = desired or {}
    env = env or {}
    agent_modules = {
        name: {
            "version": "1.0",
            "type": "docker",
            "status": "running",
            "restartPolicy": "always",
            "settings": {"image": f"${{MODULES.{name}}}", "createOptions": {}},
            "env": {key: {"value": value} for key, value in env.get(name, {}).items()},
        }
        for name in modules
    }
    content: dict[str, Any] = {
        "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": agent_modules}},
        "$edgeHub": {
            "properties.desired": {
                "schemaVersion": "1.1",
                "routes": dict(routes),
                "storeAndForwardConfiguration": {"timeToLiveSecs": ttl_secs},
            }
        },
    }
    for name in modules:
        content[name] = {"properties.desired": dict(desired.get(name, {}))}
    return {"modulesContent": content}


def route(source: str, target: str, input_name: str, where: str | None = None) -> str:
    condition = f" WHERE {where}" if where else ""
    sink = f'BrokeredEndpoint("/modules/{target}/inputs/{input_name}")'
    return f"FROM /messages/modules/{source}/outputs/out{condition} INTO {sink}"
