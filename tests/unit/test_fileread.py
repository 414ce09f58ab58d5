"""Reading a whole file (capture's folder sources, inference's sample files)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgeloop.fileread import read_whole


@pytest.mark.parametrize("size", [0, 1, 8859, 65535, 65536, 65537, 300_000])
def test_files_of_any_size_are_read_whole(tmp_path: Path, size: int) -> None:
    # given
    data = np.random.default_rng(size).integers(0, 256, size, dtype=np.uint8).tobytes()
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    # then
    assert read_whole(str(path)) == data


@pytest.mark.parametrize("claimed", [None, 0, 1, 99, 100, 101, 1 << 20])
def test_a_file_is_read_whole_whatever_size_it_claims(tmp_path: Path, claimed: int | None) -> None:
    data = bytes(range(100)) * 700  # more than one read chunk
    path = tmp_path / "f.bin"
    path.write_bytes(data)
    assert read_whole(path, claimed) == data
    assert read_whole(str(path), len(data)) == data


def test_reading_an_empty_a_missing_and_a_directory(tmp_path: Path) -> None:
    (tmp_path / "empty").write_bytes(b"")
    assert read_whole(tmp_path / "empty", 0) == b""
    assert read_whole(tmp_path / "empty", 10) == b""
    assert read_whole(tmp_path / "empty") == b""
    with pytest.raises(IsADirectoryError):
        read_whole(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        read_whole(tmp_path / "missing", 10)
    with pytest.raises(OSError):
        read_whole(tmp_path, 10)
