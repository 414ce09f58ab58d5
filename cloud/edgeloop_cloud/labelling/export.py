"""``edgeloop cloud label export``: the labelling queue as Label Studio tasks and CSV.

The queue is the trigger's (``labelling/queue.jsonl``, refreshed here from a fresh inventory);
each queued sample is fetched, decrypted and checked, its image copied to an ``ImageSink``
(never the data container), and listed in ``tasks.json`` (Label Studio's import format),
``queue.csv`` and ``label_config.xml`` in the output folder. Samples that cannot be opened are
listed with the reason; the rest are exported.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgeloop_cloud.errors import SampleError
from edgeloop_cloud.labelling import csvformat, labelstudio
from edgeloop_cloud.labelling.entries import QueueEntry
from edgeloop_cloud.labelling.images import ImageSink, viewable
from edgeloop_cloud.pipeline import CloudServices, export_labelling_queue, take_inventory
from edgeloop_cloud.samples import SampleRef, fetch_plaintext

log = logging.getLogger(__name__)

TASKS_FILE = "tasks.json"
CSV_FILE = "queue.csv"
CONFIG_FILE = "label_config.xml"


@dataclass
class ExportReport:
    out_dir: Path
    classes: list[str]
    exported: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "exported": len(self.exported),
            "tasks": str(self.out_dir / TASKS_FILE),
            "csv": str(self.out_dir / CSV_FILE),
            "label_config": str(self.out_dir / CONFIG_FILE),
            "classes": self.classes,
            "not_exported": self.problems,
        }


def export_for_labelling(
    svc: CloudServices, *, sink: ImageSink, out_dir: Path, classes: Sequence[str], limit: int | None = None
) -> ExportReport:
    """Write the queue's tasks, CSV and labelling config to ``out_dir``; images go to ``sink``."""
    inventory = take_inventory(svc)
    queued = export_labelling_queue(svc, inventory)
    log.info("%d samples queued for labelling", queued)
    report = ExportReport(out_dir=out_dir, classes=list(classes))
    entries = []
    for ref in inventory.unlabelled[:limit]:
        try:
            entries.append(_entry(svc, ref, sink))
        except SampleError as exc:
            report.problems.append(f"sample {ref.sample_id!r} ({ref.blob_name}): {exc}; not exported")
            continue
        report.exported.append(ref.sample_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / TASKS_FILE).write_text(labelstudio.tasks_json(entries, classes=classes), encoding="utf-8")
    (out_dir / CSV_FILE).write_text(csvformat.queue_csv(entries), encoding="utf-8")
    (out_dir / CONFIG_FILE).write_text(labelstudio.labelling_config(classes), encoding="utf-8")
    log.info("exported %d samples for labelling to %s", len(entries), out_dir)
    return report


def _entry(svc: CloudServices, ref: SampleRef, sink: ImageSink) -> QueueEntry:
    plaintext = fetch_plaintext(svc.data, ref, svc.opener)
    info = svc.data.info(ref.blob_name)
    metadata = {k.lower(): v for k, v in info.metadata.items()}
    data, content_type = viewable(plaintext, metadata.get("content_type", ""), sample_id=ref.sample_id)
    url = sink.put(sample_id=ref.sample_id, data=data, content_type=content_type)
    return QueueEntry(
        sample_id=ref.sample_id,
        url=url,
        device=ref.device,
        model_version=ref.model_version,
        predicted=metadata.get("label", ""),
        confidence=_float(metadata.get("confidence")),
    )


def _float(value: str | None) -> float | None:
    try:
        return None if value is None else float(value)
    except ValueError:
        return None
