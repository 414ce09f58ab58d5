"""Where a file source got to, advanced only by what was sent.

A file source (folder, video, sensor log) owns a *position*: the folder's file names already
taken, or the file and the frame or line reached in it. The source reads from its position;
the position moves on only when the references of what was read have been sent (the hub has
them), or when an item was passed over (not kept by the rate settings, unreadable): so a
restart can repeat what was read and not yet sent, but never skips it.

Each item read carries a *mark* (a file name, or a ``CursorMark``). The worker registers the
marks of its source, in reading order, in a ``Ledger``: a frame on its way gets a ``Receipt``
that travels with its reference to the sender; a passed-over item is settled at once. The
ledger applies marks to the position in reading order, as far as every earlier item is
settled, so a frame still in flight holds back the marks read after it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from edgeloop.errors import EdgeLoopError

if TYPE_CHECKING:
    from edgeloop_capture.progress_journal import NameJournal

log = logging.getLogger(__name__)


class ProgressFormatError(EdgeLoopError):
    """A saved position does not have the shape this version writes."""


class Position(Protocol):
    """What a file source keeps across restarts."""

    def advance(self, marks: list[Any]) -> None:
        """Apply the marks of items sent or passed over, in reading order."""
        ...

    def merge(self, marks: list[Any], mark: Any) -> None:
        """Add ``mark`` to ``marks`` still waiting to be applied (keeping only what matters)."""
        ...

    def to_doc(self) -> dict[str, Any]:
        """The position as JSON."""
        ...

    def restore(self, doc: Any) -> None:
        """Take a saved position.

        Raises:
            ProgressFormatError: the document is not a position of this kind.
        """
        ...

    def describe(self) -> str:
        """A short human account (for ``getStats``)."""
        ...


@runtime_checkable
class Journaled(Protocol):
    """A position kept in a journal of its own beside the progress file (``TakenNames``)."""

    def use_journal(self, journal: NameJournal) -> None:
        """Keep the position in ``journal``; called before ``restore``."""
        ...

    def flush(self) -> None:
        """Write what changed to the journal, before the progress file refers to it.

        Raises:
            OSError: not written (tried again at the next save).
        """
        ...


# -- files read front to back (video, sensor logs) -------------------------------------------
@dataclass(frozen=True)
class FileIdentity:
    """A file as it is now: a file replaced or rewritten gets another identity."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> FileIdentity:
        """Raises ``OSError`` when the file cannot be looked at."""
        stat = os.stat(path)
        return cls(path=str(path), size=stat.st_size, mtime_ns=stat.st_mtime_ns)


@dataclass(frozen=True)
class CursorMark:
    """An item of a file read front to back: the file, the pass (looping sources) and the
    frame or line index; ``ended`` marks the end of that pass."""

    file: FileIdentity
    loop_pass: int
    index: int
    ended: bool = False

    def order(self) -> tuple[int, int, bool]:
        return (self.loop_pass, self.index, self.ended)


