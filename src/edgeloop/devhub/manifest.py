"""Reading a deployment manifest (``deployment.template.json`` or a generated deployment).

What the dev hub takes from it: the modules (image, env, bind mounts, restart policy, status),
their twin desired properties, ``$edgeHub`` routes and the store-and-forward TTL. Errors name
the manifest path and what is wrong.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeloop.devhub.routes import Route, RouteError, parse_route
from edgeloop.errors import EdgeLoopError

DEFAULT_TTL_SECS = 7200
RESTART_POLICIES = ("always", "on-failure", "on-unhealthy", "never")
_MODULE_ID = re.compile(r"^[A-Za-z0-9\-:.+%_#*?!(),=@;$']{1,128}$")
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)")


class ManifestError(EdgeLoopError):
    """The manifest cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class Bind:
    host: str
    container: str
    options: str = ""

    @classmethod
    def parse(cls, text: str) -> Bind:
        parts = text.split(":")
        if len(parts) < 2 or not parts[0] or not parts[1]:
            raise ValueError(f"bind {text!r} is not 'host:container[:options]'")
        return cls(parts[0], parts[1], ":".join(parts[2:]))

    @property
    def volume_name(self) -> str:
        """The local folder name under ``<state-dir>/volumes``: the host path's last component."""
        return Path(self.host.rstrip("/")).name or "root"


@dataclass(frozen=True)
class ModuleSpec:
    name: str
    image: str
    env: dict[str, str]
    binds: tuple[Bind, ...]
    restart_policy: str = "always"
    status: str = "running"
    startup_order: int = 0
    desired: dict[str, Any] = field(default_factory=dict)

    @property
    def source_module(self) -> str | None:
        """``<name>`` when the image is ``${MODULES.<name>}`` (or ``.debug``): built from this checkout."""
        match = re.fullmatch(r"\$\{MODULES\.([A-Za-z0-9_\-]+)(?:\.debug)?\}", self.image.strip())
        return match.group(1) if match else None


@dataclass(frozen=True)
class Manifest:
    source: str
    modules: dict[str, ModuleSpec]
    routes: tuple[Route, ...]
    ttl_secs: int = DEFAULT_TTL_SECS
    folder: Path | None = None


def expand_vars(value: str, environ: Mapping[str, str]) -> str:
    """Expand ``$VAR``/``${VAR}`` from ``environ`` as iotedgedev does from ``.env``; unknown stay."""

    def repl(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return environ.get(name, match.group(0))

    return _VAR.sub(repl, value)


def load_manifest(
    source: Path | str | Mapping[str, Any], environ: Mapping[str, str] | None = None
) -> Manifest:
    """Read a manifest from a file path or an already-parsed document.

    Raises:
        ManifestError: unreadable, not a deployment manifest, a bad route or module setting.
    """
    environ = os.environ if environ is None else environ
    if isinstance(source, Mapping):
        doc: Any = source
        label, folder = "<manifest document>", None
    else:
        path = Path(source)
        label, folder = str(path), path.resolve().parent
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ManifestError(f"{path}: cannot read the manifest: {exc.strerror}") from exc
        except json.JSONDecodeError as exc:
            raise ManifestError(f"{path}: not JSON: {exc}") from exc
    try:
        return _parse(doc, label, folder, environ)
    except RouteError as exc:
        raise ManifestError(f"{label}: {exc}") from exc
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{label}: {exc}") from exc


def _desired(content: Mapping[str, Any], name: str) -> dict[str, Any]:
    entry = content.get(name) or {}
    if "properties.desired" in entry:
        desired = entry["properties.desired"]
    else:
        desired = (entry.get("properties") or {}).get("desired") or {}
    if not isinstance(desired, dict):
        raise ValueError(f"modulesContent.{name}.properties.desired must be an object")
    return desired


def _parse(doc: Any, label: str, folder: Path | None, environ: Mapping[str, str]) -> Manifest:
    if not isinstance(doc, Mapping) or not isinstance(doc.get("modulesContent"), Mapping):
        raise ValueError("not a deployment manifest (no 'modulesContent' object)")
    content = doc["modulesContent"]
    agent = _desired(content, "$edgeAgent")
    modules: dict[str, ModuleSpec] = {}
    for name, spec in (agent.get("modules") or {}).items():
        if not _MODULE_ID.match(name):
            raise ValueError(f"module name {name!r} is not a valid module id")
        modules[name] = _module(name, spec, _desired(content, name), environ)
    hub = _desired(content, "$edgeHub")
    ttl = int((hub.get("storeAndForwardConfiguration") or {}).get("timeToLiveSecs", DEFAULT_TTL_SECS))
    routes = tuple(_routes(hub.get("routes") or {}, modules))
    return Manifest(label, modules, routes, ttl, folder)


def _module(
    name: str, spec: Mapping[str, Any], desired: dict[str, Any], environ: Mapping[str, str]
) -> ModuleSpec:
    settings = spec.get("settings") or {}
    create = settings.get("createOptions") or {}
    if isinstance(create, str):
        create = json.loads(create) if create.strip() else {}
    binds = tuple(Bind.parse(b) for b in ((create.get("HostConfig") or {}).get("Binds") or []))
    env = {
        key: expand_vars(str((value or {}).get("value", "")), environ)
        for key, value in (spec.get("env") or {}).items()
    }
    policy = spec.get("restartPolicy", "always")
    if policy not in RESTART_POLICIES:
        raise ValueError(
            f"module {name!r}: restartPolicy {policy!r} is not one of {', '.join(RESTART_POLICIES)}"
        )
    return ModuleSpec(
        name=name,
        image=str(settings.get("image", "")),
        env=env,
        binds=binds,
        restart_policy=policy,
        status=str(spec.get("status", "running")),
        startup_order=int(spec.get("startupOrder", 0) or 0),
        desired=desired,
    )


def _routes(raw: Mapping[str, Any], modules: Mapping[str, ModuleSpec]) -> list[Route]:
    routes = []
    for name, entry in raw.items():
        if isinstance(entry, str):
            route = parse_route(name, entry)
        elif isinstance(entry, Mapping) and isinstance(entry.get("route"), str):
            ttl = entry.get("timeToLiveSecs")
            route = parse_route(
                name,
                entry["route"],
                priority=int(entry.get("priority", 0)),
                ttl_secs=int(ttl) if ttl is not None else None,
            )
        else:
            raise RouteError(name, str(entry), "a route is a string or an object with a 'route' string")
        for module in (route.source.module, route.sink.module):
            if module and module not in modules:
                raise RouteError(
                    name,
                    route.text,
                    f"module {module!r} is not in the manifest "
                    f"(modules: {', '.join(sorted(modules)) or 'none'})",
                )
        routes.append(route)
    return routes
