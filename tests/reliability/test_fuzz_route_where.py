"""Property-based fuzzing of the dev hub's route ``WHERE`` parser.

Any text either compiles or raises ``WhereSyntaxError`` (never another exception); a compiled
condition evaluates any message without raising; literals and ``$body`` paths round-trip; the
same expression written with other spacing, keyword case or redundant parentheses means the
same thing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edgeloop.devhub.where import (
    MAX_NESTING,
    MAX_OPERATORS,
    UNDEFINED,
    RoutedMessage,
    WhereSyntaxError,
    compile_condition,
    evaluate,
)
from tests.reliability.conftest import AreaLedger

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

JSON_SYSTEM = {"contentType": "application/json", "contentEncoding": "utf-8", "connectionModuleId": "filter"}

# Fragments of the language, so random sequences reach deep into the grammar.
FRAGMENTS = [
    "(", ")", ",", "=", "!=", "<>", "<", "<=", ">", ">=", "+", "-", "*", "/", "%",
    "AND", "or", "NOT", "true", "FALSE", "null", "1", "2.5", ".5", "1e3", "1e999", "'a'", "'it''s'",
    '"q\\"x"', "'\\n'", "'\\z'", "'", '"', "$body", "$body.a", "$body.a.b[0]", "$body[1]",
    "$contentType", "$connectionModuleId", "$nope", "sample_id", "[odd name]", "[", "]",
    "IS_DEFINED", "AS_NUMBER", "SUBSTRING", "CONCAT", "LENGTH", "sqrt", "nosuchfn", "@", "#", "\x00",
]  # fmt: skip

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.sampled_from("abcxyz"), inner, max_size=4),
    max_leaves=12,
)


def messages() -> st.SearchStrategy[RoutedMessage]:
    bodies = st.one_of(
        json_values.map(lambda v: json.dumps(v).encode()),
        st.binary(max_size=40),
        st.just(b"[" * 5000),
    )
    app = st.dictionaries(
        st.sampled_from(["sample_id", "odd name", "n", "a"]), st.text(max_size=6), max_size=3
    )
    system = st.sampled_from(
        [JSON_SYSTEM, {}, {"contentType": "text/plain"}, {**JSON_SYSTEM, "contentEncoding": "utf-32"}]
    )
    return st.builds(lambda b, a, s: RoutedMessage(body=b, app=a, system=s), bodies, app, system)


def _compile_or_refuse(text: str) -> Any:
    try:
        return compile_condition(text)
    except WhereSyntaxError as exc:
        position = exc.position
    assert 0 <= position <= len(text), f"position {position} outside a {len(text)}-char condition"
    return None


@FUZZ
@given(text=st.text(max_size=120), msg=messages())
def test_any_text_compiles_or_is_refused_with_a_position(
    text: str, msg: RoutedMessage, reliability: AreaLedger
) -> None:
    reliability.record(inputs=1)
    condition = _compile_or_refuse(text)
    if condition is not None:
        assert condition(msg) in (True, False)


@FUZZ
@given(
    parts=st.lists(st.sampled_from(FRAGMENTS), min_size=1, max_size=40),
    glue=st.sampled_from([" ", "", "  \t"]),
    msgs=st.lists(messages(), min_size=1, max_size=3),
)
def test_token_soup_compiles_or_is_refused_and_evaluation_never_raises(
    parts: list[str], glue: str, msgs: list[RoutedMessage], reliability: AreaLedger
) -> None:
    reliability.record(inputs=1)
    condition = _compile_or_refuse(glue.join(parts))
    if condition is not None:
        for msg in msgs:
            assert condition(msg) in (True, False)


@settings(max_examples=60, deadline=None)
@given(
    depth=st.integers(MAX_NESTING + 1, 5000),
    shape=st.sampled_from(["({}1{})", "NOT {}true", "-{}1", "1{}", "true{}", "LENGTH({}'a'{})"]),
)
def test_hostile_nesting_is_a_syntax_error_not_a_recursion_error(
    depth: int, shape: str, reliability: AreaLedger
) -> None:
    # given: a condition nested or chained far beyond any real route
    if shape == "({}1{})":
        text = "(" * depth + "1" + ")" * depth
    elif shape == "NOT {}true":
        text = "NOT " * (depth + MAX_OPERATORS) + "true"
    elif shape == "-{}1":
        text = "-" * (depth + MAX_OPERATORS) + "1"
    elif shape == "1{}":
        text = " + ".join(["1"] * (depth + MAX_OPERATORS))
    elif shape == "true{}":
        text = " AND ".join(["true"] * (depth + MAX_OPERATORS))
    else:
        text = "LENGTH(" * depth + "'a'" + ")" * depth
    reliability.record(inputs=1)
    # when / then
    with pytest.raises(WhereSyntaxError, match=r"nested|complex"):
        compile_condition(text)


def test_conditions_at_the_limits_still_compile_and_evaluate(reliability: AreaLedger) -> None:
    # given
    msg = RoutedMessage(body=b"{}", app={}, system={})
    deep = "(" * MAX_NESTING + "1" + ")" * MAX_NESTING + " = 1"
    long = " + ".join(["1"] * MAX_OPERATORS)
    reliability.record(inputs=2)
    # then
    assert evaluate(deep, msg) is True
    assert evaluate(long, msg) == MAX_OPERATORS


# -- round trips ----------------------------------------------------------------------------
def quote(text: str) -> str:
    """``text`` as a single-quoted literal of the query language."""
    escaped = text.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n").replace("\t", "\\t")
    return "'" + escaped.replace("\r", "\\r") + "'"


EMPTY = RoutedMessage(body=b"", app={}, system={})


@FUZZ
@given(text=st.text(max_size=40))
def test_string_literals_round_trip(text: str, reliability: AreaLedger) -> None:
    reliability.record(inputs=1)
    assert evaluate(quote(text), EMPTY) == text
    assert evaluate(f"{quote(text)} = {quote(text)}", EMPTY) is True


@FUZZ
@given(number=st.integers(0, 10**15) | st.floats(min_value=0, allow_nan=False, allow_infinity=False))
def test_number_literals_round_trip(number: float, reliability: AreaLedger) -> None:
    reliability.record(inputs=1)
    text = repr(number)
    assert evaluate(text, EMPTY) == number
    assert evaluate(f"-{text}", EMPTY) == -number


@FUZZ
@given(text=st.text(alphabet=st.characters(codec="ascii", exclude_characters="\x00"), max_size=12))
def test_as_number_agrees_with_float_for_finite_numbers(text: str, reliability: AreaLedger) -> None:
    reliability.record(inputs=1)
    msg = RoutedMessage(body=b"", app={"p": text}, system={})
    got = evaluate("AS_NUMBER(p)", msg)
    try:
        expected = float(text)
    except ValueError:
        expected = math.nan
    if math.isfinite(expected):
        assert got == expected
    else:
        assert got is UNDEFINED


keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_\-]{0,6}", fullmatch=True)


@st.composite
def document_and_path(draw: st.DrawFn) -> tuple[Any, str, Any]:
    """A JSON document, a ``$body`` path into it and the value at the end of the path."""
    leaf = draw(json_values)
    path = ""
    value: Any = leaf
    for _ in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            key = draw(keys)
            value = {**draw(st.dictionaries(keys, json_values, max_size=2)), key: value}
            path = f".{key}" + path
        else:
            index = draw(st.integers(0, 3))
            filler = draw(st.lists(json_values, min_size=index, max_size=index))
            value = [*filler, value]
            path = f"[{index}]" + path
    return value, "$body" + path, leaf


@FUZZ
@given(case=document_and_path())
def test_body_paths_read_back_the_value_they_point_at(
    case: tuple[Any, str, Any], reliability: AreaLedger
) -> None:
    # given
    doc, path, leaf = case
    reliability.record(inputs=1)
    msg = RoutedMessage(body=json.dumps(doc).encode(), app={}, system=JSON_SYSTEM)
    # when
    got = evaluate(path, msg)
    # then
    assert got == leaf or (isinstance(leaf, float) and math.isnan(leaf))
    assert evaluate(f"IS_DEFINED({path})", msg) is True
    assert evaluate(f"IS_DEFINED({path}.zz_missing)", msg) is False


# -- the same expression, written differently -------------------------------------------------
atoms = st.sampled_from(
    ["1", "2", "0.5", "'a'", "'b'", "true", "false", "null", "$body.n", "$body.s", "n", "$contentType", "x"]
)
COMPARE = ["=", "!=", "<>", "<", "<=", ">", ">="]


def expressions() -> st.SearchStrategy[Any]:
    def extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        return st.one_of(
            st.tuples(st.sampled_from(["AND", "OR"]), inner, inner),
            st.tuples(st.sampled_from([*COMPARE, "+", "-", "*", "/", "%"]), inner, inner),
            st.tuples(st.just("NOT"), inner),
            st.tuples(st.sampled_from(["IS_DEFINED", "IS_NUMBER", "LENGTH", "ABS"]), inner),
        )

    return st.recursive(atoms, extend, max_leaves=10)


def render(node: Any, *, lower: bool, spaces: str, extra_parens: bool) -> str:
    if isinstance(node, str):
        return node
    op, *args = node
    parts = [render(a, lower=lower, spaces=spaces, extra_parens=extra_parens) for a in args]
    word = op.lower() if lower and (op.isalpha() or "_" in op) else op
    if op == "NOT":
        text = f"{word}{spaces}({parts[0]})"
    elif len(parts) == 1:
        text = f"{word}({spaces}{parts[0]}{spaces})"
    else:
        text = f"({parts[0]}){spaces}{word}{spaces}({parts[1]})"
    return f"({text})" if extra_parens else text


@FUZZ
@given(
    tree=expressions(),
    style=st.tuples(st.booleans(), st.sampled_from([" ", "  ", "\t", "\n "]), st.booleans()),
)
def test_spacing_keyword_case_and_parentheses_do_not_change_the_meaning(
    tree: Any, style: tuple[bool, str, bool], reliability: AreaLedger
) -> None:
    # given
    lower, spaces, extra = style
    plain = render(tree, lower=False, spaces=" ", extra_parens=False)
    styled = render(tree, lower=lower, spaces=spaces, extra_parens=extra)
    msg = RoutedMessage(
        body=json.dumps({"n": 3, "s": "a"}).encode(), app={"n": "3", "x": "a"}, system=JSON_SYSTEM
    )
    reliability.record(inputs=1)
    # when
    try:
        expected = evaluate(plain, msg)
    except WhereSyntaxError:
        # too complex for the limits: the styled form must be refused as well
        try:
            evaluate(styled, msg)
        except WhereSyntaxError:
            return
        raise AssertionError(f"{styled!r} compiled but {plain!r} did not") from None
    got = evaluate(styled, msg)
    # then
    assert got is expected or got == expected or (_nan(got) and _nan(expected))


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)
