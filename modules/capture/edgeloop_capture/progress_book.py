"""The positions of every file source in one JSON file in the capture's state folder.

``<EDGELOOP_STATE_DIR>/capture-progress.json``, written to a temporary file, fsynced and renamed
over the old one after each batch of references the hub has taken (when a position moved on),
and when a file source reaches its end. A folder source's names live in a journal of their own
beside it (``capture-taken-<id>.jsonl``, see ``progress_journal``), brought up to date just
before the progress file that refers to it is written, so a save costs the names taken since the
last one, not the whole folder. A position is kept per source id together with the
source's input (kind and path): a source whose input changed starts afresh. A file that cannot
be read as a progress file is logged, shown in ``getStats`` and set aside (renamed to
``*.corrupt``); every source then starts afresh, nothing stops. Without a state folder the
positions live in memory only (a restart takes every file source from the start).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

from edgeloop.statefile import write_json_atomically
from edgeloop_capture.progress import Journaled, Position, ProgressFormatError
from edgeloop_capture.progress_journal import NameJournal

log = logging.getLogger(__name__)

FILE_NAME = "capture-progress.json"
VERSION = 1
#: A folder source's taken names, beside the progress file: ``capture-taken-<source id>.jsonl``.
JOURNAL_PREFIX = "capture-taken-"


def journal_name(source_id: str) -> str:
    """The journal file of a source (source ids are letters, digits, '_' and '-')."""
    return f"{JOURNAL_PREFIX}{source_id}.jsonl"


class _Entry:
    def __init__(self, key: dict[str, str], position: Position) -> None:
        self.key = key
        self.position = position


class ProgressBook:
    """Positions by source id; ``path`` None keeps them in memory only."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._save_lock = threading.Lock()
        self._active: dict[str, _Entry] = {}
        self._saved: dict[str, Any] = {}
        self._dirty = False
        self.writes = 0
        self.write_errors = 0
        self.last_write_error: str | None = None
        self.corrupt: str | None = None
        self.resumed: dict[str, str] = {}
        #: Sources forgotten whose journals go once a progress file without them is written.
        self._forgotten: set[str] = set()
        #: The document last written (a save whose document is the same writes journals only).
        self._written: dict[str, Any] | None = None

    @classmethod
    def in_folder(cls, state_dir: Path | None) -> ProgressBook:
        return cls(state_dir / FILE_NAME if state_dir is not None else None)

    def load(self) -> None:
        """Read the file (once, at start). Never raises: a missing file is a first start, an
        unreadable one is reported and set aside."""
        if self.path is None:
            log.warning(
                "EDGELOOP_STATE_DIR is not set: where file sources got to is kept in memory only, "
                "so a restart takes folders, videos and sensor logs again from the start"
            )
            return
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as exc:
            self._reject(f"cannot read {self.path}: {exc.strerror or exc}", set_aside=False)
            return
        try:
            doc = json.loads(data.decode("utf-8"))
            if not isinstance(doc, dict) or doc.get("version") != VERSION:
                raise ValueError(f"not a version {VERSION} progress document")
            sources = doc.get("sources")
            if not isinstance(sources, dict):
                raise ValueError("'sources' is not an object")
        except ValueError as exc:
            self._reject(f"{self.path} is not a progress file ({exc})", set_aside=True)
            return
        with self._lock:
            self._saved = sources

    def attach(self, source_id: str, key: dict[str, str], position: Position) -> Position:
        """The position ``source_id`` reads from: the one it already has in this process when
        its input (``key``) is unchanged, else ``position`` restored from the file when the file
        has one for the same input, else ``position`` as it is (a fresh start)."""
        with self._lock:
            active = self._active.get(source_id)
            if active is not None and active.key == key:
                return active.position
            # the saved entry stays in what a save writes until the position takes over
            saved = self._saved.get(source_id)
        # restored before a save can see it: a save would write (and a folder source's journal
        # would be rewritten from) a position not yet restored
        if self.path is not None and isinstance(position, Journaled):
            position.use_journal(NameJournal(self.path.with_name(journal_name(source_id))))
        resumed: str | None = None
        if active is not None:
            log.info("source %s reads another input now: it starts afresh", source_id)
        elif isinstance(saved, dict) and saved.get("key") == key:
            try:
                position.restore(saved.get("position"))
            except ProgressFormatError as exc:
                self.corrupt = f"{self.path}: the position of source {source_id!r} is unusable ({exc})"
                log.warning("%s; the source starts afresh", self.corrupt)
            else:
                resumed = position.describe()
                log.info("source %s goes on after what was sent: %s", source_id, resumed)
        elif saved is not None:
            log.info("source %s reads another input than before the restart: it starts afresh", source_id)
        with self._lock:
            self._saved.pop(source_id, None)
            self._active[source_id] = _Entry(key, position)
            self.resumed.pop(source_id, None)
            if resumed is not None:
                self.resumed[source_id] = resumed
        return position

    def detach(self, source_id: str) -> None:
        """The source has no position any more (it became a live source)."""
        with self._lock:
            gone = self._active.pop(source_id, None) or self._saved.pop(source_id, None)
            self.resumed.pop(source_id, None)
            if gone is not None:
                self._forgotten.add(source_id)
                self._dirty = True

    def retain(self, source_ids: Iterable[str]) -> None:
        """Forget the sources not in ``source_ids`` (removed from the configuration)."""
        keep = set(source_ids)
        with self._lock:
            gone = [sid for sid in (*self._active, *self._saved) if sid not in keep]
            for sid in gone:
                self._active.pop(sid, None)
                self._saved.pop(sid, None)
                self.resumed.pop(sid, None)
            self._forgotten.update(gone)
            if gone:
                self._dirty = True

    def touch(self) -> None:
        """A position moved on: the next ``save_if_dirty`` writes."""
        self._dirty = True

    def save_if_dirty(self) -> bool:
        """Write the file if a position moved on since the last write; True when written.
        A failed write is logged and counted, and tried again at the next call."""
        with self._save_lock:
            if not self._dirty:
                return False
            self._dirty = False
            if self.path is None:
                return False
            try:
                self._flush_journals()  # before the progress file that refers to them
                doc = self._document()
                if doc != self._written:  # else only journals moved on: no second fsync
                    write_json_atomically(self.path, doc)
            except OSError as exc:
                self._dirty = True
                self.write_errors += 1
                reason = f"{exc.strerror or exc} ({self.path})"
                if reason != self.last_write_error:
                    log.warning("cannot save where file sources got to: %s", reason)
                self.last_write_error = reason
                return False
            self._written = doc
            self.writes += 1
            self.last_write_error = None
            self._drop_journals(doc["sources"])
            return True

    def stats(self) -> dict[str, Any]:
        with self._lock:
            positions = {sid: e.position.describe() for sid, e in self._active.items()}
        return {
            "kept": self.path is not None,
            "file": str(self.path) if self.path else None,
            "writes": self.writes,
            "writeErrors": self.write_errors,
            "lastWriteError": self.last_write_error,
            "corrupt": self.corrupt,
            "resumed": dict(self.resumed),
            "positions": positions,
        }

    def _document(self) -> dict[str, Any]:
        with self._lock:
            sources: dict[str, Any] = dict(self._saved)  # not attached yet: kept as they were
            active = list(self._active.items())
        for sid, entry in active:
            sources[sid] = {"key": entry.key, "position": entry.position.to_doc()}
        return {"version": VERSION, "sources": sources}

    def _flush_journals(self) -> None:
        with self._lock:
            positions = [e.position for e in self._active.values()]
        for position in positions:
            if _journaled(type(position)):
                cast(Journaled, position).flush()

    def _drop_journals(self, written: dict[str, Any]) -> None:
        """Remove the journals of forgotten sources the progress file no longer refers to."""
        assert self.path is not None
        with self._lock:
            gone = [sid for sid in self._forgotten if sid not in written]
            self._forgotten.difference_update(gone)
        for sid in gone:
            try:
                self.path.with_name(journal_name(sid)).unlink(missing_ok=True)
            except OSError:
                log.warning("cannot remove the journal of source %s", sid, exc_info=True)

    def _reject(self, reason: str, *, set_aside: bool) -> None:
        self.corrupt = reason
        log.warning("%s; every file source starts afresh", reason)
        if set_aside and self.path is not None:
            try:
                os.replace(self.path, self.path.with_name(self.path.name + ".corrupt"))
            except OSError:
                log.warning("cannot set %s aside", self.path, exc_info=True)


@functools.cache
def _journaled(kind: type) -> bool:
    """Whether positions of this type keep a journal: asked once a type, not at every save (a
    check against a runtime protocol lists its members each time, about 5 us)."""
    return issubclass(kind, Journaled)
