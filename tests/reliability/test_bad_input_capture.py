"""Bad input against capture: broken, empty, hostile and huge images in a watched folder, and
sensor logs with NaN, infinite and out-of-range readings.

Each bad file or reading is skipped and counted with a reason naming it, the source keeps
running, and every good sample before and after it is captured.
"""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeloop_capture.testing import pattern, write_images

from tests.reliability.conftest import AreaLedger
from tests.unit.test_capture_sources import Run, wait_for


def _png_bomb(width: int, height: int) -> bytes:
    """A PNG whose header claims ``width`` x ``height`` pixels, with almost no data."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _jpeg(index: int, width: int = 64, height: int = 48) -> bytes:
    image = pattern(index, width, height)
    ok, data = cv2.imencode(".jpg", image)
    assert ok
    return bytes(data)


#: name -> content; every one of these must be skipped (or, if decodable, captured whole).
BAD_FILES: dict[str, bytes] = {
    "b01_truncated_half.jpg": _jpeg(1)[: len(_jpeg(1)) // 2],
    "b02_truncated_header.jpg": _jpeg(2)[:20],
    "b03_garbage.jpg": bytes(range(256)) * 8,
    "b04_jpeg_header_then_garbage.jpg": b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x13" * 900,
    "b05_zero_bytes.jpg": b"",
    "b06_zero_bytes.png": b"",
    "b07_png_bomb.png": _png_bomb(60_000, 60_000),
    "b08_png_wrong_crc.png": _png_bomb(64, 48)[:-4] + b"\x00\x00\x00\x00",
    "b09_text_named_jpg.jpg": b"hello, not an image\n",
}


def test_broken_empty_and_hostile_images_are_skipped_and_good_ones_flow(
    tmp_path: Path, ledger: AreaLedger
) -> None:
    # given: good images around the corpus, and one big valid image
    folder = tmp_path / "in"
    write_images(folder, 2, start=0)
    for name, data in BAD_FILES.items():
        (folder / name).write_bytes(data)
    big = np.zeros((3000, 4000, 3), dtype=np.uint8)
    big[::50] = 255
    cv2.imwrite(str(folder / "c_big_4000x3000.jpg"), big)
    write_images(folder, 2, start=90)  # img_0090.png, img_0091.png: after the corpus
    definition = {"id": "dir", "kind": "folder", "path": "in", "poll_s": 0.05, "settle_s": 0}
    ledger.record(inputs=len(BAD_FILES) + 1)
    # when
    with Run(tmp_path, definition) as run:
        wait_for(lambda: {"img_0090.png", "img_0091.png"} <= set(run.attr("file_name")), timeout=60)
        wait_for(lambda: sum(run.worker.skipped.values()) + len(run.refs) >= len(BAD_FILES) + 5, timeout=30)
        state = run.state
        errors = run.worker.errors
        skipped = dict(run.worker.skipped)
        last_skip = str(run.worker.health().get("lastSkip"))
    captured = set(run.attr("file_name"))
    # then: the good ones are captured, the source still runs, nothing crashed it
    assert {"img_0000.png", "img_0001.png", "img_0090.png", "img_0091.png"} <= captured
    assert state == "running"
    assert errors == 0
    # and: each bad file was skipped with a reason, or (a decodable truncated JPEG) captured whole
    for name in BAD_FILES:
        if name in captured:
            ref = next(r for r in run.refs if r.attributes["file_name"] == name)
            assert ref.file_ref is not None
            decoded = cv2.imread(str(tmp_path / ref.file_ref))
            assert decoded is not None, f"{name} was captured but what landed on the volume does not decode"
    not_captured = [n for n in BAD_FILES if n not in captured]
    assert sum(skipped.values()) >= len(not_captured), skipped
    assert last_skip != "None"


@pytest.mark.parametrize(
    ("lines", "good"),
    [
        (['{"x": 1, "y": 2}', '{"x": NaN, "y": 2}', '{"x": 3, "y": 4}'], [[1.0, 2.0], [3.0, 4.0]]),
        (['{"x": 1, "y": 2}', '{"x": Infinity, "y": 2}', '{"x": 3, "y": 4}'], [[1.0, 2.0], [3.0, 4.0]]),
        (['{"x": 1, "y": 2}', '{"x": -Infinity, "y": 2}', '{"x": 3, "y": 4}'], [[1.0, 2.0], [3.0, 4.0]]),
        (['{"x": 1, "y": 2}', '{"x": 1e400, "y": 2}', '{"x": 3, "y": 4}'], [[1.0, 2.0], [3.0, 4.0]]),
        (['{"x": 1, "y": 2}', '{"x": "1e999", "y": 2}', '{"x": 3, "y": 4}'], [[1.0, 2.0], [3.0, 4.0]]),
    ],
    ids=["nan", "inf", "-inf", "overflow", "string-overflow"],
)
def test_sensor_readings_that_are_not_finite_are_skipped_with_the_reason(
    tmp_path: Path, lines: list[str], good: list[list[float]], ledger: AreaLedger
) -> None:
    # given
    (tmp_path / "v.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    definition = {"id": "vib", "kind": "sensor", "path": "v.jsonl", "realtime": False, "fields": ["x", "y"]}
    ledger.record(inputs=1)
    # when
    with Run(tmp_path, definition) as run:
        wait_for(lambda: run.state == "finished")
    # then: the readings that are numbers flow; the one that is not is skipped, naming the field
    vectors = [ref.vector for ref in run.refs]
    assert all(v is not None and all(np.isfinite(v)) for v in vectors), vectors
    assert vectors == good
    assert run.worker.skipped["bad_reading"] == 1
    assert "x" in str(run.worker.last_skip)


def test_sensor_csv_with_nan_and_inf_cells_is_skipped_with_the_reason(
    tmp_path: Path, ledger: AreaLedger
) -> None:
    # given
    rows = ["t,temp", "1,20.5", "2,nan", "3,inf", "4,-inf", "5,21.0"]
    (tmp_path / "env.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    definition = {"id": "env", "kind": "sensor", "path": "env.csv", "realtime": False, "fields": ["temp"]}
    ledger.record(inputs=3)
    # when
    with Run(tmp_path, definition) as run:
        wait_for(lambda: run.state == "finished")
    # then
    assert [ref.vector for ref in run.refs] == [[20.5], [21.0]]
    assert run.worker.skipped["bad_reading"] == 3
    assert json.dumps(run.worker.health()).count("temp") >= 1
