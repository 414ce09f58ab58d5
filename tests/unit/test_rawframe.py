"""The raw frame file format: written pixels read back exactly; torn, short, damaged or foreign
files refused with the reason."""

from __future__ import annotations

import os
import zlib
from pathlib import Path

import numpy as np
import pytest

from edgeloop import rawframe


def _write(path: Path, image: np.ndarray) -> Path:
    header, payload = rawframe.pack(image)
    path.write_bytes(header + bytes(payload))
    return path


@pytest.mark.parametrize("shape", [(480, 640, 3), (7, 5), (1, 1, 3)])
def test_pixels_read_back_exactly(tmp_path: Path, shape: tuple[int, ...]) -> None:
    # given
    image = np.random.default_rng(3).integers(0, 256, size=shape, dtype=np.uint8)
    path = _write(tmp_path / "f.raw", image)
    # when
    back = rawframe.read(path, display="f.raw")
    # then
    assert back.shape == image.shape
    assert np.array_equal(back, image)
    assert os.path.getsize(path) == rawframe.HEADER_SIZE + image.nbytes


def test_a_non_contiguous_view_is_written_as_its_pixels(tmp_path: Path) -> None:
    image = np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)[::2, ::2]
    assert np.array_equal(rawframe.read(_write(tmp_path / "v.raw", image), display="v"), image)


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[: rawframe.HEADER_SIZE + 10], "short (torn)"),
        (lambda b: b[:20], "shorter than its header"),
        (lambda b: b + b"x", "longer than its header says"),
        (lambda b: b[:40] + bytes([b[40] ^ 0xFF]) + b[41:], "fails its checksum"),
        (lambda b: b"JPEG" + b[4:], "not a raw frame"),
        (lambda b: b[:4] + bytes([9]) + b[5:], "format version 9"),
        (lambda b: b[:5] + bytes([7]) + b[6:], "unknown dtype code 7"),
        (lambda b: b[:8] + (999).to_bytes(4, "little") + b[12:], "claims a payload"),
        (lambda b: b"", "shorter than its header"),
    ],
)
def test_a_damaged_frame_is_refused_with_the_reason(tmp_path: Path, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    # given
    image = np.full((4, 6, 3), 77, dtype=np.uint8)
    good = _write(tmp_path / "g.raw", image).read_bytes()
    bad = tmp_path / "bad.raw"
    bad.write_bytes(damage(good))
    # when / then
    with pytest.raises(rawframe.RawFrameError, match=r"'cap/bad\.raw'") as caught:
        rawframe.read(bad, display="cap/bad.raw")
    assert reason in str(caught.value)


def test_a_missing_frame_is_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        rawframe.read(tmp_path / "gone.raw", display="gone.raw")


@pytest.mark.parametrize(
    "image",
    [np.zeros((2, 2, 4), np.uint8), np.zeros((2, 2), np.float32), np.zeros((2,), np.uint8)],
)
def test_pack_refuses_what_the_format_does_not_hold(image: np.ndarray) -> None:
    with pytest.raises(ValueError, match="raw frame holds"):
        rawframe.pack(image)


def test_the_checksum_is_zlibs_crc32_whichever_implementation_computes_it() -> None:
    # given: a camera-sized frame and a slice of it that starts mid-buffer
    pixels = np.random.default_rng(3).integers(0, 256, size=(480, 640, 3), dtype=np.uint8)
    header, payload = rawframe.pack(pixels)
    # then: the header holds zlib's CRC-32 of the pixels, so frames written by either
    # implementation read with the other
    assert rawframe.HEADER.unpack_from(header)[8] == zlib.crc32(payload)
    assert rawframe.crc32(payload[7:1001]) == zlib.crc32(payload[7:1001])
    assert rawframe.crc32(b"") == zlib.crc32(b"") == 0
