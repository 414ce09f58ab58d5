"""Route ``WHERE`` conditions in the IoT Hub message routing query language.

Supported: comparisons (``= != <> < <= > >=``), ``AND``/``OR``/``NOT``, parentheses,
arithmetic (``+ - * / %``), string/number/boolean/null literals, application properties
(bare names or ``[any name]``), system properties (``$contentType``, ``$connectionModuleId``,
...), ``$body.<path>`` (JSON bodies only, with ``contentType=application/json`` and a UTF
encoding) and functions (``IS_DEFINED``, type tests, string functions, ``AS_NUMBER``).

Evaluation follows the IoT Hub rules: a missing property is *undefined*; comparing values of
different types, or anything with undefined, is undefined; a route matches only when its
condition is ``true``. Application properties are strings (``AS_NUMBER(p) > 5`` compares
numbers). ``compile_condition`` parses once into a tree of closures; syntax errors carry the
0-based position.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeloop.errors import EdgeLoopError


class _Undefined:
    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()

#: ``$name`` in a condition -> key of ``RoutedMessage.system``.
SYSTEM_PROPERTIES = {
    "messageid": "messageId",
    "correlationid": "correlationId",
    "userid": "userId",
    "contenttype": "contentType",
    "contentencoding": "contentEncoding",
    "connectiondeviceid": "connectionDeviceId",
    "connectionmoduleid": "connectionModuleId",
    "outputname": "outputName",
    "expirytimeutc": "expiryTimeUtc",
    "enqueuedtime": "enqueuedTime",
}

_JSON_ENCODINGS = {"utf-8", "utf8", "utf-16", "utf-32"}
#: Bounds that keep parsing and evaluation well inside Python's recursion limit: operators and
#: function calls in one condition, and parentheses or argument lists nested in each other.
MAX_OPERATORS = 256
MAX_NESTING = 32


class WhereSyntaxError(EdgeLoopError):
    """A condition does not parse; ``position`` is the 0-based offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(f"{message} at position {position}")
        self.message = message
        self.position = position


@dataclass
class RoutedMessage:
    """What a condition can see of a message."""

    body: bytes
    app: Mapping[str, str]
    system: Mapping[str, str]
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def json_body(self) -> Any:
        """The body as JSON, or UNDEFINED when it is not declared (or not valid) JSON."""
        if not self._parsed:
            self._parsed = True
            self._json = UNDEFINED
            content_type = (self.system.get("contentType") or "").split(";")[0].strip().lower()
            encoding = (self.system.get("contentEncoding") or "").strip().lower()
            if content_type == "application/json" and encoding in _JSON_ENCODINGS:
                try:
                    self._json = json.loads(self.body.decode(encoding))
                except (UnicodeDecodeError, ValueError, RecursionError):
                    self._json = UNDEFINED
        return self._json


Evaluator = Callable[[RoutedMessage], Any]


# -- tokens ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    kind: str  # num, str, name, sys, body, prop, op, lparen, rparen, comma, end
    value: Any
    pos: int


