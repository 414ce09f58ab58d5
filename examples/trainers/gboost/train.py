"""A trainer that follows EdgeLoop's trainer contract: gradient-boosted trees on sensor vectors.

    python train.py INPUTS OUTPUTS

INPUTS holds ``manifest.json`` (schema ``edgeloop.training-manifest/1``), the decrypted sample
files it names (``{"vector": [...]}`` documents, as the uploader ships sensor readings) and,
when there is one, the champion's ONNX. ``base_data``, when set, is the reference of
``training.base_data`` (or the trainer's own ``base_data``): a folder with ``labels.csv``
(``file,label,holdout``) or a sub-folder per class of ``.json`` vector files, or a CSV manifest
file. Its samples not in the gate's hold-out (the ``holdout`` column, or a ``holdout/``
sub-folder) train too; base data that marks no hold-out is refused, since the gate's drawn
hold-out would leak into training. The audit samples are never trained on; the script reports
its accuracy on them. It writes ``model.onnx`` (scikit-learn's GradientBoostingClassifier
exported with skl2onnx, with ``edgeloop.preprocess`` for vectors: the training mean and std per
feature, applied on the device, and ``edgeloop.labels``) and ``metrics.json`` to OUTPUTS.
It needs numpy, scikit-learn, skl2onnx and onnx; not EdgeLoop itself.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import onnx
from skl2onnx import to_onnx
from sklearn.ensemble import GradientBoostingClassifier


def vector(path: Path) -> np.ndarray:
    """The feature vector of one sample file."""
    doc = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(doc, dict) or not isinstance(doc.get("vector"), list):
        raise SystemExit(f"{path} is not a vector sample (a JSON object with a 'vector' list)")
    return np.asarray(doc["vector"], dtype=np.float32)


def load_samples(folder: Path, *, audit: bool) -> tuple[list[np.ndarray], list[str]]:
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    picked = [s for s in manifest["samples"] if bool(s["audit"]) == audit]
    return [vector(folder / s["file"]) for s in picked], [s["label"] for s in picked]


def load_base(reference: str) -> tuple[list[np.ndarray], list[str]]:
    """The base data's training part (everything outside the gate's hold-out)."""
    path = Path(reference)
    if reference.startswith("blob:") or not path.exists():
        raise SystemExit(f"base_data {reference!r} is not a local folder or CSV file")
    csv_file = path if path.is_file() else path / "labels.csv"
    if csv_file.is_file():
        with csv_file.open(encoding="utf-8-sig", newline="") as fin:
            rows = list(csv.DictReader(fin))
        if not rows or "holdout" not in rows[0]:
            raise SystemExit(f"base_data {csv_file} needs a holdout column marking the gate's hold-out")
        held = ("1", "true", "yes")
        picked = [(r["file"], r["label"]) for r in rows if r["holdout"].strip().lower() not in held]
        root = csv_file.parent
    else:
        if not (path / "holdout").is_dir():
            raise SystemExit(f"base_data {path} needs a holdout/<class>/ folder marking the gate's hold-out")
        picked = [(f.relative_to(path).as_posix(), f.parent.name) for f in sorted(path.glob("*/*.json"))
                  if f.parent.parent == path and f.parent.name != "holdout"]  # fmt: skip
        root = path
    return [vector(root / file) for file, _ in picked], [label for _, label in picked]


def main(inputs: Path, outputs: Path) -> None:
    manifest = json.loads((inputs / "manifest.json").read_text(encoding="utf-8"))
    x, y = load_samples(inputs, audit=False)
    if manifest.get("base_data"):
        bx, by = load_base(manifest["base_data"])
        x, y = bx + x, by + y
    champion = manifest.get("champion")
    # Keep the champion's labels (the cloud refuses a candidate that drops one).
    labels = sorted(set(y) | set(champion["labels"] if champion else []))
    missing = sorted(set(labels) - set(y))
    if missing or len(labels) < 2:
        raise SystemExit(f"training samples cover {sorted(set(y))}; need each of {labels} (two at least)")
    features = np.stack(x)
    mean, std = features.mean(axis=0), features.std(axis=0) + 1e-6
    clf = GradientBoostingClassifier(n_estimators=100, max_depth=3, random_state=manifest["seed"])
    clf.fit((features - mean) / std, _index(y, labels))
    model = to_onnx(clf, features[:1], options={id(clf): {"zipmap": False}}, target_opset=17)
    preprocess = {
        "input_kind": "vector", "vector_size": int(features.shape[1]), "scale": 1.0,
        "mean": [float(v) for v in mean], "std": [float(v) for v in std], "output_kind": "probabilities",
    }  # fmt: skip
    onnx.helper.set_model_props(
        model, {"edgeloop.preprocess": json.dumps(preprocess), "edgeloop.labels": json.dumps(labels)}
    )
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "model.onnx").write_bytes(model.SerializeToString())
    train_accuracy = clf.score((features - mean) / std, _index(y, labels))
    metrics = {"train_samples": len(y), "train_accuracy": float(train_accuracy)}
    ax, ay = load_samples(inputs, audit=True)
    if ax:
        metrics["audit_samples"] = len(ay)
        metrics["audit_accuracy"] = float(clf.score((np.stack(ax) - mean) / std, _index(ay, labels)))
    (outputs / "metrics.json").write_text(json.dumps(metrics, indent=1), encoding="utf-8")
    print(f"trained on {len(y)} samples, {len(labels)} labels: {metrics}")


def _index(names: list[str], labels: list[str]) -> np.ndarray:
    return np.array([labels.index(n) if n in labels else -1 for n in names])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python train.py INPUTS OUTPUTS")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
