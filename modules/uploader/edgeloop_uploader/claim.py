"""Taking files into the outbox so nothing else can delete them: a hard link when the outbox is
on the same mount as the shared sample volume, else a durable copy."""

from __future__ import annotations

import errno
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from edgeloop.statefile import fsync_folder

log = logging.getLogger(__name__)


def claim_file(
    source: Path, target: Path, *, durable: bool = True, link: Callable[[Path, Path], None] = os.link
) -> str:
    """Make ``target`` a second name (or a copy) of ``source``; returns ``"link"`` or ``"copy"``.

    Capture's janitor deletes its own name after a TTL; the outbox's name keeps the data.

    Raises:
        FileNotFoundError: ``source`` is gone (the janitor was first, or a bad reference).
        OSError: the outbox's disk is full or not writable.
    """
    target.unlink(missing_ok=True)
    try:
        link(source, target)
        if durable:
            fsync_folder(target.parent)
        return "link"
    except OSError as exc:
        # EXDEV: different mounts (two bind mounts of one disk count as two); EPERM/ENOTSUP: the
        # file system has no hard links.
        if exc.errno not in (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK):
            raise
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(source, "rb") as fin, open(tmp, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1024 * 1024)
            fout.flush()
            if durable:
                os.fsync(fout.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    if durable:
        fsync_folder(target.parent)
    return "copy"


def write_durably(target: Path, data: bytes, *, durable: bool = True) -> None:
    """Write through a temporary name and rename, so a crash never leaves a partial file;
    with ``durable`` the data also reaches the disk before the rename."""
    tmp = target.with_name(f".{target.name}.tmp")
    try:
        with open(tmp, "wb") as out:
            out.write(data)
            out.flush()
            if durable:
                os.fsync(out.fileno())
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
