"""The digits drift scenario.

scikit-learn's bundled 8x8 handwritten digits are rendered as small camera frames (upscaled,
on a noisy background, JPEG-friendly BGR) and split into four disjoint sets:

- ``base``: clean frames the initial model is trained on;
- ``stream``: what the camera sees, clean for a while and then drifted (rotation, blur,
  contrast loss or a mix), so the model's confidence and accuracy drop part-way;
- ``test``: a held-out set drifted the same way, for judging models fairly;
- ``holdout``: the test digits rendered clean, so a retrained model is also checked on the
  old world.

The scenario knows its own ground truth (it is synthetic), which the demo's stand-in for
human labellers uses to label only the samples that were uploaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from numpy.typing import NDArray

DriftKind = Literal["rotate", "blur", "contrast", "mixed"]
DRIFT_KINDS: tuple[str, ...] = ("rotate", "blur", "contrast", "mixed")
Severity = Literal["mild", "medium", "severe"]

#: Rotation range in degrees for each severity (as in notes/learning-efficiency.md).
ROTATION = {"mild": (5.0, 15.0), "medium": (15.0, 25.0), "severe": (25.0, 40.0)}
#: Contrast kept (1 = unchanged) for each severity.
CONTRAST = {"mild": (0.6, 0.8), "medium": (0.4, 0.6), "severe": (0.25, 0.4)}
#: Gaussian blur sigma in frame pixels for each severity.
BLUR = {"mild": (3.0, 4.5), "medium": (4.5, 6.0), "severe": (6.0, 8.0)}

FRAME_SIZE = 64


@dataclass(frozen=True)
class ScenarioConfig:
    """What the scenario looks like; every field has a default that runs quickly."""

    seed: int = 7
    drift: DriftKind = "mixed"
    severity: Severity = "medium"
    base_size: int = 500
    stream_size: int = 800
    clean_share: float = 0.25
    test_size: int = 400
    frame_size: int = FRAME_SIZE


@dataclass
class Split:
    """Frames (N x H x W x 3, uint8 BGR) with their true labels and whether each is drifted."""

    frames: NDArray[np.uint8]
    labels: NDArray[np.int64]
    drifted: NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return int(self.labels.shape[0])


@dataclass
class Scenario:
    config: ScenarioConfig
    base: Split
    stream: Split
    test: Split
    holdout: Split
    class_names: list[str]


def _background(rng: np.random.Generator, size: int) -> NDArray[np.float32]:
    gradient = np.linspace(rng.uniform(10, 40), rng.uniform(10, 40), size, dtype=np.float32)
    noise = rng.normal(0.0, 6.0, (size, size)).astype(np.float32)
    return gradient[None, :] + noise


def render(
    digit: NDArray[np.floating], rng: np.random.Generator, size: int = FRAME_SIZE
) -> NDArray[np.uint8]:
    """An 8x8 digit (values 0..16) as a ``size`` x ``size`` BGR frame: bright ink on a dark,
    noisy background, with a little jitter in position and ink level like a real camera."""
    ink = cv2.resize((digit.astype(np.float32) / 16.0), (size - 8, size - 8), interpolation=cv2.INTER_CUBIC)
    canvas = np.zeros((size, size), np.float32)
    dx, dy = rng.integers(0, 9, size=2)
    canvas[dy : dy + size - 8, dx : dx + size - 8] = np.clip(ink, 0.0, 1.0)
    level = rng.uniform(190, 235)
    gray = np.clip(_background(rng, size) + canvas * level, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(cv2.cvtColor(gray, cv2.COLOR_GRAY2BGR))


def drift(frame: NDArray[np.uint8], kind: str, severity: str, rng: np.random.Generator) -> NDArray[np.uint8]:
    """Apply one drift to a frame. ``mixed`` rotates and lowers contrast, as a camera knocked
    askew in poor light would."""
    out = frame
    size = frame.shape[0]
    if kind in ("rotate", "mixed"):
        low, high = ROTATION[severity]
        angle = float(rng.uniform(low, high) * rng.choice([-1.0, 1.0]))
        matrix = cv2.getRotationMatrix2D((size / 2, size / 2), angle, 1.0)
        out = np.asarray(cv2.warpAffine(out, matrix, (size, size), borderMode=cv2.BORDER_REFLECT), np.uint8)
    if kind == "blur":
        sigma = float(rng.uniform(*BLUR[severity]))
        out = np.asarray(cv2.GaussianBlur(out, (0, 0), sigma), np.uint8)
    if kind in ("contrast", "mixed"):
        keep = float(rng.uniform(*CONTRAST[severity]))
        mean = float(out.mean())
        out = np.clip((out.astype(np.float32) - mean) * keep + mean, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def _split(
    digits: NDArray[np.floating],
    labels: NDArray[np.int64],
    rng: np.random.Generator,
    cfg: ScenarioConfig,
    drifted: NDArray[np.bool_],
) -> Split:
    frames = np.stack([render(d, rng, cfg.frame_size) for d in digits])
    for i in np.flatnonzero(drifted):
        frames[i] = drift(frames[i], cfg.drift, cfg.severity, rng)
    return Split(frames=frames, labels=labels.astype(np.int64), drifted=drifted)


def build(cfg: ScenarioConfig | None = None) -> Scenario:
    """Build the scenario deterministically from ``cfg.seed``.

    Raises:
        ValueError: the requested sizes need more digits than the 1,797 bundled ones.
    """
    from sklearn.datasets import load_digits

    cfg = cfg or ScenarioConfig()
    data = load_digits()
    images, targets = data.images, data.target.astype(np.int64)
    needed = cfg.base_size + cfg.stream_size + cfg.test_size
    if needed > len(targets):
        raise ValueError(
            f"scenario needs {needed} digits (base {cfg.base_size} + stream {cfg.stream_size} + "
            f"test {cfg.test_size}); only {len(targets)} are bundled"
        )
    rng = np.random.default_rng(cfg.seed)
    order = rng.permutation(len(targets))
    cuts = np.cumsum([cfg.base_size, cfg.stream_size, cfg.test_size])
    base_i, stream_i, test_i = (order[a:b] for a, b in zip([0, *cuts[:-1]], cuts, strict=True))
    n_clean = round(cfg.stream_size * cfg.clean_share)
    stream_drift = np.arange(cfg.stream_size) >= n_clean
    return Scenario(
        config=cfg,
        base=_split(images[base_i], targets[base_i], rng, cfg, np.zeros(len(base_i), bool)),
        stream=_split(images[stream_i], targets[stream_i], rng, cfg, stream_drift),
        test=_split(images[test_i], targets[test_i], rng, cfg, np.ones(len(test_i), bool)),
        holdout=_split(images[test_i], targets[test_i], rng, cfg, np.zeros(len(test_i), bool)),
        class_names=[str(c) for c in data.target_names],
    )


def frame_name(index: int) -> str:
    """File name of stream frame ``index`` in the image folder the capture module reads."""
    return f"frame_{index:05d}.png"


def write_stream_folder(scenario: Scenario, folder: Path) -> Path:
    """Write the stream as PNG frames plus ``truth.json`` (file name -> true label), which only
    the demo's labeller reads. Returns the truth file's path."""
    folder.mkdir(parents=True, exist_ok=True)
    truth: dict[str, dict[str, object]] = {}
    for i, (frame, label, drifted) in enumerate(
        zip(scenario.stream.frames, scenario.stream.labels, scenario.stream.drifted, strict=True)
    ):
        name = frame_name(i)
        tmp = folder / f".{name}.tmp.png"
        cv2.imwrite(str(tmp), frame)
        tmp.rename(folder / name)
        truth[name] = {"label": scenario.class_names[int(label)], "drifted": bool(drifted)}
    truth_path = folder.parent / f"{folder.name}.truth.json"
    truth_path.write_text(json.dumps(truth, indent=0), encoding="utf-8")
    return truth_path
