"""JSON Schemas of the message contracts, generated from the models into ``docs/schemas/``.

``edgeloop schemas [--out DIR] [--check]`` writes them (or checks the committed copies are
current, for CI).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from edgeloop.contracts import CONTRACTS

DEFAULT_DIR = Path("docs/schemas")


def contract_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, one per contract."""
    out: dict[str, dict[str, Any]] = {}
    for tag, model in CONTRACTS.items():
        schema = model.model_json_schema()
        schema["properties"] = {"schema": {"const": tag, "type": "string"}, **schema["properties"]}
        schema.setdefault("required", []).insert(0, "schema")
        schema["$id"] = f"https://edgeloop.dev/schemas/{tag.replace('/', '-v')}.json"
        out[f"{tag.replace('/', '-v')}.json"] = schema
    return out


def write_schemas(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in contract_schemas().items():
        path = directory / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


def stale_schemas(directory: Path) -> list[str]:
    """Names of schema files that are missing or differ from the models."""
    stale = []
    for name, schema in contract_schemas().items():
        path = directory / name
        expected = json.dumps(schema, indent=2, sort_keys=True) + "\n"
        if not path.is_file() or path.read_text(encoding="utf-8") != expected:
            stale.append(name)
    return stale


def _run(args: argparse.Namespace) -> int:
    directory = Path(args.out)
    if args.check:
        stale = stale_schemas(directory)
        if stale:
            print(f"out of date in {directory}: {', '.join(stale)} (run: edgeloop schemas)")
            return 1
        print(f"{len(CONTRACTS)} contract schemas in {directory} are current")
        return 0
    for path in write_schemas(directory):
        print(path)
    return 0


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("schemas", help="write the message contracts' JSON Schemas")
    parser.add_argument("--out", default=str(DEFAULT_DIR), help="folder (default: docs/schemas)")
    parser.add_argument("--check", action="store_true", help="fail if the files are not current")
    parser.set_defaults(func=_run)
