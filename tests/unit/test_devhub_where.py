"""Route WHERE conditions: IoT Hub query semantics, syntax errors with positions, fuzzing."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeloop.devhub.where import UNDEFINED, RoutedMessage, WhereSyntaxError, compile_condition, evaluate

BODY = {
    "confidence": 0.42,
    "label": "cat",
    "tags": ["a", "b"],
    "box": {"w": 3, "h": 4},
    "ok": True,
    "none": None,
}


def message(body: Any = BODY, *, json_body: bool = True, **app: str) -> RoutedMessage:
    system = {"connectionModuleId": "inference", "connectionDeviceId": "dev1", "messageId": "m1"}
    if json_body:
        system |= {"contentType": "application/json", "contentEncoding": "utf-8"}
    return RoutedMessage(
        json.dumps(body).encode(), {"schema": "edgeloop.prediction/1", "n": "7", **app}, system
    )


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("$body.confidence < 0.5", True),
        ("$body.confidence >= 0.5", False),
        ("$body.label = 'cat' AND $body.box.w * $body.box.h = 12", True),
        ("$body.label = 'dog' OR $body.tags[1] = 'b'", True),
        ("NOT ($body.label = 'dog')", True),
        ("NOT $body.missing = 1", False),  # NOT undefined is undefined
        ("$body.missing = 1 OR $body.ok", True),
        ("$body.missing <> 1", False),
        ("IS_DEFINED($body.box.w) AND NOT IS_DEFINED($body.box.d)", True),
        ("IS_NULL($body.none) AND IS_OBJECT($body.box) AND IS_ARRAY($body.tags)", True),
        ("schema = 'edgeloop.prediction/1'", True),
        ("n = 7", False),  # application properties are strings
        ("AS_NUMBER(n) > 5", True),
        ("[schema] <> 'x'", True),
        ("$connectionModuleId = 'inference' AND $connectionDeviceId = 'dev1'", True),
        ("$contentType = 'application/json'", True),
        ("$CONNECTIONMODULEID = 'inference'", True),
        ("STARTS_WITH($body.label, 'ca') AND ENDS_WITH(schema, '/1') AND CONTAINS(schema, 'pred')", True),
        ("LOWER('ABC') = 'abc' AND UPPER($body.label) = 'CAT' AND LENGTH($body.label) = 3", True),
        ("SUBSTRING('edgeloop', 4, 4) = 'loop' AND INDEX_OF('abc', 'c') = 2", True),
        ("ABS(-2) = 2 AND FLOOR(2.7) = 2 AND CEILING(2.1) = 3", True),
        ("1 + 2 * 3 = 7 AND (1 + 2) * 3 = 9 AND 7 % 4 = 3 AND -$body.box.w = -3", True),
        ("1 / 0 = 1", False),
        ("'a' < 'b' AND 2 > 1.5 AND true = true AND null = null", True),
        ("true < false", False),
        ("'it''s' = \"it's\"", True),
        ("$body.confidence < '0.5'", False),  # number vs string: undefined
        ("$body = 1", False),
        ("$body.ok", True),
        ("$body.label", False),  # only true matches
    ],
)
def test_conditions_follow_iot_hub_semantics(condition: str, expected: bool) -> None:
    assert compile_condition(condition)(message()) is expected


def test_body_is_only_visible_for_json_content_type_and_encoding() -> None:
    # given
    plain = message(json_body=False)

    # when
    value = evaluate("$body.confidence", plain)

    # then
    assert value is UNDEFINED
    assert compile_condition("$body.confidence < 0.5")(message()) is True


@pytest.mark.parametrize(
    ("condition", "position", "fragment"),
    [
        ("", 0, "empty condition"),
        ("a = ", 4, "expected a value"),
        ("a = 1 b", 6, "unexpected"),
        ("(a = 1", 6, "expected ')'"),
        ("a = 'unterminated", 4, "unexpected character"),
        ("a = 1 = 2", 6, "do not chain"),
        ("$nosuch = 1", 0, "unknown system property"),
        ("FOO(a) = 1", 0, "unknown function"),
        ("IS_DEFINED(a, b)", 0, "takes 1 argument"),
        ("a = 1 AND", 9, "expected a value"),
        ("a # 1", 2, "unexpected character"),
    ],
)
def test_syntax_errors_name_the_position(condition: str, position: int, fragment: str) -> None:
    with pytest.raises(WhereSyntaxError) as caught:
        compile_condition(condition)
    assert caught.value.position == position
    assert fragment in caught.value.message


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("ab$.[]()'\"=<>!+-*/%, 01 ANDORNOTIS_DEFINED\\")), max_size=40))
def test_arbitrary_text_parses_or_fails_with_a_syntax_error(text: str) -> None:
    position = None
    try:
        check = compile_condition(text)
    except WhereSyntaxError as exc:
        position = exc.position
    if position is None:
        assert check(message()) in (True, False)
    else:
        assert 0 <= position <= len(text)


_values = st.one_of(
    st.integers(-5, 5).map(str),
    st.sampled_from(["'cat'", "'x'", "true", "false", "null", "0.5", "n", "schema", "$body.confidence",
                     "$body.label", "$body.box.w", "$body.tags[0]", "$body.missing", "$messageId"]),
)  # fmt: skip


def _expressions() -> st.SearchStrategy[str]:
    def extend(inner: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
        binary = st.tuples(
            inner, st.sampled_from(["AND", "OR", "=", "<>", "<", ">=", "+", "*", "/", "%"]), inner
        )
        return st.one_of(
            binary.map(lambda t: f"({t[0]} {t[1]} {t[2]})"),
            inner.map(lambda e: f"(NOT ({e}))"),
            inner.map(lambda e: f"IS_DEFINED({e})"),
            inner.map(lambda e: f"-({e})"),
            st.tuples(inner, inner).map(lambda t: f"STARTS_WITH({t[0]}, {t[1]})"),
        )

    return st.recursive(_values, extend, max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(_expressions(), st.booleans())
def test_generated_expressions_always_parse_and_evaluate(expression: str, json_body: bool) -> None:
    # given
    msg = message(json_body=json_body)

    # when
    value = evaluate(expression, msg)

    # then: any JSON value or undefined, never an exception
    assert value is UNDEFINED or isinstance(value, bool | int | float | str | list | dict | type(None))
    assert compile_condition(expression)(msg) is (value is True)
