"""Labels as a labelling step writes them, and the labelling queue of what is still unlabelled.

Labels live in the data container under ``labels/``: CSV files with a header holding at least
``sample_id`` and ``label``, or JSON Lines with those keys. Files are read in name order and a
later file's entry for the same sample id wins, so a correction is a new file (each correction
is listed). Within one file, a repeated entry with the same label is a duplicate (kept once, listed);
entries that disagree are a conflict: that file says nothing about the sample (an earlier
file's label stands, if any) and the conflict is listed. Rows that cannot be parsed are
reported, never silently dropped.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from edgeloop.blobstore import BlobContainer

log = logging.getLogger(__name__)

LABELS_PREFIX = "labels/"
QUEUE_BLOB = "labelling/queue.jsonl"


@dataclass(frozen=True)
class Label:
    sample_id: str
    label: str
    source: str = ""
    line: int = 0


@dataclass
class LabelSet:
    """Sample id -> label, with the problems met while reading."""

    labels: dict[str, Label] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)

    def get(self, sample_id: str) -> str | None:
        entry = self.labels.get(sample_id)
        return entry.label if entry else None


def parse_labels(name: str, text: str) -> tuple[list[Label], list[str]]:
    """The labels in one CSV or JSONL document, and a problem line for each bad row."""
    if name.endswith(".csv"):
        return parse_csv(name, text)
    if name.endswith((".jsonl", ".json")):
        return _parse_jsonl(name, text)
    return [], [f"{name}: not a labels file (expected .csv or .jsonl)"]


def parse_csv(name: str, text: str) -> tuple[list[Label], list[str]]:
    """The labels in a CSV with ``sample_id`` and ``label`` columns (any others are ignored),
    and a problem line for each row that gives none (no sample id, empty label)."""
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


def _parse_jsonl(name: str, text: str) -> tuple[list[Label], list[str]]:
    labels, problems = [], []
    for line_no, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            sample_id, label = str(row["sample_id"]).strip(), str(row["label"]).strip()
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"{name}:{line_no}: not a JSON object with sample_id and label ({exc})")
            continue
        if not sample_id or not label:
            problems.append(f"{name}:{line_no}: empty sample_id or label")
            continue
        labels.append(Label(sample_id=sample_id, label=label, source=name, line=line_no))
    return labels, problems


def settle(name: str, entries: list[Label]) -> tuple[list[Label], list[str]]:
    """One label per sample id from one file's entries: duplicates kept once, conflicts left out.

    Returns the settled labels and a problem line for each duplicate or conflict.
    """
    by_id: dict[str, list[Label]] = {}
    for entry in entries:
        by_id.setdefault(entry.sample_id, []).append(entry)
    settled, problems = [], []
    for sample_id, group in by_id.items():
        values = sorted({e.label for e in group})
        lines = ", ".join(str(e.line) for e in group)
        if len(values) > 1:
            problems.append(
                f"{name}: conflicting labels for sample {sample_id!r} (lines {lines}: "
                f"{', '.join(repr(v) for v in values)}); this file's label for it is ignored"
            )
            continue
        if len(group) > 1:
            problems.append(
                f"{name}: sample {sample_id!r} labelled {len(group)} times (lines {lines}); kept once"
            )
        settled.append(group[-1])
    return settled, problems


def load_labels(container: BlobContainer, prefix: str = LABELS_PREFIX) -> LabelSet:
    """Every label file under ``prefix``, later files overriding earlier ones."""
    result = LabelSet()
    for info in container.list(prefix):
        data, _ = container.read(info.name)
        labels, problems = parse_labels(info.name, data.decode("utf-8", errors="replace"))
        labels, repeats = settle(info.name, labels)
        result.problems.extend(problems + repeats)
        for entry in labels:
            before = result.labels.get(entry.sample_id)
            if before is not None and before.label != entry.label:
                result.corrections.append(
                    f"sample {entry.sample_id!r} relabelled {before.label!r} ({before.source}) -> "
                    f"{entry.label!r} ({entry.source})"
                )
            result.labels[entry.sample_id] = entry
    log.info("read %d labels (%d problems) under %s", len(result.labels), len(result.problems), prefix)
    return result


def export_queue(
    container: BlobContainer, unlabelled: Iterable[Mapping[str, object]], blob: str = QUEUE_BLOB
) -> int:
    """Write the labelling queue (one JSON object a line: sample id, blob, device, hints).

    Returns the number of entries; the previous queue is replaced.
    """
    rows = [json.dumps(dict(entry), sort_keys=True, default=str) for entry in unlabelled]
    container.write(
        blob, ("\n".join(rows) + "\n" if rows else "").encode(), content_type="application/x-ndjson"
    )
    return len(rows)