class FileCursor:
    """Position of a video or sensor log: the last item sent or passed over, in which file."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.mark: CursorMark | None = None

    def advance(self, marks: list[Any]) -> None:
        with self._lock:
            for mark in marks:
                assert isinstance(mark, CursorMark)
                current = self.mark
                if current is None or mark.file != current.file or mark.order() > current.order():
                    self.mark = mark

    def merge(self, marks: list[Any], mark: Any) -> None:
        marks[:] = [mark]  # a later mark of a file read in order covers the earlier ones

    def resume_point(self, file: FileIdentity, read: CursorMark | None = None) -> CursorMark | None:
        """Where to go on from in ``file``: the furthest of this position and ``read`` (what
        this process has read already), if either is about the same file; else None."""
        with self._lock:
            candidates = [m for m in (self.mark, read) if m is not None and m.file == file]
        return max(candidates, key=CursorMark.order, default=None)

    def to_doc(self) -> dict[str, Any]:
        with self._lock:
            mark = self.mark
        if mark is None:
            return {}
        f = mark.file
        return {
            "file": {"path": f.path, "size": f.size, "mtime_ns": f.mtime_ns},
            "loop_pass": mark.loop_pass,
            "index": mark.index,
            "ended": mark.ended,
        }

    def restore(self, doc: Any) -> None:
        if doc == {}:
            return
        try:
            f = doc["file"]
            file = FileIdentity(path=_str(f["path"]), size=_int(f["size"]), mtime_ns=_int(f["mtime_ns"]))
            mark = CursorMark(
                file=file,
                loop_pass=_int(doc["loop_pass"]),
                index=_int(doc["index"], low=-1),
                ended=_bool(doc.get("ended", False)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ProgressFormatError(f"not a file position: {exc}") from exc
        with self._lock:
            self.mark = mark

    def describe(self) -> str:
        with self._lock:
            mark = self.mark
        if mark is None:
            return "nothing sent yet"
        where = "the end" if mark.ended else f"item {mark.index}"
        return f"{Path(mark.file.path).name} up to {where} of pass {mark.loop_pass}"


# -- folders ---------------------------------------------------------------------------------
class TakenNames:
    """Position of a folder source: the names of files whose references were sent (or that
    were passed over), pruned to the names still in the folder.

    Kept in a ``NameJournal`` once the progress book gives it one (a state folder): a save
    appends only the names taken and forgotten since the last one (``flush``), and the progress
    file holds just the journal's name. Without a journal the names themselves are the document
    (``{"names": [...]}``, also the format of earlier versions, taken over on restore)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._names: set[str] = set()
        self._journal: NameJournal | None = None
        #: Changes not yet in the journal, last one per name wins (True taken, False forgotten).
        self._pending: dict[str, bool] = {}
        #: The journal must be written whole at the next flush (new, taken over, cut, failed).
        self._rewrite = True

    def use_journal(self, journal: NameJournal) -> None:
        """Keep the names in ``journal`` (before ``restore``; a fresh position rewrites it)."""
        with self._lock:
            self._journal = journal
            self._rewrite = True

    def advance(self, marks: list[Any]) -> None:
        with self._lock:
            for mark in marks:
                name = str(mark)
                self._names.add(name)
                self._pending[name] = True

    def merge(self, marks: list[Any], mark: Any) -> None:
        marks.append(mark)

    def names(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._names)

    def not_taken(self, names: Iterable[str]) -> set[str]:
        """Those of ``names`` not taken."""
        with self._lock:
            return {name for name in names if name not in self._names}

    def prune(self, present: Iterable[str]) -> int:
        """Forget names no longer in the folder; returns how many were forgotten."""
        here = present if isinstance(present, set | frozenset) else set(present)
        with self._lock:
            gone = self._names.difference(here)
            if gone:
                self._names.difference_update(gone)
                self._pending.update(dict.fromkeys(gone, False))
            return len(gone)

    def flush(self) -> None:
        """Bring the journal up to date: append what changed, or rewrite it when new or when
        names no longer taken make up most of it. Nothing to do without a journal.

        Raises:
            OSError: not written; the changes stay pending and the next flush rewrites.
        """
        journal = self._journal
        if journal is None:
            return
        with self._lock:
            if not self._rewrite and not self._pending:
                return
            recorded = journal.entries + len(self._pending)
            whole = self._rewrite or recorded > 2 * len(self._names) + COMPACT_SLACK
            live = list(self._names) if whole else []
            changes, self._pending = self._pending, {}
            self._rewrite = False
        try:
            if whole:
                journal.rewrite(live)
            else:
                journal.append(changes)
        except OSError:
            with self._lock:
                for name, present in changes.items():
                    self._pending.setdefault(name, present)  # a newer change wins
                self._rewrite = True  # an append may have left a cut record behind
            raise

    def to_doc(self) -> dict[str, Any]:
        with self._lock:
            if self._journal is not None:
                return {"journal": self._journal.path.name}
            return {"names": sorted(self._names)}

    def restore(self, doc: Any) -> None:
        journal = self._journal
        if isinstance(doc, dict) and "journal" in doc:
            if journal is None:
                raise ProgressFormatError("it refers to a journal, and there is no state folder")
            if doc["journal"] != journal.path.name:
                raise ProgressFormatError(f"its journal {doc['journal']!r} is not {journal.path.name!r}")
            try:
                names = journal.read()
            except ProgressFormatError:
                _set_aside(journal.path)
                raise
            with self._lock:
                self._names = names
                self._pending.clear()
                self._rewrite = journal.torn
            return
        try:
            names = doc["names"]
            if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
                raise TypeError("names must be a list of strings")
        except (KeyError, TypeError) as exc:
            raise ProgressFormatError(f"not a folder position: {exc}") from exc
        with self._lock:  # the format before journals: written whole into the journal next
            self._names = set(names)
            self._pending.clear()
            self._rewrite = True

    def describe(self) -> str:
        with self._lock:
            return f"{len(self._names)} files taken"


