"""Media generators for tests, benchmarks and demos: videos, image folders, sensor logs and
deliberately broken files, all made on the spot (no fixtures on disk)."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from edgeloop_capture.sources.base import Image


def pattern(index: int, width: int = 64, height: int = 48) -> Image:
    """A BGR frame that differs visibly from its neighbours (a moving bar on a gradient)."""
    x = np.linspace(0, 255, width, dtype=np.float32)
    base = np.tile(x, (height, 1))
    image = np.stack([base, np.roll(base, index * 3, axis=1), 255 - base], axis=2).astype(np.uint8)
    bar = (index * 7) % max(1, width - 8)
    image[:, bar : bar + 8] = (255, 255, 255)
    cv2.putText(image, str(index), (2, height - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1)
    return image


def write_video(path: Path, frames: int, *, width: int = 64, height: int = 48, fps: float = 25.0) -> Path:
    """An MJPG/AVI video of ``frames`` pattern frames."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (width, height))
    if not writer.isOpened():
        raise RuntimeError(f"OpenCV cannot write {path}")
    try:
        for i in range(frames):
            writer.write(pattern(i, width, height))
    finally:
        writer.release()
    return path


def write_images(folder: Path, count: int, *, start: int = 0, ext: str = "png") -> list[Path]:
    """``count`` numbered pattern images (``img_0000.png`` ...), each written under a hidden
    name and renamed, so a folder source watching ``folder`` never sees a half-written file."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(start, start + count):
        path = folder / f"img_{i:04d}.{ext}"
        ok, data = cv2.imencode(f".{ext}", pattern(i))
        if not ok:
            raise ValueError(f"OpenCV cannot encode .{ext} images")
        hidden = folder / f".{path.name}.part"
        hidden.write_bytes(data.tobytes())
        os.replace(hidden, path)
        paths.append(path)
    return paths


def write_corrupt_jpeg(path: Path) -> Path:
    """A file named .jpg holding a JPEG header and garbage."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4)
    return path


def write_sensor_csv(path: Path, rows: Sequence[dict[str, object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(rows[0])
    lines = [",".join(names)] + [",".join(str(row.get(n, "")) for n in names) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_sensor_jsonl(path: Path, rows: Sequence[dict[str, object] | str]) -> Path:
    """One JSON object a line; a ``str`` row is written as is (to make bad lines)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [row if isinstance(row, str) else json.dumps(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
