"""``edgeloop cloud label import``: answers from a labelling tool into ``labels/``.

Reads Label Studio's JSON export or a CSV (``sample_id,label``), settles duplicates and
conflicts within the file (``labels.settle``), and keeps only labels for samples that are in the
data container and classes the model knows. What is kept becomes a new CSV under ``labels/``,
named by the time of the import so it sorts after earlier imports and is never overwritten;
everything left out is listed with the reason, in the report and in an import record in the
runs container (``<model>/label-imports/<name>.json``).
"""

from __future__ import annotations

import csv
import io
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from edgeloop.blobstore import ANY, BlobContainer, BlobExistsError
from edgeloop_cloud.labelling import labelstudio
from edgeloop_cloud.labels import LABELS_PREFIX, Label, load_labels, parse_csv, settle
from edgeloop_cloud.pipeline import CloudServices
from edgeloop_cloud.samples import find_samples

log = logging.getLogger(__name__)

FORMATS = ("labelstudio", "csv")


@dataclass
class ImportReport:
    source: str
    labels_blob: str | None = None
    record_blob: str | None = None
    imported: dict[str, str] = field(default_factory=dict)
    not_imported: list[str] = field(default_factory=list)
    corrections: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "imported": len(self.imported),
            "labels_blob": self.labels_blob,
            "record": self.record_blob,
            "not_imported": self.not_imported,
            "corrections": self.corrections,
        }


def detect_format(name: str) -> str:
    return "csv" if name.lower().endswith(".csv") else "labelstudio"


def parse(name: str, text: str, fmt: str) -> tuple[list[Label], list[str]]:
    if fmt == "csv":
        return parse_csv(name, text)
    return labelstudio.parse_export(name, text)


def import_labels(
    svc: CloudServices, *, name: str, text: str, classes: Sequence[str], fmt: str | None = None
) -> ImportReport:
    """Import one answers file; returns what was imported and what was not, with reasons."""
    source = PurePath(name).name
    entries, problems = parse(source, text, fmt or detect_format(name))
    settled, repeats = settle(source, entries)
    report = ImportReport(source=source, not_imported=problems + repeats)
    known = {ref.sample_id for ref in find_samples(svc.data)}
    allowed = set(classes)
    kept = []
    for entry in settled:
        if entry.sample_id not in known:
            report.not_imported.append(
                f"{source}: entry {entry.line}: unknown sample {entry.sample_id!r} (not in the data "
                "container); not imported"
            )
        elif entry.label not in allowed:
            report.not_imported.append(
                f"{source}: entry {entry.line}: sample {entry.sample_id!r}: unknown class "
                f"{entry.label!r} (classes: {', '.join(classes)}); not imported"
            )
        else:
            kept.append(entry)
    before = load_labels(svc.data)
    for entry in kept:
        old = before.get(entry.sample_id)
        if old is not None and old != entry.label:
            report.corrections.append(f"sample {entry.sample_id!r} relabelled {old!r} -> {entry.label!r}")
        report.imported[entry.sample_id] = entry.label
    stamp = svc.clock.now().strftime("%Y%m%dT%H%M%S%fZ")
    if kept:
        report.labels_blob = _write_new(
            svc.data, f"{LABELS_PREFIX}{stamp}-{_stem(source)}", ".csv", _csv(kept), content_type="text/csv"
        )
    report.record_blob = _write_new(
        svc.runs,
        f"{svc.config.model_name}/label-imports/{stamp}-{_stem(source)}",
        ".json",
        _record(report),
        content_type="application/json",
    )
    log.info(
        "imported %d labels from %s into %s (%d not imported)",
        len(kept), source, report.labels_blob, len(report.not_imported),
    )  # fmt: skip
    return report


def _stem(source: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in PurePath(source).stem)
    return stem[:60] or "labels"


def _csv(entries: Sequence[Label]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("sample_id", "label"))
    writer.writerows((e.sample_id, e.label) for e in entries)
    return out.getvalue().encode("utf-8")


def _record(report: ImportReport) -> bytes:
    doc = {**report.as_dict(), "labels": report.imported}
    return json.dumps(doc, indent=2, sort_keys=True).encode("utf-8")


def _write_new(container: BlobContainer, base: str, suffix: str, data: bytes, *, content_type: str) -> str:
    """Write ``data`` to a blob that does not exist yet (``base``, then ``base-2``...): an
    earlier file is never overwritten."""
    for attempt in range(1, 100):
        blob = f"{base}{'' if attempt == 1 else f'-{attempt}'}{suffix}"
        try:
            container.write(blob, data, if_none_match=ANY, content_type=content_type)
        except BlobExistsError:
            continue
        return blob
    raise BlobExistsError(f"{container.name}: no free blob name for {base}{suffix}")