#: Names no longer taken that a journal may hold beyond its live ones before it is rewritten.
COMPACT_SLACK = 1024


def _set_aside(path: Path) -> None:
    try:
        os.replace(path, path.with_name(path.name + ".corrupt"))
    except FileNotFoundError:
        pass
    except OSError:
        log.warning("cannot set %s aside", path, exc_info=True)


def _int(value: Any, low: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ValueError(f"{value!r} is not an integer >= {low}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{value!r} is not true or false")
    return value


# -- the ledger --------------------------------------------------------------------------------
def settle_all(receipts: Iterable[Receipt]) -> None:
    """Settle the receipts of a sent batch, each ledger's together (``Ledger.settle_many``)."""
    by_ledger: dict[Ledger, list[Receipt]] = {}
    for receipt in receipts:
        by_ledger.setdefault(receipt.ledger, []).append(receipt)
    for ledger, batch in by_ledger.items():
        ledger.settle_many(batch)


@dataclass(eq=False)
class Receipt:
    """The marks of one item on its way; settled when its reference is sent or it is given up
    (the item failed and is skipped), abandoned when it will never be sent by this process."""

    ledger: Ledger
    marks: list[Any]
    done: bool = False
    abandoned: bool = False

    def settle(self) -> None:
        self.ledger.settle(self)

    def abandon(self) -> None:
        self.ledger.abandon(self)


class Saver(Protocol):
    """Where positions are written (``ProgressBook``)."""

    def touch(self) -> None:
        """A position moved on."""
        ...

    def save_if_dirty(self) -> bool:
        """Write what moved on; never raises."""
        ...


class _NoSaver:
    def touch(self) -> None:
        pass

    def save_if_dirty(self) -> bool:
        return False


class Ledger:
    """The marks of one source in reading order, applied to its position as they settle."""

    def __init__(self, position: Position, saver: Saver | None = None) -> None:
        self.position = position
        self.saver: Saver = saver or _NoSaver()
        self._entries: deque[Receipt] = deque()
        self._cond = threading.Condition()

    def save(self) -> None:
        """Write the position if it moved on (a source reached the end of its input)."""
        self.saver.save_if_dirty()

    def expect(self, mark: Any) -> Receipt:
        """An item read and on its way to be sent."""
        receipt = Receipt(self, [mark])
        with self._cond:
            self._entries.append(receipt)
        return receipt

    def passed(self, mark: Any) -> None:
        """An item read and handled without a reference (not kept, unreadable)."""
        with self._cond:
            if not self._entries:
                self.position.advance([mark])
                moved = True
            else:
                last = self._entries[-1]
                if last.done:
                    self.position.merge(last.marks, mark)
                else:
                    self._entries.append(Receipt(self, [mark], done=True))
                moved = False
        if moved:
            self.saver.touch()

    def settle(self, receipt: Receipt) -> None:
        self.settle_many([receipt])

    def settle_many(self, receipts: Iterable[Receipt]) -> None:
        """Settle receipts of this ledger together (a sent batch): one lock, one move of the
        position and one wake-up for all of them."""
        with self._cond:
            for receipt in receipts:
                receipt.done = True
            marks: list[Any] = []
            while self._entries and self._entries[0].done:
                marks.extend(self._entries.popleft().marks)
            if marks:
                self.position.advance(marks)
            self._cond.notify_all()
        if marks:
            self.saver.touch()

    def abandon(self, receipt: Receipt) -> None:
        with self._cond:
            receipt.abandoned = True
            self._cond.notify_all()

    def wait_settled(self, timeout: float) -> bool:
        """Wait until every item is settled or abandoned; False on timeout."""
        with self._cond:
            return self._cond.wait_for(
                lambda: all(r.done or r.abandoned for r in self._entries), timeout=timeout
            )

    @property
    def in_flight(self) -> int:
        with self._cond:
            return sum(1 for r in self._entries if not r.done and not r.abandoned)
