"""The demo's stand-in for human labellers.

Real labellers would work through ``labelling/queue.jsonl``; the demo knows its synthetic
ground truth, so it labels exactly the samples that were uploaded (and only those): it reads
each new sample's JSON sidecar, finds the frame's file name that capture recorded, looks up its
true label and writes a labels file under ``labels/`` as a labelling tool would.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from edgeloop.blobstore import SIDECAR_SUFFIX, BlobContainer

log = logging.getLogger(__name__)


@dataclass
class Labeller:
    """Labels uploaded samples from the scenario's truth (file name -> label)."""

    truth: Mapping[str, Mapping[str, Any]]
    labelled: dict[str, str] = field(default_factory=dict)
    unknown: dict[str, str] = field(default_factory=dict)
    rounds: int = 0

    def label_new(self, container: BlobContainer) -> int:
        """Label every uploaded sample not labelled yet; returns how many were labelled.

        ``container`` is the data container.
        """
        new: dict[str, str] = {}
        for info in container.list(""):
            name = info.name
            if not name.endswith(SIDECAR_SUFFIX) or name.startswith(("labels/", "labelling/", "summaries/")):
                continue
            sample_id = name.rsplit("/", 1)[-1][: -len(SIDECAR_SUFFIX)]
            if sample_id in self.labelled or sample_id in self.unknown:
                continue
            data, _info = container.read(name)
            label = self._truth_for(data)
            if label is None:
                self.unknown[sample_id] = name
                continue
            new[sample_id] = label
        if not new:
            return 0
        self.rounds += 1
        lines = "".join(json.dumps({"sample_id": s, "label": lbl}) + "\n" for s, lbl in sorted(new.items()))
        container.write(f"labels/demo-{self.rounds:04d}.jsonl", lines.encode("utf-8"))
        self.labelled.update(new)
        log.info("labelled %d uploaded samples (round %d)", len(new), self.rounds)
        return len(new)

    def _truth_for(self, sidecar: bytes) -> str | None:
        try:
            doc = json.loads(sidecar)
            attributes = doc["prediction"]["frame"]["attributes"]
            file_name = attributes.get("file_name") or attributes.get("path", "").rsplit("/", 1)[-1]
        except (ValueError, KeyError, TypeError, AttributeError):
            return None
        entry = self.truth.get(file_name)
        return None if entry is None else str(entry["label"])
