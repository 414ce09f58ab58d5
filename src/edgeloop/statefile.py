"""Small JSON state documents written so that a crash leaves the old one or the new one."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_json_atomically(path: Path, doc: dict[str, Any]) -> None:
    """Write ``doc`` to a temporary file beside ``path``, fsync it and rename it over ``path``.

    Raises:
        OSError: the folder cannot be made or written (nothing is left behind).
    """
    # json.dumps, not json.dump: only the one-shot form uses the C encoder (about 3.5x
    # faster on a large document, e.g. a filter's state).
    write_bytes_atomically(path, json.dumps(doc, separators=(",", ":")).encode("utf-8"))


def write_bytes_atomically(path: Path, data: bytes, *, sync_folder: bool = False) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it and rename it over ``path``;
    with ``sync_folder`` the folder is fsynced too, so the rename itself survives a power loss.

    Raises:
        OSError: the folder cannot be made or written (nothing is left behind).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if sync_folder:
        fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    """Make the entries of ``folder`` (a file created, renamed or linked there) durable.

    Raises:
        OSError: the folder cannot be opened or synced.
    """
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
