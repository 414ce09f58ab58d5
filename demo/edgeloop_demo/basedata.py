"""The demo's base data: the digits scenario's clean frames as a labelled dataset folder.

The cloud reads base data from its ``training.base_data`` setting; the demo writes the
scenario's ``base`` split (clean frames to train on) and ``holdout`` split (clean frames of the
test digits, the gate's fixed hold-out) as PNG files with a ``labels.csv`` manifest
(``file,label,holdout``) and points the setting at that folder. PNG is lossless, so the cloud
decodes the very frames the scenario rendered, in the scenario's order.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import cv2
from edgeloop_cloud.basedata import MANIFEST_NAME, BaseSet

from edgeloop_demo.scenario import Scenario, ScenarioConfig, Split, build

#: Where the demo keeps its base data, under its state folder.
BASE_FOLDER = "base-data"


def write_base_folder(folder: Path, *, seed: int = 7) -> Path:
    """Write the base set of the scenario with ``seed`` to ``folder``; returns the folder."""
    scenario = build(ScenarioConfig(seed=seed))
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, int]] = []
    for part, split, held in (("train", scenario.base, 0), ("holdout", scenario.holdout, 1)):
        (folder / part).mkdir(exist_ok=True)
        for k, (frame, label) in enumerate(zip(split.frames, split.labels, strict=True)):
            name = f"{part}/{k:04d}.png"
            if not cv2.imwrite(str(folder / name), frame):
                raise OSError(f"cannot write {folder / name}")
            rows.append((name, scenario.class_names[int(label)], held))
    with (folder / MANIFEST_NAME).open("w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(("file", "label", "holdout"))
        writer.writerows(rows)
    return folder


def base_data_setting(folder: Path) -> dict[str, Any]:
    """The cloud config's ``training.base_data`` for a folder ``write_base_folder`` made."""
    return {"folder": str(folder.resolve())}


def digits_base_set(*, seed: int = 7, limit: int | None = None) -> BaseSet:
    """The same base set in memory (no files); ``limit`` keeps only the first frames of each part."""
    scenario = build(ScenarioConfig(seed=seed))
    train, hold = _head(scenario, scenario.base, limit), _head(scenario, scenario.holdout, limit)
    return BaseSet(
        train_images=train[0],
        train_labels=train[1],
        holdout_images=hold[0],
        holdout_labels=hold[1],
        description={
            "source": f"digits scenario seed {seed}",
            "train": len(train[0]),
            "holdout": len(hold[0]),
        },
    )


def _head(scenario: Scenario, split: Split, limit: int | None) -> tuple[list[Any], list[str]]:
    n = len(split) if limit is None else min(limit, len(split))
    return list(split.frames[:n]), [scenario.class_names[int(i)] for i in split.labels[:n]]
