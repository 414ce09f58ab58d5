"""Atomic sample files on the shared volume.

Layout under the volume root (``EDGELOOP_SAMPLES_DIR``)::

    capture/
      .incoming/                      temp files being written (same file system, renamed away)
      20260105T1200/                  one bucket per UTC minute of capture time
        01KE6Z...Q.jpg                <sample_id>.<ext>; ids sort by capture time

Bucket names sort by time, so the janitor walks buckets oldest first and rescans only the
buckets whose directory changed since its last run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

CAPTURE_DIR = "capture"
INCOMING_DIR = ".incoming"
BUCKET_FORMAT = "%Y%m%dT%H%M"


@dataclass(frozen=True)
class WrittenFile:
    file_ref: str
    path: Path
    sha256: str
    size: int


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class SampleWriter:
    """Writes each sample to a temp file, then renames it into its minute bucket.

    Plain ``os`` calls on string paths: this runs once per frame, and folders are created only
    when a call finds them missing (a new minute, or a volume cleaned under our feet).
    """

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.base = root / CAPTURE_DIR
        self.incoming = self.base / INCOMING_DIR
        self.fsync = fsync
        self._base = str(self.base)
        self._incoming = str(self.incoming)

    def write(self, data: bytes, *, sample_id: str, captured_at: datetime, ext: str) -> WrittenFile:
        """Write ``data`` as ``capture/<bucket>/<sample_id>.<ext>``.

        Raises:
            OSError: the volume is full, read-only or gone (the caller counts and skips).
        """
        bucket = captured_at.strftime(BUCKET_FORMAT)
        name = f"{sample_id}.{ext}"
        temp = os.path.join(self._incoming, name + ".tmp")
        final = os.path.join(self._base, bucket, name)
        try:
            self._write_temp(temp, data)
            try:
                os.replace(temp, final)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        return WrittenFile(
            file_ref=f"{CAPTURE_DIR}/{bucket}/{name}",
            path=Path(final),
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )

    def _write_temp(self, temp: str, data: bytes) -> None:
        try:
            fd = os.open(temp, _FLAGS, 0o644)
        except FileNotFoundError:
            os.makedirs(self._incoming, exist_ok=True)
            fd = os.open(temp, _FLAGS, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
