"""What every ``edgeloop`` command shares on its way out: ``-o json|table``, one error shape,
JSON arguments (``@file.json`` as az takes them) and a live progress line for long work.

Errors: ``edgeloop <command>: error: <message>`` on stderr, one line per problem (a
validation error gives one line per field); with ``-o json`` the same as
``{"error": message, "details": [lines]}``: the shape of a module's and the hub's method errors.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TextIO

from edgeloop.errors import EdgeLoopError

OUTPUT_FORMATS = ("json", "table")
Table = tuple[Sequence[str], Sequence[Sequence[Any]]]


class CliError(EdgeLoopError):
    """A command cannot go on; ``lines`` are shown one per line after the error prefix."""

    def __init__(self, *lines: str) -> None:
        super().__init__(lines[0] if lines else "failed")
        self.lines = list(lines) or ["failed"]


def add_output_option(parser: argparse.ArgumentParser, default: str = "json") -> None:
    """``-o json|table`` (and ``text``, the command's plain form, when that is its default).
    Left out, ``args.output`` is None: the default form, with errors as plain lines."""
    choices = OUTPUT_FORMATS if default == "json" else (default, *OUTPUT_FORMATS)
    parser.add_argument(
        "-o",
        "--output",
        choices=choices,
        default=None,
        help=f"output format: {', '.join(choices)} (default {default}); errors follow -o json as JSON",
    )


def prog_of(args: argparse.Namespace) -> str:
    """``edgeloop dev twin`` and the like, for error prefixes."""
    return str(getattr(args, "prog", None) or "edgeloop")


def fail(args: argparse.Namespace | str, *lines: str) -> int:
    """Print an error in the one shape; returns exit code 1."""
    prog = args if isinstance(args, str) else prog_of(args)
    output = None if isinstance(args, str) else getattr(args, "output", None)
    lines = lines or ("failed",)
    if output == "json":
        print(json.dumps({"error": lines[0], "details": list(lines[1:])}), file=sys.stderr)
    else:
        for line in lines:
            print(f"{prog}: error: {line}", file=sys.stderr)
    return 1


def validation_lines(exc: Any) -> list[str]:
    """A pydantic ``ValidationError`` as one line per field: where, what, the value given."""
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ())) or "(document)"
        given = error.get("input")
        shown = f" (got {json.dumps(given, default=str)[:80]})" if "input" in error else ""
        lines.append(f"{where}: {error.get('msg', 'invalid')}{shown}")
    return lines


def error_lines(exc: BaseException) -> list[str]:
    """An error's message; when a pydantic ``ValidationError`` caused it, one line per field."""
    cause = exc.__cause__
    if cause is None or not callable(getattr(cause, "errors", None)):
        return [str(exc)]
    head = str(exc).split("\n")[0]
    if "validation error" in head and ": " in head:
        head = head[: head.rfind(": ")] + ":"
    return [head, *validation_lines(cause)]


def json_argument(value: str, option: str) -> Any:
    """The JSON in ``value``, or in the file it names as ``@path`` (az's habit).

    Raises:
        CliError: the file cannot be read or the text is not JSON (position named).
    """
    source = option
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            value = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise CliError(f"{option} {value}: cannot read {path}: {exc.strerror or exc}") from exc
        source = f"{option} {path}"
    try:
        return json.loads(value)
    except ValueError as exc:
        raise CliError(f"{source} is not JSON: {exc}") from exc


def emit(
    doc: Any, output: str, table: Callable[[Any], Table] | None = None, stream: TextIO | None = None
) -> None:
    """Print ``doc`` as indented JSON, or as a table (``table(doc)`` or a flat key/value list)."""
    out = stream or sys.stdout
    if output != "table":  # json, or None: the default
        out.write(json.dumps(doc, indent=2, ensure_ascii=False, default=str) + "\n")
        return
    headers, rows = table(doc) if table is not None else (("KEY", "VALUE"), list(flatten(doc)))
    out.write(render_table(headers, rows))


def flatten(doc: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Nested dicts as ``(dotted.key, value)`` pairs; lists stay whole."""
    if isinstance(doc, dict) and doc:
        for key, value in doc.items():
            yield from flatten(value, f"{prefix}.{key}" if prefix else str(key))
    else:
        yield prefix or "(value)", doc


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return ", ".join(value) or "-"
    return json.dumps(value, ensure_ascii=False)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    text = [[cell(v) for v in row] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in text]) for i, h in enumerate(headers)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in text]
    return "\n".join(lines) + "\n"


@contextmanager
def progress(what: str, *, after: float = 2.0, stream: TextIO | None = None) -> Iterator[None]:
    """A live ``what ... 12s`` line on stderr while the block runs longer than ``after`` seconds
    (redrawn in place on a terminal, a line every 10 s otherwise)."""
    out = stream or sys.stderr
    live = out.isatty()
    done = threading.Event()
    started = time.monotonic()

    def tick() -> None:
        if done.wait(after):
            return
        shown = False
        while True:
            elapsed = time.monotonic() - started
            if live:
                out.write(f"\r{what} ... {elapsed:.0f}s")
                shown = True
            elif not shown or elapsed % 10 < 1:
                out.write(f"{what} ... {elapsed:.0f}s\n")
                shown = True
            out.flush()
            if done.wait(1.0):
                break
        if live:
            out.write(f"\r{what} ... done in {time.monotonic() - started:.0f}s\n")
            out.flush()

    thread = threading.Thread(target=tick, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(2.0)
