"""The policy's JSON Schema, generated from the typed model into ``docs/schemas``.

``python -m edgeloop_filter.schema [--out FILE] [--check]`` writes it, or checks that the
committed copy is current.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from edgeloop_filter.policy import policy_json_schema

DEFAULT_FILE = Path("docs/schemas/filter-policy.json")


def render() -> str:
    return json.dumps(policy_json_schema(), indent=2, sort_keys=True) + "\n"


def is_current(path: Path) -> bool:
    return path.is_file() and path.read_text(encoding="utf-8") == render()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeloop_filter.schema", description=__doc__)
    parser.add_argument("--out", default=str(DEFAULT_FILE), help="file (default: %(default)s)")
    parser.add_argument("--check", action="store_true", help="fail if the file is not current")
    args = parser.parse_args(argv)
    path = Path(args.out)
    if args.check:
        if not is_current(path):
            print(f"{path} is out of date (run: python -m edgeloop_filter.schema)")
            return 1
        print(f"{path} is current")
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(), encoding="utf-8")
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
