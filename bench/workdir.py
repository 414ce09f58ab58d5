"""Where the benchmarks put their files, and what creating a file costs there.

Capture writes a file a frame, so a folder where creating a file is slow shows up in every
figure of capture and the pipeline. On one machine the same ext4 disk cost 0.03 CPU ms a create
in most folders and 0.3-1.1 ms in ``/tmp`` (something there watches every file made), more than
all of capture's own work a frame. Each benchmark makes its folders with ``tempfile`` (so under
``TMPDIR``); ``python -m bench --workdir DIR`` sets ``TMPDIR`` for them, and this module measures
the folder so that every run says what its disk cost.
"""

from __future__ import annotations

import os
import resource
import tempfile
from pathlib import Path
from typing import Any

#: A memory-backed folder to compare with (Linux).
MEMORY = Path("/dev/shm")
#: Above this CPU a create the summary warns that file-heavy figures measure the folder.
SLOW_CREATE_MS = 0.2
_PAYLOAD = b"\0" * 2048  # about a 64x64 PNG frame


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def create_cost_ms(parent: Path, files: int = 200) -> float:
    """CPU ms (user + system) to create, write and close one 2 KB file in a new folder under
    ``parent``, as capture stores a frame; the files are removed after."""
    with tempfile.TemporaryDirectory(prefix="edgeloop-bench-disk-", dir=parent) as folder:
        started = _cpu_s()
        for i in range(files):
            fd = os.open(f"{folder}/{i}.png", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, _PAYLOAD)
            finally:
                os.close(fd)
        return (_cpu_s() - started) / files * 1000


def describe(parent: Path | None = None) -> dict[str, Any]:
    """The benchmarks' folder (``TMPDIR`` or the system's) and the create cost there, with
    the same on ``/dev/shm`` where there is one."""
    folder = Path(parent or tempfile.gettempdir())
    found: dict[str, Any] = {"folder": str(folder), "create_cpu_ms": round(create_cost_ms(folder), 3)}
    if MEMORY.is_dir() and os.access(MEMORY, os.W_OK):
        found["memory_create_cpu_ms"] = round(create_cost_ms(MEMORY), 3)
    return found


def line(found: dict[str, Any]) -> str:
    text = f"work folder {found['folder']}: a file created {found['create_cpu_ms']:.3f} CPU ms"
    if "memory_create_cpu_ms" in found:
        text += f" ({MEMORY}: {found['memory_create_cpu_ms']:.3f})"
    if found["create_cpu_ms"] > SLOW_CREATE_MS:
        text += (
            "; slow: capture writes a file a frame, so its figures and the pipeline's measure this "
            "folder (python -m bench --workdir DIR, or TMPDIR, puts the files elsewhere)"
        )
    return text
