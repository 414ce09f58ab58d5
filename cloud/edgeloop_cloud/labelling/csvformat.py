"""The labelling queue as CSV, and labels read back from CSV.

The queue CSV has the columns ``sample_id,file,predicted_label,confidence,label`` with ``label``
left empty: filled in, the same file imports back (any CSV with ``sample_id`` and ``label``
columns does, Label Studio's CSV export of a project made from these tasks included).
Rows whose label is still empty are not labels: they are listed, not imported.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from edgeloop_cloud.labelling.entries import QueueEntry
from edgeloop_cloud.labels import Label

COLUMNS = ("sample_id", "file", "predicted_label", "confidence", "label")


def queue_csv(entries: Iterable[QueueEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in entries:
        confidence = "" if e.confidence is None else f"{e.confidence:g}"
        writer.writerow((e.sample_id, e.url, e.predicted, confidence, ""))
    return out.getvalue()


def parse_csv(name: str, text: str) -> tuple[list[Label], list[str]]:
    """The labels in a CSV with ``sample_id`` and ``label`` columns, and a line for each row
    that gives none (no sample id, empty label)."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not {"sample_id", "label"} <= set(reader.fieldnames):
        return [], [f"{name}: CSV header must name 'sample_id' and 'label' (got {reader.fieldnames})"]
    labels, problems = [], []
    for line_no, row in enumerate(reader, start=2):
        sample_id, label = (row.get("sample_id") or "").strip(), (row.get("label") or "").strip()
        if not sample_id:
            problems.append(f"{name}:{line_no}: no sample_id; not imported")
        elif not label:
            problems.append(f"{name}:{line_no}: sample {sample_id!r} has an empty label; not imported")
        else:
            labels.append(Label(sample_id=sample_id, label=label, source=name, line=line_no))
    return labels, problems
