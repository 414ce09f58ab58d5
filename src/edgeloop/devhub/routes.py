"""edgeHub routes: ``FROM <source> [WHERE <condition>] INTO <sink>``.

Sources: ``/messages/*``, ``/messages/modules/<m>/*``, ``/messages/modules/<m>/outputs/*``,
``/messages/modules/<m>/outputs/<o>``. Sinks: ``BrokeredEndpoint("/modules/<m>/inputs/<i>")``
and ``$upstream``. A route that does not parse raises ``RouteError`` naming the route and the
0-based position in its text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from edgeloop.devhub.where import RoutedMessage, WhereSyntaxError, compile_condition
from edgeloop.errors import EdgeLoopError

UPSTREAM = "$upstream"


class RouteError(EdgeLoopError):
    """A route does not parse or names something the manifest lacks."""

    def __init__(self, name: str, text: str, message: str, position: int | None = None) -> None:
        where = f" at position {position}" if position is not None else ""
        pointer = f"\n    {text}\n    {' ' * position}^" if position is not None else ""
        super().__init__(f"route {name!r}: {message}{where}{pointer}")
        self.route = name
        self.position = position


@dataclass(frozen=True)
class Sink:
    """Either a module input or ``$upstream`` (module and input are then empty)."""

    module: str = ""
    input: str = ""

    @property
    def upstream(self) -> bool:
        return not self.module

    def __str__(self) -> str:
        return UPSTREAM if self.upstream else f"/modules/{self.module}/inputs/{self.input}"


@dataclass(frozen=True)
class Source:
    """Which messages a route takes: ``module`` None = any; ``output`` None = any output,
    ``"*"`` = any named output."""

    module: str | None
    output: str | None

    def matches(self, module: str, output: str | None) -> bool:
        if self.module is None:
            return True
        if self.module != module:
            return False
        if self.output is None:
            return True
        if self.output == "*":
            return output is not None
        return self.output == output


@dataclass(frozen=True)
class Route:
    name: str
    text: str
    source: Source
    sink: Sink
    condition: Callable[[RoutedMessage], bool] | None
    priority: int = 0
    ttl_secs: int | None = None

    def matches(self, module: str, output: str | None, message: RoutedMessage) -> bool:
        if not self.source.matches(module, output):
            return False
        return self.condition is None or self.condition(message)


_HEAD = re.compile(r"\s*FROM\s+(?P<source>\S+)", re.IGNORECASE)
_TAIL = re.compile(
    r"\s+INTO\s+(?P<sink>\$upstream|BrokeredEndpoint\s*\(\s*\"(?P<endpoint>[^\"]*)\"\s*\))\s*$",
    re.IGNORECASE,
)
_WHERE = re.compile(r"\s+WHERE\s", re.IGNORECASE)
_NAME = r"[A-Za-z0-9_.\-]+"
_SOURCES = [
    (re.compile(r"/messages/\*$"), lambda m: Source(None, None)),
    (re.compile(rf"/messages/modules/(?P<m>{_NAME})/\*$"), lambda m: Source(m["m"], None)),
    (re.compile(rf"/messages/modules/(?P<m>{_NAME})/outputs/\*$"), lambda m: Source(m["m"], "*")),
    (
        re.compile(rf"/messages/modules/(?P<m>{_NAME})/outputs/(?P<o>{_NAME})$"),
        lambda m: Source(m["m"], m["o"]),
    ),
]
_ENDPOINT = re.compile(rf"/modules/(?P<m>{_NAME})/inputs/(?P<i>{_NAME})$")


def parse_route(name: str, text: str, *, priority: int = 0, ttl_secs: int | None = None) -> Route:
    """Parse one route.

    Raises:
        RouteError: naming the route and the position of the problem.
    """
    head = _HEAD.match(text)
    if head is None:
        return _fail(name, text, "a route starts with 'FROM <source>'", len(text) - len(text.lstrip()))
    source_text = head["source"]
    source = _source(source_text)
    if source is None:
        return _fail(
            name,
            text,
            f"unknown source {source_text!r} (accepted: /messages/*, /messages/modules/<m>/*, "
            "/messages/modules/<m>/outputs/*, /messages/modules/<m>/outputs/<o>)",
            head.start("source"),
        )
    tail = _TAIL.search(text, head.end())
    if tail is None:
        into = re.search(r"\sINTO\s", text[head.end() :], re.IGNORECASE)
        position = head.end() + into.end() if into else len(text)
        return _fail(
            name,
            text,
            'expected INTO $upstream or INTO BrokeredEndpoint("/modules/<m>/inputs/<i>")',
            position,
        )
    sink = _sink(name, text, tail)
    middle = text[head.end() : tail.start()]
    condition = None
    if middle.strip():
        where = _WHERE.match(middle) or (re.match(r"\s*WHERE\s", middle, re.IGNORECASE))
        if where is None:
            offset = head.end() + len(middle) - len(middle.lstrip())
            return _fail(name, text, "expected WHERE <condition> or INTO", offset)
        start = head.end() + where.end()
        condition_text = text[start : tail.start()]
        try:
            condition = compile_condition(condition_text)
        except WhereSyntaxError as exc:
            position = start + exc.position
            if exc.position >= len(condition_text.rstrip()):  # the condition ended early: point at INTO
                position = tail.start() + len(tail.group()) - len(tail.group().lstrip())
            return _fail(name, text, exc.message, position)
    return Route(name, text, source, sink, condition, priority, ttl_secs)


def _source(text: str) -> Source | None:
    for pattern, build in _SOURCES:
        match = pattern.match(text)
        if match:
            return build(match)
    return None


def _sink(name: str, text: str, tail: re.Match[str]) -> Sink:
    endpoint = tail["endpoint"]
    if endpoint is None:
        return Sink()
    match = _ENDPOINT.match(endpoint)
    if match is None:
        _fail(
            name,
            text,
            f"unknown endpoint {endpoint!r} (accepted: /modules/<module>/inputs/<input>)",
            tail.start("endpoint"),
        )
    assert match is not None
    return Sink(match["m"], match["i"])


def _fail(name: str, text: str, message: str, position: int) -> Route:
    raise RouteError(name, text, message, position)
