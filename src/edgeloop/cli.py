"""The ``edgeloop`` command line.

Each subcommand group lives in its own module exposing ``register(subparsers)``; a group is
listed in ``COMMAND_GROUPS`` only once it works.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Callable, Sequence

import edgeloop

#: Group modules, each with ``register(subparsers: argparse._SubParsersAction) -> None``.
#: Every registered command sets ``func(args) -> int``.
COMMAND_GROUPS: tuple[str, ...] = (
    "edgeloop.schemas",
    "edgeloop.manifest",
    "edgeloop.devhub.cli",
    "edgeloop.keycli",
    "edgeloop.deploy.cli",
    "edgeloop_demo.cli",
    "edgeloop_cloud.cli",
    "edgeloop_filter.cli",
)
#: Groups of packages an install may leave out (the demo is a user of the product, not part of
#: it): without the package the command is simply not offered.
OPTIONAL_GROUPS: frozenset[str] = frozenset({"edgeloop_demo.cli"})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="edgeloop",
        description="EdgeLoop: close the machine-learning loop at the edge (Azure IoT Edge).",
    )
    parser.add_argument("--version", action="version", version=f"edgeloop {edgeloop.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_GROUPS:
        if name in OPTIONAL_GROUPS and importlib.util.find_spec(name.partition(".")[0]) is None:
            continue
        importlib.import_module(name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return _run(func, args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (| head): not an error of ours
        sys.stderr.close()
        return 0


def _run(func: Callable[[argparse.Namespace], int | None], args: argparse.Namespace) -> int:
    """Run a command; a ``CliError`` it raises is printed in the one error shape (exit 1)."""
    from edgeloop.cliout import CliError, fail

    try:
        return int(func(args) or 0)
    except CliError as exc:
        return fail(args, *exc.lines)


if __name__ == "__main__":
    sys.exit(main())
