"""A set of names kept on disk as an append-only journal, so a save costs what changed.

A folder source's position is the set of file names it took. Rewriting the whole set at every
sent batch costs as much as the folder is large; the journal instead gets one record per save
holding only the names taken (``add``) and forgotten (``drop``) since the last one, appended and
fsynced. When records of names no longer in the set make up most of the file, it is rewritten
as one record of the live names (a temporary file, fsynced, renamed over it).

Each record is one line: the CRC-32 of the JSON payload in eight hex digits, a space, and the
payload, ``{"add": [...], "drop": [...]}``. Replaying the records in order gives the set. A last
record that is cut short or fails its checksum (a crash during an append) is ignored: it only
held names whose files are then taken again. A damaged record followed by good ones is not
something a crash leaves, and the journal is refused.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from edgeloop.statefile import write_bytes_atomically
from edgeloop_capture.progress import ProgressFormatError

log = logging.getLogger(__name__)


class NameJournal:
    """The journal file at ``path``; one writer at a time (the progress book's save)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        #: Names recorded in the file (adds and drops), live or not: what a rewrite would drop.
        self.entries = 0
        #: The last record read was cut short or damaged (the next write must be a rewrite).
        self.torn = False

    def read(self) -> set[str]:
        """Replay the journal.

        Raises:
            ProgressFormatError: the file is missing, unreadable or damaged before its last record.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError as exc:
            raise ProgressFormatError(f"its journal {self.path.name} is missing") from exc
        except OSError as exc:
            raise ProgressFormatError(f"cannot read its journal {self.path.name}: {exc.strerror}") from exc
        lines = data.split(b"\n")
        tail = lines.pop()  # what follows the last newline: empty unless the last append was cut
        names: set[str] = set()
        entries = 0
        torn = bool(tail)
        for number, line in enumerate(lines, start=1):
            record = _parse(line)
            if record is None:
                if number == len(lines) and not tail:
                    torn = True
                    break
                raise ProgressFormatError(f"record {number} of its journal {self.path.name} is damaged")
            add, drop = _changes(record, self.path.name, number)
            names.difference_update(drop)
            names.update(add)
            entries += len(add) + len(drop)
        if torn:
            log.info("the last record of %s was cut short; its files are taken again", self.path)
        self.entries = entries
        self.torn = torn
        return names

    def append(self, changes: Mapping[str, bool]) -> int:
        """Append one record (name -> True taken, False forgotten), fsynced; bytes written.

        Raises:
            OSError: not written; the file may end in a cut record (rewrite it next).
        """
        add = sorted(name for name, present in changes.items() if present)
        drop = sorted(name for name, present in changes.items() if not present)
        record: dict[str, Any] = {"add": add}
        if drop:
            record["drop"] = drop
        data = _line(record)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)  # no O_CREAT: a lost file is rewritten
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        self.entries += len(add) + len(drop)
        return len(data)

    def rewrite(self, names: Iterable[str]) -> int:
        """Replace the file by one record of ``names`` (temporary file, fsync, rename); bytes.

        Raises:
            OSError: not written (the old file is left as it was).
        """
        live = sorted(names)
        data = _line({"add": live})
        write_bytes_atomically(self.path, data, sync_folder=True)
        self.entries = len(live)
        self.torn = False
        return len(data)


def _line(record: dict[str, Any]) -> bytes:
    payload = json.dumps(record, separators=(",", ":")).encode("utf-8")
    return b"%08x %s\n" % (zlib.crc32(payload), payload)


def _parse(line: bytes) -> Any:
    """The record of a line whose checksum holds, else None."""
    crc, _, payload = line.partition(b" ")
    try:
        if len(crc) != 8 or int(crc, 16) != zlib.crc32(payload):
            return None
        return json.loads(payload.decode("utf-8"))
    except ValueError:  # includes UnicodeDecodeError and JSONDecodeError
        return None


def _changes(record: Any, name: str, number: int) -> tuple[list[str], list[str]]:
    if not isinstance(record, dict) or not set(record) <= {"add", "drop"}:
        raise ProgressFormatError(f"record {number} of its journal {name} is not an add/drop record")
    add, drop = record.get("add", []), record.get("drop", [])
    for names in (add, drop):
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ProgressFormatError(f"record {number} of its journal {name} holds other than names")
    return add, drop
