"""Label Studio's formats: tasks to import, the labelling config, and the JSON export read back.

A task carries the image URL and the sample id in ``data`` (``$image``, ``$sample_id``) and the
device's predicted label as a pre-annotation. The labelling config names its Choices ``label``,
so Label Studio's CSV export of the project has the ``sample_id,label`` columns the CSV import
reads. The JSON export is a list of tasks, each with ``annotations[].result[].value.choices``;
the latest annotation that was not cancelled (skipped) counts.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any
from xml.sax.saxutils import quoteattr

from edgeloop_cloud.labelling.entries import QueueEntry
from edgeloop_cloud.labels import Label

#: The Choices control's name (and so the label column of Label Studio's CSV export).
CONTROL = "label"
#: The Image object's name and the task data key holding the image URL.
IMAGE = "image"


def labelling_config(classes: Sequence[str]) -> str:
    """A Label Studio labelling config: the image and one single choice among ``classes``."""
    choices = "\n".join(f"    <Choice value={quoteattr(name)}/>" for name in classes)
    return (
        "<View>\n"
        f'  <Image name="{IMAGE}" value="${IMAGE}"/>\n'
        '  <Text name="sample" value="$sample_id"/>\n'
        f'  <Choices name="{CONTROL}" toName="{IMAGE}" choice="single" showInLine="true">\n'
        f"{choices}\n"
        "  </Choices>\n"
        "</View>\n"
    )


def task(entry: QueueEntry, *, classes: Sequence[str]) -> dict[str, Any]:
    """One Label Studio task; the device's prediction becomes a pre-annotation when it is a class."""
    doc: dict[str, Any] = {
        "data": {
            IMAGE: entry.url,
            "sample_id": entry.sample_id,
            "device": entry.device,
            "model_version": entry.model_version,
            "predicted": entry.predicted,
            "confidence": entry.confidence,
        }
    }
    if entry.predicted and entry.predicted in classes:
        prediction: dict[str, Any] = {
            "model_version": entry.model_version or "device",
            "result": [
                {
                    "from_name": CONTROL,
                    "to_name": IMAGE,
                    "type": "choices",
                    "value": {"choices": [entry.predicted]},
                }
            ],
        }
        if entry.confidence is not None:
            prediction["score"] = entry.confidence
        doc["predictions"] = [prediction]
    return doc


def tasks_json(entries: Iterable[QueueEntry], *, classes: Sequence[str]) -> str:
    """The tasks file Label Studio imports (a JSON list)."""
    return json.dumps([task(e, classes=classes) for e in entries], indent=2, ensure_ascii=False) + "\n"


def parse_export(name: str, text: str) -> tuple[list[Label], list[str]]:
    """The labels in a Label Studio JSON export, and a line for each task that gives none.

    A task gives no label when it has no sample id, no annotation that was not cancelled, or
    its latest annotation chose nothing or more than one class.
    """
    try:
        doc = json.loads(text)
    except ValueError as exc:
        return [], [f"{name}: not JSON ({exc}); expected Label Studio's JSON export (a list of tasks)"]
    if not isinstance(doc, list):
        return [], [
            f"{name}: expected Label Studio's JSON export, a list of tasks (got {type(doc).__name__})"
        ]
    labels, problems = [], []
    for position, item in enumerate(doc, start=1):
        where = f"{name}: task {position}"
        if not isinstance(item, dict):
            problems.append(f"{where}: not a task object")
            continue
        where = f"{name}: task {position} (id {item.get('id', '?')})"
        data = item.get("data")
        sample_id = str(data.get("sample_id", "")).strip() if isinstance(data, dict) else ""
        if not sample_id:
            problems.append(f"{where}: no data.sample_id; not imported")
            continue
        label, why = _answer(item.get("annotations"))
        if label is None:
            problems.append(f"{where}: sample {sample_id!r} {why}; not imported")
            continue
        labels.append(Label(sample_id=sample_id, label=label, source=name, line=position))
    return labels, problems


def _answer(annotations: object) -> tuple[str | None, str]:
    """The class chosen by the latest annotation that was not cancelled, or None and why."""
    if not isinstance(annotations, list) or not annotations:
        return None, "has no annotation"
    kept = [a for a in annotations if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        return None, "was skipped (every annotation cancelled)"
    latest = max(
        kept, key=lambda a: (str(a.get("updated_at") or a.get("created_at") or ""), _int(a.get("id")))
    )
    chosen: list[str] = []
    for result in latest.get("result") or []:
        value = result.get("value") if isinstance(result, dict) else None
        if isinstance(value, dict) and isinstance(value.get("choices"), list):
            chosen.extend(str(c).strip() for c in value["choices"])
    chosen = [c for c in chosen if c]
    if not chosen:
        return None, f"annotation {latest.get('id', '?')} chose no class"
    if len(set(chosen)) > 1:
        return None, f"annotation {latest.get('id', '?')} chose more than one class {sorted(set(chosen))}"
    return chosen[0], ""


def _int(value: object) -> int:
    try:
        return int(str(value))
    except ValueError:
        return 0
