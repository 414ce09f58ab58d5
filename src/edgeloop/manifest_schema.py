"""The deployment manifest JSON Schema that ``edgeloop manifest check --schema`` applies.

``--schema`` takes a file path, or the name of a schema shipped with EdgeLoop
(``azure-iot-edge-deployment-2.0.json``, SchemaStore's, Apache-2.0: see
``deploy_schemas/NOTICE.md``), so a user's install checks manifests offline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from edgeloop.errors import ConfigError

SHIPPED_DIR = "deploy_schemas"
DEFAULT_SCHEMA = "azure-iot-edge-deployment-2.0.json"


def shipped_schemas() -> list[str]:
    folder = resources.files("edgeloop").joinpath(SHIPPED_DIR)
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))


def load_schema(name_or_path: str) -> Mapping[str, Any]:
    """The schema at ``name_or_path``, else the shipped schema of that name.

    Raises:
        ConfigError: neither exists (naming what was looked for and what is shipped), the file is
            not a JSON object, or ``jsonschema`` (needed to apply it) is not installed.
    """
    try:
        import jsonschema  # noqa: F401  (checked here so the error comes before any work)
    except ImportError as exc:
        raise ConfigError(
            "--schema needs the jsonschema package: pip install 'edgeloop[deploy]' (or jsonschema==4.26.0)"
        ) from exc
    path = Path(name_or_path)
    if path.is_file():
        text = _read(path)
    else:
        shipped = resources.files("edgeloop").joinpath(SHIPPED_DIR, path.name)
        if path.name != name_or_path or not shipped.is_file():
            raise ConfigError(
                f"schema {name_or_path!r} not found: no such file, and EdgeLoop ships only "
                f"{', '.join(shipped_schemas()) or '(none: the installation is incomplete)'}"
            )
        text = shipped.read_text(encoding="utf-8")
    try:
        schema = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"schema {name_or_path!r} is not JSON: {exc}") from exc
    if not isinstance(schema, dict):
        raise ConfigError(f"schema {name_or_path!r} must be a JSON object")
    return schema


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read schema {path}: {exc}") from exc
