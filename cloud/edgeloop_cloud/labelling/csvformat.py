"""The labelling queue as CSV, and labels read back from CSV.

The queue CSV has the columns ``sample_id,file,predicted_label,confidence,label`` with ``label``
left empty: filled in, the same file imports back (any CSV with ``sample_id`` and ``label``
columns does, Label Studio's CSV export of a project made from these tasks included).
Rows whose label is still empty are not labels: they are listed, not imported. Reading it back
is ``labels.parse_csv``, the same reader that reads CSV files under ``labels/``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from edgeloop_cloud.labelling.entries import QueueEntry

COLUMNS = ("sample_id", "file", "predicted_label", "confidence", "label")


def queue_csv(entries: Iterable[QueueEntry]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in entries:
        confidence = "" if e.confidence is None else f"{e.confidence:g}"
        writer.writerow((e.sample_id, e.url, e.predicted, confidence, ""))
    return out.getvalue()
