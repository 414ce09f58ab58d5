"""Entry points for the ``python`` trainer kind tests (imported in the trainer's child process)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from edgeloop_cloud.trainers import TrainerRequest


def copy_fixture(request: TrainerRequest) -> None:
    """Writes the model named by FIXTURE_MODEL and metrics that echo what the request said."""
    print(f"training {len(request.manifest.training_samples())} samples with seed {request.manifest.seed}")
    shutil.copy(os.environ["FIXTURE_MODEL"], request.model_path)
    doc = {
        "seed": request.manifest.seed,
        "first_file_exists": request.sample_path(request.manifest.samples[0]).is_file(),
    }
    Path(request.metrics_path).write_text(json.dumps(doc))


def crash(request: TrainerRequest) -> None:
    raise RuntimeError(f"cannot train on {len(request.manifest.samples)} samples")
