"""Run a trainer that works on files: lay out its inputs, launch it, check and collect its outputs.

The inputs folder holds decrypted samples: it is created private (mode 0700) in a temporary
directory and removed afterwards, whatever happened.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Any, Protocol

from edgeloop.model_metadata import LABELS_KEY, PREPROCESS_KEY, ModelMetadataError, metadata_from_map
from edgeloop_cloud.trainers.candidate import Candidate
from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.job import TrainingJob
from edgeloop_cloud.trainers.logtail import LogTail
from edgeloop_cloud.trainers.manifest import ChampionInfo, TrainerRequest, write_inputs
from edgeloop_cloud.trainers.output import read_output

log = logging.getLogger(__name__)


class Launcher(Protocol):
    """One way of running a contract trainer (a command, a Python entry point, an Azure ML job)."""

    def describe(self) -> dict[str, object]: ...

    def launch(self, request: TrainerRequest, tail: LogTail, workdir: Path) -> Path:
        """Run the trainer to the end and return the folder holding its outputs.

        Raises TrainerFailed when it cannot start, fails or times out.
        """
        ...

    def accepted(self, candidate: Candidate) -> dict[str, object]:
        """Called once the cloud accepted the output; extra facts for the model card."""
        ...


class FolderTrainer:
    """A ``Launcher`` behind the trainer contract."""

    def __init__(self, launcher: Launcher, *, base_data: str | None, log_lines: int) -> None:
        self.launcher = launcher
        self.base_data = base_data
        self.log_lines = log_lines

    def describe(self) -> dict[str, object]:
        return self.launcher.describe()

    def train(self, job: TrainingJob) -> Candidate:
        tail = LogTail(self.log_lines)
        with tempfile.TemporaryDirectory(prefix="edgeloop-train-") as tmp:
            workdir = Path(tmp)
            inputs, outputs = workdir / "inputs", workdir / "outputs"
            outputs.mkdir()
            info = champion_info(job.champion, job.champion_version)
            manifest = write_inputs(
                inputs, model_name=job.model_name, run_id=job.run_id, samples=job.samples, seed=job.seed,
                base_data=self.base_data, champion=job.champion, champion_info=info,
            )  # fmt: skip
            request = TrainerRequest(inputs=inputs, outputs=outputs, manifest=manifest)
            audit = len(manifest.samples) - len(manifest.training_samples())
            log.info("run %s: trainer %s on %d samples (%d audit)",
                     job.run_id, self.describe(), len(manifest.samples), audit)  # fmt: skip
            found = self.launcher.launch(request, tail, workdir)
            candidate = read_output(
                found,
                champion_labels=info.labels if info else None,
                sample_labels=job.training_labels(),
                log_tail=tail.lines(),
            )
        candidate.manifest = {**self._manifest(job, candidate.metrics), **self.launcher.accepted(candidate)}
        candidate.manifest["trainer"] = self.describe()
        return candidate

    def _manifest(self, job: TrainingJob, metrics: dict[str, Any]) -> dict[str, Any]:
        trained_on = [s for s in job.samples if not s.audit]
        return {
            "trainer": self.describe(),
            "seed": job.seed,
            "base_data": self.base_data,
            "metrics": metrics,
            "audit_samples": len(job.samples) - len(trained_on),
            "samples": [
                {"sample_id": s.sample_id, "blob": s.blob, "sha256": s.sha256, "label": s.label}
                for s in trained_on
            ],
        }


def champion_info(model: bytes | None, version: str | None) -> ChampionInfo | None:
    """What the manifest says of the champion: its labels and preprocess, from its metadata."""
    if model is None:
        return None
    import onnx
    from google.protobuf.message import DecodeError  # type: ignore[import-untyped]

    try:
        props = {p.key: p.value for p in onnx.load_from_string(model).metadata_props}
        meta = metadata_from_map(props)
    except (ModelMetadataError, DecodeError) as exc:
        raise TrainerFailed(f"the champion {version}'s metadata is unreadable: {exc}") from exc
    if meta.labels is None:
        raise TrainerFailed(f"the champion {version} has no {LABELS_KEY} / {PREPROCESS_KEY} metadata")
    return ChampionInfo(
        version=version or "",
        labels=meta.labels,
        preprocess=meta.preprocess.model_dump(mode="json") if meta.preprocess else None,
    )
