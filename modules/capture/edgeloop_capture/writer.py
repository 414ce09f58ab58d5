"""Atomic sample files on the shared volume.

Layout under the volume root (``EDGELOOP_SAMPLES_DIR``)::

    capture/
      .incoming/                      temp files being written (same file system, renamed away)
      20260105T1200/                  one bucket per UTC minute of capture time
        01KE6Z...Q.jpg                <sample_id>.<ext>; ids sort by capture time
    frames/                           raw frames (``frames.store: raw``), same layout; mount a
                                      memory-backed file system here (docs/capture.md)

Bucket names sort by time, so the janitor walks buckets oldest first and rescans only the
buckets whose directory changed since its last run.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

CAPTURE_DIR = "capture"
FRAMES_DIR = "frames"
INCOMING_DIR = ".incoming"
BUCKET_FORMAT = "%Y%m%dT%H%M"


@dataclass(frozen=True)
class WrittenFile:
    file_ref: str
    #: The file's path as a string (a ``Path`` a frame costs more than the rest of the bookkeeping).
    location: str
    sha256: str | None
    size: int

    @property
    def path(self) -> Path:
        return Path(self.location)


_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


class SampleWriter:
    """Writes each sample to a temp file, then renames it into its minute bucket.

    Plain ``os`` calls on string paths: this runs once per frame, and folders are created only
    when a call finds them missing (a new minute, or a volume cleaned under our feet).
    """

    def __init__(self, root: Path, *, fsync: bool = False, subdir: str = CAPTURE_DIR) -> None:
        self.root = root
        self.subdir = subdir
        self.base = root / subdir
        self.incoming = self.base / INCOMING_DIR
        self.fsync = fsync
        self._base = str(self.base)
        self._incoming = str(self.incoming)
        self._last_bucket: tuple[tuple[object, int], str] | None = None

    def write(
        self,
        data: bytes | Sequence[bytes | memoryview],
        *,
        sample_id: str,
        captured_at: datetime,
        ext: str,
        digest: bool = True,
    ) -> WrittenFile:
        """Write ``data`` (one buffer, or several written in order) as
        ``<subdir>/<bucket>/<sample_id>.<ext>``; with ``digest`` its SHA-256 is computed.

        Raises:
            OSError: the volume is full, read-only or gone (the caller counts and skips).
        """
        bucket = self._bucket(captured_at)
        name = f"{sample_id}.{ext}"
        temp = f"{self._incoming}/{name}.tmp"
        final = f"{self._base}/{bucket}/{name}"
        parts: Sequence[bytes | memoryview] = (data,) if isinstance(data, bytes) else data
        try:
            size = self._write_temp(temp, parts)
            try:
                os.replace(temp, final)
            except FileNotFoundError:
                os.makedirs(os.path.dirname(final), exist_ok=True)
                os.replace(temp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temp)
            raise
        sha256 = None
        if digest:
            hasher = hashlib.sha256()
            for part in parts:
                hasher.update(part)
            sha256 = hasher.hexdigest()
        file_ref = f"{self.subdir}/{bucket}/{name}"
        return WrittenFile(file_ref=file_ref, location=final, sha256=sha256, size=size)

    def _bucket(self, captured_at: datetime) -> str:
        """The bucket of ``captured_at``, formatted once a minute, not once a frame."""
        key = (captured_at.tzinfo, int(captured_at.timestamp()) // 60)
        last = self._last_bucket  # one tuple: sources' threads share the writer
        if last is not None and last[0] == key:
            return last[1]
        name = captured_at.strftime(BUCKET_FORMAT)
        self._last_bucket = (key, name)
        return name

    def _write_temp(self, temp: str, parts: Sequence[bytes | memoryview]) -> int:
        try:
            fd = os.open(temp, _FLAGS, 0o644)
        except FileNotFoundError:
            os.makedirs(self._incoming, exist_ok=True)
            fd = os.open(temp, _FLAGS, 0o644)
        size = 0
        try:
            for part in parts:
                view = memoryview(part).cast("B")
                size += view.nbytes
                written = os.write(fd, view)
                while written < len(view):  # a short write (rare): the rest
                    view = view[written:]
                    written = os.write(fd, view)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return size
