"""A trainer that follows EdgeLoop's trainer contract: logistic regression on gray pixels.

    python train.py INPUTS OUTPUTS

INPUTS holds ``manifest.json`` (schema ``edgeloop.training-manifest/1``), the decrypted sample
files it names and, when there is one, the champion's ONNX. The script trains on every sample
that is not part of the audit share (plus the base data, when ``base_data`` names a folder laid
out the same way), reports its accuracy on the audit samples, and writes ``model.onnx`` (with
the ``edgeloop.preprocess`` and ``edgeloop.labels`` metadata) and ``metrics.json`` to OUTPUTS.
It needs numpy, opencv-python-headless, scikit-learn, skl2onnx and onnx; not EdgeLoop itself.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import onnx
from skl2onnx import to_onnx
from sklearn.linear_model import LogisticRegression

SIZE = 16
# What the device does before calling the model: gray 16x16, pixels * scale, (x - mean) / std, flat.
PREPROCESS = {
    "input_kind": "image", "width": SIZE, "height": SIZE, "color": "gray", "layout": "flat",
    "scale": 1 / 255, "mean": [0.5], "std": [0.5], "output_kind": "probabilities",
}  # fmt: skip


def features(path: Path) -> np.ndarray:
    """The model input row for one sample file, exactly as PREPROCESS describes it."""
    image = np.load(path) if path.suffix == ".npy" else cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f"{path} is not an image")
    image = np.asarray(image)
    if image.ndim == 3:
        image = cv2.cvtColor(image[:, :, :3].astype(np.uint8), cv2.COLOR_BGR2GRAY)
    small = cv2.resize(image.astype(np.uint8), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    return ((small.astype(np.float32) / 255 - 0.5) / 0.5).reshape(-1)


def load(folder: Path, *, audit: bool) -> tuple[list[np.ndarray], list[str]]:
    manifest = json.loads((folder / "manifest.json").read_text())
    picked = [s for s in manifest["samples"] if bool(s["audit"]) == audit]
    return [features(folder / s["file"]) for s in picked], [s["label"] for s in picked]


def main(inputs: Path, outputs: Path) -> None:
    manifest = json.loads((inputs / "manifest.json").read_text())
    x, y = load(inputs, audit=False)
    base = manifest.get("base_data")
    if base and Path(base, "manifest.json").is_file():
        bx, by = load(Path(base), audit=False)
        x, y = bx + x, by + y
    champion = manifest.get("champion")
    # Keep the champion's labels (the cloud refuses a candidate that drops one).
    labels = sorted(set(y) | set(champion["labels"] if champion else []))
    missing = sorted(set(labels) - set(y))
    if missing:
        raise SystemExit(f"no training samples for labels {missing}; give base data that covers them")
    clf = LogisticRegression(max_iter=500, random_state=manifest["seed"])
    clf.fit(np.stack(x), np.array([labels.index(lbl) for lbl in y]))
    model = to_onnx(clf, np.stack(x[:1]), options={id(clf): {"zipmap": False}}, target_opset=17)
    onnx.helper.set_model_props(
        model, {"edgeloop.preprocess": json.dumps(PREPROCESS), "edgeloop.labels": json.dumps(labels)}
    )
    outputs.mkdir(parents=True, exist_ok=True)
    (outputs / "model.onnx").write_bytes(model.SerializeToString())
    metrics = {"train_samples": len(y), "train_accuracy": float(clf.score(np.stack(x), _index(y, labels)))}
    ax, ay = load(inputs, audit=True)
    if ax:
        metrics["audit_samples"] = len(ay)
        metrics["audit_accuracy"] = float(clf.score(np.stack(ax), _index(ay, labels)))
    (outputs / "metrics.json").write_text(json.dumps(metrics, indent=1))
    print(f"trained on {len(y)} samples, {len(labels)} labels: {metrics}")


def _index(names: list[str], labels: list[str]) -> np.ndarray:
    return np.array([labels.index(n) if n in labels else -1 for n in names])


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python train.py INPUTS OUTPUTS")
    main(Path(sys.argv[1]), Path(sys.argv[2]))
