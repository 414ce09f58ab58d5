"""The environment a process needs to run as a module under the dev hub.

The ``IOTEDGE_*`` set that ``create_from_edge_environment()`` reads, plus the module's ``env``
from the manifest with bind-mount container paths rewritten to local folders
(``<state-dir>/volumes/<last component of the host path>``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from edgeloop.devhub.manifest import Bind, ModuleSpec
from edgeloop.devhub.paths import StatePaths
from edgeloop.devhub.workload import API_VERSION


def volume_folders(binds: tuple[Bind, ...], paths: StatePaths) -> dict[str, Path]:
    """Container path -> local folder, for each bind mount."""
    return {bind.container.rstrip("/") or "/": paths.volumes / bind.volume_name for bind in binds}


def rewrite_paths(env: Mapping[str, str], folders: Mapping[str, Path]) -> dict[str, str]:
    """Values equal to, or under, a bind's container path point at its local folder instead."""
    out = {}
    for key, value in env.items():
        for container, local in sorted(folders.items(), key=lambda kv: -len(kv[0])):
            if value == container or value.startswith(container.rstrip("/") + "/"):
                value = str(local) + value[len(container) :]
                break
        out[key] = value
    return out


def module_env(
    *,
    module: ModuleSpec,
    hub_host: str,
    device_id: str,
    gateway_host: str,
    generation_id: str,
    paths: StatePaths,
) -> dict[str, str]:
    env = {
        "IOTEDGE_IOTHUBHOSTNAME": hub_host,
        "IOTEDGE_DEVICEID": device_id,
        "IOTEDGE_MODULEID": module.name,
        "IOTEDGE_GATEWAYHOSTNAME": gateway_host,
        "IOTEDGE_MODULEGENERATIONID": generation_id,
        "IOTEDGE_WORKLOADURI": f"unix://{paths.workload_socket}",
        "IOTEDGE_APIVERSION": API_VERSION,
        "IOTEDGE_AUTHSCHEME": "sasToken",
    }
    env.update(rewrite_paths(module.env, volume_folders(module.binds, paths)))
    return env


def write_env_file(path: Path, env: Mapping[str, str]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{key}={value}" for key, value in env.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            env[key.strip()] = value
    return env
