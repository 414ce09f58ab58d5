"""The first model of the sensor example, made by the same trainer the cloud runs later.

    python initial.py BASE OUT.onnx [--seed N]

Lays out a trainer inputs folder as the cloud does (``manifest.json`` of schema
``edgeloop.training-manifest/1`` with no new samples and ``base_data`` = BASE), runs
``examples/trainers/gboost/train.py`` on it as a command, and copies its ``model.onnx`` to OUT.
Register and sign it with ``edgeloop deploy prepare --model OUT.onnx --model-name sensor``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TRAINER = Path(__file__).resolve().parent.parent / "trainers" / "gboost" / "train.py"


def train_initial(base: Path, out: Path, *, seed: int = 0) -> dict[str, object]:
    """Train on the base data only; returns the trainer's metrics."""
    with tempfile.TemporaryDirectory(prefix="sensor-initial-") as work:
        inputs, outputs = Path(work) / "inputs", Path(work) / "outputs"
        inputs.mkdir()
        manifest = {
            "schema": "edgeloop.training-manifest/1", "model_name": "sensor", "run_id": "initial",
            "seed": seed, "base_data": str(base.resolve()), "champion": None, "samples": [],
        }  # fmt: skip
        (inputs / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        subprocess.run([sys.executable, str(TRAINER), str(inputs), str(outputs)], check=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(outputs / "model.onnx", out)
        metrics: dict[str, object] = json.loads((outputs / "metrics.json").read_text(encoding="utf-8"))
    return metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("base", type=Path, help="base data folder (data.py base)")
    parser.add_argument("out", type=Path, help="where to write the ONNX model")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    metrics = train_initial(args.base, args.out, seed=args.seed)
    print(f"initial model: {args.out} {metrics}")


if __name__ == "__main__":
    main()
