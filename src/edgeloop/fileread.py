"""Reading a whole small file in as few system calls as the hot paths need.

Capture reads every frame file of a folder source and inference every sample file it scores.
``open(...).read()`` makes seven system calls for that (two ``fstat``, an ``lseek``, the read
and one more read to find the end), ``Path.read_bytes`` builds a ``Path`` and a buffered file
object besides; each call is also a point where another thread takes the GIL.
"""

from __future__ import annotations

import os
from pathlib import Path

_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
#: Bytes asked for at once once the expected size is passed (the file grew).
_CHUNK = 1 << 16


def read_whole(path: str | Path, size: int | None = None) -> bytes:
    """All the bytes of a file: ``open``, one ``read`` of ``size`` + 1 bytes (``size``: what the
    caller expects, else the file's ``fstat`` size) and ``close``. A read shorter than asked is
    the end of a regular file; one that fills its buffer means the file is longer than expected
    (it grew, or ``size`` was wrong), and it is read on to its end. A file shorter than ``size`` is
    what it is (callers that know a checksum tell it apart).

    Raises:
        OSError: missing, unreadable, a folder.
    """
    fd = os.open(path, _FLAGS)
    try:
        want = (os.fstat(fd).st_size if size is None else size) + 1
        chunks = []
        while True:
            chunk = os.read(fd, want)
            chunks.append(chunk)
            if len(chunk) < want:
                break
            want = _CHUNK
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)
