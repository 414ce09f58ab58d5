"""A prediction-log batch: each stored line with its selection outcome spliced in, the same
records a parse and re-encode of every line would give, in the same key order."""

from __future__ import annotations

import gzip
import json

import pytest
from edgeloop_uploader.predlog import batch_bytes, log_record
from pydantic_core import to_json

from tests.unit.uploader_support import prediction


def reference(line: str, strategy: str | None) -> dict[str, object]:
    record = json.loads(line)
    record["selected"] = strategy is not None
    if strategy:
        record["strategy"] = strategy
    return record


def test_each_line_gets_its_selection_outcome_and_keeps_every_field_in_order() -> None:
    # given: lines as the log stores them, one selected, one selected without a strategy
    # recorded, one not selected, one with a strategy that needs escaping
    ids = ["01S", "01E", "01N", "01Q"]
    lines = [to_json(log_record(prediction(i), include_scores=True)).decode("utf-8") for i in ids]
    selections = {"01S": "uncertainty", "01E": "", "01Q": 'odd "name" \u00e9'}
    # when
    out = gzip.decompress(batch_bytes(lines, selections, ids)).decode("utf-8")
    # then: one line each, newline-terminated, equal to the parsed line plus the outcome
    assert out.endswith("\n")
    got = out.splitlines()
    assert len(got) == 4
    for text, line, sample_id in zip(got, lines, ids, strict=True):
        record = json.loads(text)
        expected = reference(line, selections.get(sample_id))
        assert record == expected
        assert list(record) == list(expected)
    assert json.loads(got[0])["strategy"] == "uncertainty"
    assert json.loads(got[1])["selected"] is True
    assert "strategy" not in json.loads(got[1])
    assert json.loads(got[2])["selected"] is False
    assert "strategy" not in json.loads(got[2])
    assert json.loads(got[3])["strategy"] == 'odd "name" \u00e9'


@pytest.mark.parametrize("line", ["", "{}", "[1]", '{"a": 1', "null"])
def test_a_line_that_is_not_a_json_object_is_refused_with_its_sample_id(line: str) -> None:
    with pytest.raises(ValueError, match="01X"):
        batch_bytes([line], {}, ["01X"])
