"""Label Studio's task, config and export formats, and the labelling CSV, without a server.

The export fixtures are what Label Studio 1.23.2 wrote for a project where task 1 (sample
``a``) was answered ``1`` and then ``2``, and task 2 (sample ``b``) was skipped.
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from edgeloop_cloud.labelling import csvformat, labelstudio
from edgeloop_cloud.labelling.entries import QueueEntry
from edgeloop_cloud.labels import load_labels, parse_csv, parse_labels

from edgeloop.blobstore import MemoryContainer

FIXTURES = Path(__file__).parent / "fixtures"


def test_real_export_takes_the_latest_annotation_and_lists_the_skipped_task() -> None:
    # given
    text = (FIXTURES / "labelstudio-1.23.2-export.json").read_text(encoding="utf-8")
    # when
    labels, problems = labelstudio.parse_export("export.json", text)
    # then
    assert [(e.sample_id, e.label, e.line) for e in labels] == [("a", "2", 1)]
    assert len(problems) == 1
    assert "'b'" in problems[0]
    assert "skipped" in problems[0]


def _task(sample_id: object, *annotations: dict[str, object]) -> dict[str, object]:
    return {"id": 7, "data": {"sample_id": sample_id, "image": "x"}, "annotations": list(annotations)}


def _annotation(ident: int, *choices: str, cancelled: bool = False, at: str = "") -> dict[str, object]:
    result = [
        {"from_name": "label", "to_name": "image", "type": "choices", "value": {"choices": list(choices)}}
    ]
    return {"id": ident, "result": result if choices else [], "was_cancelled": cancelled, "updated_at": at}


@pytest.mark.parametrize(
    ("task", "expected", "why"),
    [
        (_task("s1", _annotation(1, "cat")), "cat", ""),
        (
            _task("s1", _annotation(1, "cat", at="2026-01-02"), _annotation(2, "dog", at="2026-01-01")),
            "cat",
            "",
        ),
        (_task("s1", _annotation(1, "cat"), _annotation(2, "dog", cancelled=True)), "cat", ""),
        (_task("s1"), None, "has no annotation"),
        (_task("s1", _annotation(1, cancelled=True)), None, "skipped"),
        (_task("s1", _annotation(1)), None, "chose no class"),
        (_task("s1", _annotation(1, "cat", "dog")), None, "more than one class"),
        (_task("", _annotation(1, "cat")), None, "no data.sample_id"),
    ],
)
def test_export_answers(task: dict[str, object], expected: str | None, why: str) -> None:
    # when
    labels, problems = labelstudio.parse_export("e.json", json.dumps([task]))
    # then
    assert [e.label for e in labels] == ([expected] if expected else [])
    assert (why in problems[0]) if why else problems == []


@pytest.mark.parametrize(
    ("text", "complaint"),
    [("{not json", "not JSON"), ('{"tasks": []}', "a list of tasks"), ("[3]", "not a task object")],
)
def test_export_that_is_not_a_task_list_is_named(text: str, complaint: str) -> None:
    labels, problems = labelstudio.parse_export("e.json", text)
    assert labels == []
    assert complaint in problems[0]


def test_tasks_carry_image_and_sample_id_and_the_prediction_only_when_it_is_a_class() -> None:
    # given
    entries = [
        QueueEntry(sample_id="s1", url="/data/local-files/?d=s1.png", predicted="cat", confidence=0.6),
        QueueEntry(sample_id="s2", url="https://x/s2.png?sig", predicted="zebra"),
    ]
    # when
    tasks = json.loads(labelstudio.tasks_json(entries, classes=["cat", "dog"]))
    # then
    assert [t["data"]["sample_id"] for t in tasks] == ["s1", "s2"]
    assert tasks[0]["data"]["image"] == "/data/local-files/?d=s1.png"
    assert tasks[0]["predictions"][0]["result"][0]["value"] == {"choices": ["cat"]}
    assert tasks[0]["predictions"][0]["score"] == 0.6
    assert "predictions" not in tasks[1]


def test_labelling_config_lists_every_class_once_escaped() -> None:
    # when
    root = ET.fromstring(labelstudio.labelling_config(["cat", 'a "b" & <c>']))
    # then
    choices = root.find("Choices")
    assert choices is not None
    assert choices.get("name") == labelstudio.CONTROL
    assert [c.get("value") for c in choices.findall("Choice")] == ["cat", 'a "b" & <c>']
    assert root.find("Image").get("value") == "$image"  # type: ignore[union-attr]


def test_queue_csv_filled_in_imports_back() -> None:
    # given
    entries = [QueueEntry(sample_id="s1", url="u1", predicted="cat", confidence=0.25), QueueEntry("s2", "u2")]
    written = csvformat.queue_csv(entries)
    assert written.splitlines()[0] == ",".join(csvformat.COLUMNS)
    filled = written.replace("s1,u1,cat,0.25,", "s1,u1,cat,0.25,dog")
    # when
    labels, problems = parse_csv("q.csv", filled)
    # then
    assert [(e.sample_id, e.label) for e in labels] == [("s1", "dog")]
    assert problems == ["q.csv:3: sample 's2' has an empty label; not imported"]


def test_real_csv_export_reads_each_annotation_as_a_row() -> None:
    # given: Label Studio's CSV export holds one row per annotation (sample a answered twice)
    text = (FIXTURES / "labelstudio-1.23.2-export.csv").read_text(encoding="utf-8")
    # when
    labels, problems = parse_csv("export.csv", text)
    # then
    assert sorted((e.sample_id, e.label) for e in labels) == [("a", "1"), ("a", "2")]
    assert problems == []


def test_csv_without_the_columns_is_named() -> None:
    labels, problems = parse_csv("x.csv", "id,class\n1,cat\n")
    assert labels == []
    assert "'sample_id' and 'label'" in problems[0]


def test_a_labels_csv_in_the_data_container_names_each_row_it_cannot_use() -> None:
    # given: the pipeline's labels/ reader and the import share one CSV reader
    container = MemoryContainer("data")
    text = "file,sample_id,label\nf1,s1,cat\nf2,,dog\nf3,s3,\nf4,s4,dog\n"
    container.write("labels/a.csv", text.encode())
    # when
    result = load_labels(container)
    # then
    assert {k: v.label for k, v in result.labels.items()} == {"s1": "cat", "s4": "dog"}
    assert result.problems == [
        "labels/a.csv:3: no sample_id; not imported",
        "labels/a.csv:4: sample 's3' has an empty label; not imported",
    ]
    assert parse_csv("labels/a.csv", text) == parse_labels("labels/a.csv", text)
