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


class SampleWriter:
    """Writes each sample to a temp file, then renames it into its minute bucket."""

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = root
        self.base = root / CAPTURE_DIR
        self.incoming = self.base / INCOMING_DIR
        self.fsync = fsync
        self._buckets: set[str] = set()

    def write(self, data: bytes, *, sample_id: str, captured_at: datetime, ext: str) -> WrittenFile:
        """Write ``data`` as ``capture/<bucket>/<sample_id>.<ext>``.

        Raises:
            OSError: the volume is full, read-only or gone (the caller counts and skips).
        """
        bucket = captured_at.strftime(BUCKET_FORMAT)
        name = f"{sample_id}.{ext}"
        final_dir = self.base / bucket
        if bucket not in self._buckets or not final_dir.is_dir():
            final_dir.mkdir(parents=True, exist_ok=True)
            self.incoming.mkdir(parents=True, exist_ok=True)
            self._buckets.add(bucket)
        temp = self.incoming / f"{name}.tmp"
        try:
            with open(temp, "xb") as fh:
                fh.write(data)
                if self.fsync:
                    fh.flush()
                    os.fsync(fh.fileno())
            os.replace(temp, final_dir / name)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        return WrittenFile(
            file_ref=f"{CAPTURE_DIR}/{bucket}/{name}",
            path=final_dir / name,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
        )
