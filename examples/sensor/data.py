"""Synthetic banknote-like sensor readings: 4 float features, 2 classes, an optional drift.

    python data.py base OUT [--seed N] [--train 400] [--holdout 200]
    python data.py stream OUT.csv [--seed N] [--count 300] [--drift 1.0]

Each reading is what an optical sensor measures on a banknote's wavelet-transformed image
(``variance``, ``skewness``, ``curtosis``, ``entropy``), labelled ``genuine`` or ``forged``.
``base`` writes the clean base data as EdgeLoop's cloud reads it through ``training.base_data``
(a folder: ``labels.csv`` with columns ``file,label,holdout`` and one ``{"vector": [...]}`` file
per reading under ``samples/``, the last ``--holdout`` readings marked as the gate's hold-out).
``stream`` writes a sensor log (CSV) the capture module replays and, beside it,
``<name>.truth.csv`` (``line,label``: the CSV line of each reading and its true class) that
plays the person who labels samples. ``--drift`` (0 = none, 1 = full) moves every reading by a
recalibration offset: drifted genuine notes then look forged to a model trained on clean data.
Needs numpy only.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import numpy as np

FEATURES = ("variance", "skewness", "curtosis", "entropy")
LABELS = ("forged", "genuine")
_MEANS = {"genuine": (2.5, 4.0, 0.0, -1.0), "forged": (-2.0, -1.0, 2.0, -1.5)}
_STD = (1.2, 1.5, 1.5, 1.0)
#: What a sensor recalibration adds to every reading at drift 1.
DRIFT_OFFSET = (-4.0, -4.5, 0.0, 5.0)


def readings(count: int, *, seed: int, drift: float = 0.0) -> tuple[np.ndarray, list[str]]:
    """``count`` readings (float32, shape [count, 4]) and their labels, classes alternating at random."""
    rng = np.random.default_rng(seed)
    labels = [LABELS[int(i)] for i in rng.integers(0, 2, size=count)]
    means = np.asarray([_MEANS[label] for label in labels], dtype=np.float64)
    values = means + rng.normal(size=(count, len(FEATURES))) * np.asarray(_STD)
    values += drift * np.asarray(DRIFT_OFFSET)
    return values.astype(np.float32), labels


def write_base(out: Path, *, seed: int, train: int, holdout: int) -> Path:
    """The base data folder: ``labels.csv`` (``file,label,holdout``) and ``samples/b<n>.json``."""
    values, labels = readings(train + holdout, seed=seed)
    (out / "samples").mkdir(parents=True, exist_ok=True)
    rows = ["file,label,holdout"]
    for n, (row, label) in enumerate(zip(values, labels, strict=True)):
        name = f"samples/b{n:05d}.json"
        (out / name).write_text(json.dumps({"vector": [round(float(v), 5) for v in row]}), encoding="utf-8")
        rows.append(f"{name},{label},{int(n >= train)}")
    manifest = out / "labels.csv"
    manifest.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return manifest


def write_stream(path: Path, *, seed: int, count: int, drift: float) -> Path:
    """The sensor log (CSV with a header) and its truth file ``<stem>.truth.csv``. The log appears
    whole (written aside, then renamed), so a capture module waiting for it never reads half."""
    values, labels = readings(count, seed=seed, drift=drift)
    path.parent.mkdir(parents=True, exist_ok=True)
    truth = path.with_name(f"{path.stem}.truth.csv")
    part = path.with_name(f"{path.name}.part")
    with part.open("w", newline="", encoding="utf-8") as log, truth.open("w", encoding="utf-8") as out:
        writer = csv.writer(log)
        writer.writerow(FEATURES)
        out.write("line,label\n")
        for n, (row, label) in enumerate(zip(values, labels, strict=True)):
            writer.writerow([f"{float(v):.5f}" for v in row])
            out.write(f"{n + 2},{label}\n")  # line 1 is the header
    part.replace(path)
    return truth


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    base = sub.add_parser("base", help="the clean base data folder")
    base.add_argument("out", type=Path)
    base.add_argument("--seed", type=int, default=1)
    base.add_argument("--train", type=int, default=400)
    base.add_argument("--holdout", type=int, default=200)
    stream = sub.add_parser("stream", help="a sensor log to replay, with its truth file")
    stream.add_argument("out", type=Path)
    stream.add_argument("--seed", type=int, default=2)
    stream.add_argument("--count", type=int, default=300)
    stream.add_argument("--drift", type=float, default=1.0, help="0 = clean, 1 = fully drifted")
    args = parser.parse_args(argv)
    if args.what == "base":
        print(f"base data: {write_base(args.out, seed=args.seed, train=args.train, holdout=args.holdout)}")
    else:
        truth = write_stream(args.out, seed=args.seed, count=args.count, drift=args.drift)
        print(f"sensor log: {args.out} ({args.count} readings, drift {args.drift}); truth: {truth}")


if __name__ == "__main__":
    main()
