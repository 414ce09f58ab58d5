"""The child side of the ``python`` trainer kind: import the entry point and call it.

``python -m edgeloop_cloud.trainers.entry package.module:function INPUTS OUTPUTS``; exit code 2
when the entry point or the manifest cannot be loaded, 1 when the function raised.
"""

from __future__ import annotations

import importlib
import logging
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from edgeloop_cloud.trainers.manifest import read_request


def resolve(entry_point: str) -> Callable[..., Any]:
    """The function ``package.module:function`` names. Raises ValueError saying what is missing."""
    module_name, _, attr = entry_point.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(
            f"cannot import module {module_name!r} of entry point {entry_point!r}: {exc}"
        ) from exc
    function = getattr(module, attr, None)
    if not callable(function):
        raise ValueError(f"module {module_name!r} has no function {attr!r} (entry point {entry_point!r})")
    return function


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(levelname)s %(name)s: %(message)s")
    if len(args) != 3:
        print("usage: python -m edgeloop_cloud.trainers.entry package.module:function INPUTS OUTPUTS",
              file=sys.stderr)  # fmt: skip
        return 2
    try:
        function = resolve(args[0])
        request = read_request(Path(args[1]), Path(args[2]))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        function(request)
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