_KEYWORDS = {"and", "or", "not", "true", "false", "null"}
_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?)
  | (?P<str>'(?:[^'\\]|\\.|'')*'|"(?:[^"\\]|\\.)*")
  | (?P<body>\$body(?:\.[A-Za-z_][A-Za-z0-9_\-]*|\[\d+\])*)
  | (?P<sys>\$[A-Za-z][A-Za-z0-9\-]*)
  | (?P<name>[A-Za-z_][A-Za-z0-9_\-]*)
  | (?P<prop>\[[^\]]+\])
  | (?P<op><>|!=|<=|>=|=|<|>|\+|-|\*|/|%)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
    """,
    re.VERBOSE,
)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"', "/": "/", "0": "\0"}


def _unquote(text: str, pos: int) -> str:
    quote = text[0]
    inner = text[1:-1]
    out = []
    i = 0
    while i < len(inner):
        ch = inner[i]
        if ch == "\\":
            nxt = inner[i + 1]
            if nxt not in _ESCAPES:
                raise WhereSyntaxError(f"unknown escape '\\{nxt}' in string", pos + i + 1)
            out.append(_ESCAPES[nxt])
            i += 2
        elif ch == quote and quote == "'":  # '' inside a single-quoted string
            out.append("'")
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _tokens(text: str) -> list[_Token]:
    tokens = []
    pos = 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise WhereSyntaxError(f"unexpected character {text[pos]!r}", pos)
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "num":
            number = float(value)
            tokens.append(_Token("num", int(value) if value.isdigit() else number, pos))
        elif kind == "str":
            tokens.append(_Token("str", _unquote(value, pos), pos))
        elif kind == "name" and value.lower() in _KEYWORDS:
            tokens.append(_Token("kw", value.lower(), pos))
        elif kind == "prop":
            tokens.append(_Token("name", value[1:-1], pos))
        elif kind != "ws":
            tokens.append(_Token(kind, value, pos))
        pos = match.end()
    tokens.append(_Token("end", None, len(text)))
    return tokens


# -- value semantics ---------------------------------------------------------------------------
def _type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _compare(op: str, left: Any, right: Any) -> Any:
    if left is UNDEFINED or right is UNDEFINED:
        return UNDEFINED
    kind = _type(left)
    if kind != _type(right):
        return UNDEFINED
    if op in ("=", "!=", "<>"):
        equal = left == right
        return equal if op == "=" else not equal
    if kind not in ("number", "string"):
        return UNDEFINED
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _arith(op: str, left: Any, right: Any) -> Any:
    if not (_number(left) and _number(right)):
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            return left + right
        return UNDEFINED
    try:
        if op == "+":
            result = left + right
        elif op == "-":
            result = left - right
        elif op == "*":
            result = left * right
        elif op == "/":
            result = left / right
        else:
            result = math.fmod(left, right)
    except (ZeroDivisionError, ValueError, OverflowError):
        return UNDEFINED
    if isinstance(result, float) and not math.isfinite(result):
        return UNDEFINED
    return result


def _and(left: Any, right: Any) -> Any:
    if left is False or right is False:
        return False
    if left is True and right is True:
        return True
    return UNDEFINED


def _or(left: Any, right: Any) -> Any:
    if left is True or right is True:
        return True
    if left is False and right is False:
        return False
    return UNDEFINED


def _not(value: Any) -> Any:
    return not value if isinstance(value, bool) else UNDEFINED


def _as_number(value: Any) -> Any:
    if _number(value):
        return value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            return UNDEFINED
        if not math.isfinite(number):
            return UNDEFINED
        return (
            int(number) if number.is_integer() and "." not in value and "e" not in value.lower() else number
        )
    return UNDEFINED


def _strings(fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapped(*args: Any) -> Any:
        if not all(isinstance(a, str) for a in args):
            return UNDEFINED
        return fn(*args)

    return wrapped


def _substring(text: Any, start: Any, length: Any) -> Any:
    if not (isinstance(text, str) and _number(start) and _number(length)):
        return UNDEFINED
    begin = max(0, int(start))
    return text[begin : begin + max(0, int(length))]


def _numeric(fn: Callable[[float], Any]) -> Callable[[Any], Any]:
    def wrapped(value: Any) -> Any:
        if not _number(value):
            return UNDEFINED
        try:
            return fn(value)
        except (ValueError, OverflowError):
            return UNDEFINED

    return wrapped


#: name -> (arity, function). Arguments arrive evaluated; functions see UNDEFINED too.
FUNCTIONS: dict[str, tuple[int, Callable[..., Any]]] = {
    "is_defined": (1, lambda v: v is not UNDEFINED),
    "is_null": (1, lambda v: v is None),
    "is_bool": (1, lambda v: isinstance(v, bool)),
    "is_number": (1, _number),
    "is_string": (1, lambda v: isinstance(v, str)),
    "is_object": (1, lambda v: isinstance(v, dict)),
    "is_array": (1, lambda v: isinstance(v, list)),
    "is_primitive": (1, lambda v: v is None or isinstance(v, bool | int | float | str)),
    "starts_with": (2, _strings(lambda s, p: s.startswith(p))),
    "ends_with": (2, _strings(lambda s, p: s.endswith(p))),
    "contains": (2, _strings(lambda s, p: p in s)),
    "index_of": (2, _strings(lambda s, p: s.find(p))),
    "lower": (1, _strings(lambda s: s.lower())),
    "upper": (1, _strings(lambda s: s.upper())),
    "ltrim": (1, _strings(lambda s: s.lstrip())),
    "rtrim": (1, _strings(lambda s: s.rstrip())),
    "length": (1, _strings(len)),
    "concat": (2, _strings(lambda a, b: a + b)),
    "substring": (3, _substring),
    "as_number": (1, _as_number),
    "abs": (1, _numeric(abs)),
    "ceiling": (1, _numeric(math.ceil)),
    "floor": (1, _numeric(math.floor)),
    "sign": (1, _numeric(lambda v: (v > 0) - (v < 0))),
    "sqrt": (1, _numeric(math.sqrt)),
}


# -- parser ------------------------------------------------------------------------------------
def _body_path(text: str) -> list[str | int]:
    path: list[str | int] = []
    for match in re.finditer(r"\.([A-Za-z_][A-Za-z0-9_\-]*)|\[(\d+)\]", text[len("$body") :]):
        path.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
    return path


def _body_getter(path: list[str | int]) -> Evaluator:
    def get(msg: RoutedMessage) -> Any:
        value = msg.json_body()
        for step in path:
            if isinstance(step, str) and isinstance(value, dict):
                if step not in value:
                    return UNDEFINED
                value = value[step]
            elif isinstance(step, int) and isinstance(value, list):
                if step >= len(value):
                    return UNDEFINED
                value = value[step]
            else:
                return UNDEFINED
        return value

    return get


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.index = 0
        self.operators = 0
        self.nesting = 0

    @property
    def tok(self) -> _Token:
        return self.tokens[self.index]

    def advance(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def expect(self, kind: str, what: str) -> _Token:
        if self.tok.kind != kind:
            raise WhereSyntaxError(f"expected {what}, found {self._describe(self.tok)}", self.tok.pos)
        return self.advance()

    def count_operator(self, pos: int) -> None:
        self.operators += 1
        if self.operators > MAX_OPERATORS:
            raise WhereSyntaxError(f"condition too complex: more than {MAX_OPERATORS} operators", pos)

    def nested(self, pos: int) -> Evaluator:
        """``or_expr`` one level deeper (inside parentheses or an argument list)."""
        self.nesting += 1
        if self.nesting > MAX_NESTING:
            raise WhereSyntaxError(f"condition nested more than {MAX_NESTING} levels deep", pos)
        node = self.or_expr()
        self.nesting -= 1
        return node

    @staticmethod
    def _describe(token: _Token) -> str:
        return "end of condition" if token.kind == "end" else repr(str(token.value))

    def parse(self) -> Evaluator:
        if self.tok.kind == "end":
            raise WhereSyntaxError("empty condition", 0)
        node = self.or_expr()
        if self.tok.kind != "end":
            raise WhereSyntaxError(f"unexpected {self._describe(self.tok)}", self.tok.pos)
        return node

    def or_expr(self) -> Evaluator:
        node = self.and_expr()
        while self.tok.kind == "kw" and self.tok.value == "or":
            self.count_operator(self.advance().pos)
            left, right = node, self.and_expr()
            node = _bind2(_or, left, right)
        return node

    def and_expr(self) -> Evaluator:
        node = self.not_expr()
        while self.tok.kind == "kw" and self.tok.value == "and":
            self.count_operator(self.advance().pos)
            left, right = node, self.not_expr()
            node = _bind2(_and, left, right)
        return node

    def not_expr(self) -> Evaluator:
        if self.tok.kind == "kw" and self.tok.value == "not":
            self.count_operator(self.advance().pos)
            inner = self.not_expr()
            return lambda msg: _not(inner(msg))
        return self.comparison()

    def comparison(self) -> Evaluator:
        node = self.additive()
        if self.tok.kind == "op" and self.tok.value in ("=", "!=", "<>", "<", "<=", ">", ">="):
            self.count_operator(self.tok.pos)
            op = self.advance().value
            left, right = node, self.additive()
            node = _bind2(lambda a, b: _compare(op, a, b), left, right)
            if self.tok.kind == "op" and self.tok.value in ("=", "!=", "<>", "<", "<=", ">", ">="):
                raise WhereSyntaxError("comparisons do not chain; use AND", self.tok.pos)
        return node

    def additive(self) -> Evaluator:
        node = self.multiplicative()
        while self.tok.kind == "op" and self.tok.value in ("+", "-"):
            self.count_operator(self.tok.pos)
            op = self.advance().value
            left, right = node, self.multiplicative()
            node = _bind2(_arith_op(op), left, right)
        return node

    def multiplicative(self) -> Evaluator:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.value in ("*", "/", "%"):
            self.count_operator(self.tok.pos)
            op = self.advance().value
            left, right = node, self.unary()
            node = _bind2(_arith_op(op), left, right)
        return node

    def unary(self) -> Evaluator:
        if self.tok.kind == "op" and self.tok.value in ("-", "+"):
            self.count_operator(self.tok.pos)
            op = self.advance().value
            inner = self.unary()
            if op == "+":
                return lambda msg: inner(msg) if _number(inner(msg)) else UNDEFINED
            return lambda msg: _arith("-", 0, inner(msg))
        return self.primary()

    def primary(self) -> Evaluator:
        tok = self.tok
        if tok.kind in ("num", "str"):
            self.advance()
            value = tok.value
            return lambda _msg: value
        if tok.kind == "kw" and tok.value in ("true", "false", "null"):
            self.advance()
            literal = {"true": True, "false": False, "null": None}[tok.value]
            return lambda _msg: literal
        if tok.kind == "lparen":
            self.advance()
            node = self.nested(tok.pos)
            self.expect("rparen", "')'")
            return node
        if tok.kind == "body":
            self.advance()
            return _body_getter(_body_path(tok.value))
        if tok.kind == "sys":
            self.advance()
            key = SYSTEM_PROPERTIES.get(tok.value[1:].lower())
            if key is None:
                known = ", ".join(f"${v}" for v in SYSTEM_PROPERTIES.values())
                raise WhereSyntaxError(
                    f"unknown system property {tok.value!r} (known: {known}, $body)", tok.pos
                )
            return lambda msg: msg.system.get(key, UNDEFINED)
        if tok.kind == "name":
            self.advance()
            if self.tok.kind == "lparen":
                return self.call(tok)
            name = tok.value
            return lambda msg: msg.app.get(name, UNDEFINED)
        raise WhereSyntaxError(f"expected a value, found {self._describe(tok)}", tok.pos)

    def call(self, name: _Token) -> Evaluator:
        entry = FUNCTIONS.get(name.value.lower())
        if entry is None:
            raise WhereSyntaxError(
                f"unknown function {name.value!r} (known: {', '.join(n.upper() for n in FUNCTIONS)})",
                name.pos,
            )
        arity, fn = entry
        self.count_operator(name.pos)
        self.expect("lparen", "'('")
        args: list[Evaluator] = []
        if self.tok.kind != "rparen":
            args.append(self.nested(name.pos))
            while self.tok.kind == "comma":
                self.advance()
                args.append(self.nested(name.pos))
        if len(args) != arity:
            raise WhereSyntaxError(
                f"{name.value.upper()} takes {arity} argument{'s' if arity > 1 else ''}, got {len(args)}",
                name.pos,
            )
        self.expect("rparen", "')'")
        if arity == 1:
            (only,) = args
            return lambda msg: fn(only(msg))
        return lambda msg: fn(*(a(msg) for a in args))


def _arith_op(op: str) -> Callable[[Any, Any], Any]:
    return lambda a, b: _arith(op, a, b)


def _bind2(fn: Callable[[Any, Any], Any], left: Evaluator, right: Evaluator) -> Evaluator:
    return lambda msg: fn(left(msg), right(msg))


def compile_condition(text: str) -> Callable[[RoutedMessage], bool]:
    """Parse ``text``; the result says whether a message satisfies it (true, not undefined).

    Raises:
        WhereSyntaxError: with the 0-based position of the problem.
    """
    evaluator = _Parser(text).parse()
    return lambda msg: evaluator(msg) is True


def evaluate(text: str, msg: RoutedMessage) -> Any:
    """The raw value of an expression (true/false/undefined/...); for tests and tools."""
    return _Parser(text).parse()(msg)
