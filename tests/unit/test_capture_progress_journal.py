"""A folder source's taken names in a journal: a save costs the names taken since the last one."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from edgeloop_capture.progress import COMPACT_SLACK, ProgressFormatError, TakenNames
from edgeloop_capture.progress_book import FILE_NAME, ProgressBook, journal_name
from edgeloop_capture.progress_journal import NameJournal
from edgeloop_capture.testing import write_images

from tests.support import wait_for
from tests.unit.test_capture_progress import Capture, folder

KEY = {"kind": "folder", "path": "in"}


def life(state: Path) -> tuple[ProgressBook, TakenNames]:
    """One life of the progress book with one folder source ``dir`` attached."""
    book = ProgressBook.in_folder(state)
    book.load()
    position = book.attach("dir", KEY, TakenNames())
    assert isinstance(position, TakenNames)
    return book, position


def take(book: ProgressBook, position: TakenNames, names: list[str]) -> None:
    """The references of ``names`` were sent: the position moves on and is saved."""
    position.advance(list(names))
    book.touch()
    assert book.save_if_dirty()


def names(count: int, start: int = 0) -> list[str]:
    return [f"img_{i:06d}.png" for i in range(start, start + count)]


def journal(state: Path) -> Path:
    return state / journal_name("dir")


def records(path: Path) -> list[dict[str, Any]]:
    """The journal's records (each line's payload after its checksum)."""
    return [json.loads(line.split(b" ", 1)[1]) for line in path.read_bytes().splitlines()]


# -- what a save costs ---------------------------------------------------------------------
@pytest.mark.parametrize("before", [100, 20_000])
def test_a_save_writes_only_the_names_taken_since_the_last_one(tmp_path: Path, before: int) -> None:
    # given: a folder source that took `before` files already
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(before))
    inode = journal(state).stat().st_ino
    journal_size = journal(state).stat().st_size
    progress_inode = (state / FILE_NAME).stat().st_ino
    # when: three more are sent
    take(book, position, names(3, start=before))
    # then: the journal grew by one record of three names, the progress file holds no names,
    # and neither depends on how many were taken before
    appended = journal(state).stat().st_size - journal_size
    progress = (state / FILE_NAME).stat().st_size
    assert journal(state).stat().st_ino == inode  # appended to, not rewritten
    assert (state / FILE_NAME).stat().st_ino == progress_inode  # the same document: not written
    assert records(journal(state))[-1] == {"add": names(3, start=before)}
    assert appended == len(b"%08x " % 0) + len(json.dumps({"add": names(3)}, separators=(",", ":"))) + 1
    assert progress < 200
    assert sorted(NameJournal(journal(state)).read()) == names(before + 3)


def test_a_save_with_nothing_new_for_the_folder_leaves_its_journal_alone(tmp_path: Path) -> None:
    # given
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(5))
    before = journal(state).read_bytes()
    # when: another source moved on (the book is written, this position did not change)
    book.touch()
    assert book.save_if_dirty()
    # then
    assert journal(state).read_bytes() == before


# -- restarts ------------------------------------------------------------------------------
def test_a_restart_takes_over_exactly_the_names_saved(tmp_path: Path) -> None:
    # given: two saves, one of them forgetting a name gone from the folder
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(4))
    position.prune(names(4)[1:])
    take(book, position, names(2, start=4))
    # when
    _, again = life(state)
    # then
    assert again.names() == set(names(5, start=1))
    assert book.stats()["corrupt"] is None


def test_a_kill_after_the_journal_and_before_the_progress_file_loses_nothing(tmp_path: Path) -> None:
    # given: a save, then the journal brought up to date for two more names sent but the kill
    # comes before the progress file is written
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(3))
    progress_before = (state / FILE_NAME).read_bytes()
    position.advance(names(2, start=3))
    position.flush()
    # when
    assert (state / FILE_NAME).read_bytes() == progress_before
    _, again = life(state)
    # then: the two sent files are not taken again, and nothing was lost
    assert again.names() == set(names(5))


def test_a_progress_file_newer_than_the_journal_takes_the_missing_names_again(tmp_path: Path) -> None:
    # given: the progress file written after a save whose journal append did not survive
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(3))
    journal_before = journal(state).read_bytes()
    take(book, position, names(2, start=3))
    journal(state).write_bytes(journal_before)
    # when
    _, again = life(state)
    # then: those two files are taken again (never skipped), the first three are not
    assert again.names() == set(names(3))


def test_a_restarted_module_skips_files_it_took_and_forgets_ones_removed(tmp_path: Path) -> None:
    # given: a first life took three files
    state = tmp_path / "state"
    write_images(tmp_path / "in", 3)
    with Capture(tmp_path, state, {"sources": [folder()]}) as first:
        wait_for(lambda: first.progress()["positions"].get("dir") == "3 files taken")
    # when: one is removed, and in the second life it comes back with new content and another
    # file arrives
    (tmp_path / "in" / "img_0000.png").unlink()
    with Capture(tmp_path, state, {"sources": [folder()]}) as second:
        wait_for(lambda: second.progress()["resumed"] == {"dir": "3 files taken"})
        wait_for(lambda: second.progress()["positions"].get("dir") == "2 files taken")
        write_images(tmp_path / "in", 1)
        write_images(tmp_path / "in", 1, start=3)
        wait_for(lambda: len(second.frames()) == 2)
        wait_for(lambda: second.progress()["positions"].get("dir") == "4 files taken")
    # then: the file that came back is new; the journal holds what is in the folder
    assert first.attr("file_name") == ["img_0000.png", "img_0001.png", "img_0002.png"]
    assert sorted(second.attr("file_name")) == ["img_0000.png", "img_0003.png"]
    assert sorted(NameJournal(journal(state)).read()) == [f"img_{i:04d}.png" for i in range(4)]


# -- torn and damaged journals --------------------------------------------------------------
@pytest.mark.parametrize(
    "tail", [b'0badc0de {"add":["img_9', b'00000000 {"add":["img_999999.png"]}\n', b"\0\0\0\0"]
)
def test_a_cut_last_record_is_ignored_and_the_next_save_rewrites_the_journal(
    tmp_path: Path, tail: bytes
) -> None:
    # given: a journal whose last append was cut short or not written out
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(2))
    take(book, position, names(1, start=2))
    with journal(state).open("ab") as fh:
        fh.write(tail)
    # when
    book, again = life(state)
    take(book, again, names(1, start=3))
    # then: the cut record's names are not taken, and the journal is whole again
    assert book.stats()["corrupt"] is None
    assert records(journal(state)) == [{"add": names(4)}]
    assert NameJournal(journal(state)).read() == set(names(4))


def test_a_damaged_record_before_the_last_restarts_the_source_and_is_set_aside(tmp_path: Path) -> None:
    # given
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(2))
    take(book, position, names(1, start=2))
    lines = journal(state).read_bytes().splitlines(keepends=True)
    damaged = lines[0].replace(b"img_000000", b"img_00000X") + lines[1]
    journal(state).write_bytes(damaged)
    # when
    book, again = life(state)
    # then
    assert again.names() == frozenset()
    assert "record 1 of its journal" in (book.stats()["corrupt"] or "")
    assert (state / (journal_name("dir") + ".corrupt")).read_bytes() == damaged
    with pytest.raises(ProgressFormatError, match="is missing"):
        NameJournal(journal(state)).read()
    take(book, again, names(1, start=7))
    assert NameJournal(journal(state)).read() == {"img_000007.png"}


def test_a_failed_append_keeps_the_names_and_rewrites_next(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: an append that writes half a record and fails (disk full)
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(2))

    def full(self: NameJournal, changes: dict[str, bool]) -> int:
        with self.path.open("ab") as fh:
            fh.write(b'12345678 {"add":[')
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(NameJournal, "append", full)
        position.advance(names(1, start=2))
        book.touch()
        assert not book.save_if_dirty()
    # when: the disk has room again
    position.advance(names(1, start=3))
    book.touch()
    assert book.save_if_dirty()
    # then
    assert book.stats()["writeErrors"] == 1
    assert records(journal(state)) == [{"add": names(4)}]


# -- the format before journals ------------------------------------------------------------
def test_a_position_of_the_earlier_format_is_moved_into_a_journal(tmp_path: Path) -> None:
    # given: a state folder as earlier versions left it, two of three files taken
    state = tmp_path / "state"
    state.mkdir()
    write_images(tmp_path / "in", 3)
    old = {
        "version": 1,
        "sources": {"dir": {"key": KEY, "position": {"names": ["img_0000.png", "img_0001.png"]}}},
    }
    (state / FILE_NAME).write_text(json.dumps(old), encoding="utf-8")
    # when
    with Capture(tmp_path, state, {"sources": [folder()]}) as capture:
        wait_for(lambda: len(capture.frames()) == 1)
        wait_for(lambda: capture.progress()["positions"].get("dir") == "3 files taken")
        progress = capture.progress()
    # then
    assert capture.attr("file_name") == ["img_0002.png"]
    assert progress["resumed"] == {"dir": "2 files taken"}
    assert json.loads((state / FILE_NAME).read_bytes())["sources"]["dir"]["position"] == {
        "journal": journal_name("dir")
    }
    assert NameJournal(journal(state)).read() == {"img_0000.png", "img_0001.png", "img_0002.png"}


# -- compaction ----------------------------------------------------------------------------
def test_a_journal_mostly_of_forgotten_names_is_rewritten_with_exactly_the_live_ones(tmp_path: Path) -> None:
    # given: a folder emptied again and again, a few files staying
    state = tmp_path / "state"
    book, position = life(state)
    keep = ["keep_a.png", "keep_b.png"]
    take(book, position, keep)
    rewrites = 0
    inode = journal(state).stat().st_ino
    for round_ in range(12):
        batch = names(200, start=round_ * 200)
        take(book, position, batch)
        position.prune(keep)
        book.touch()
        assert book.save_if_dirty()
        if journal(state).stat().st_ino != inode:
            rewrites += 1
            inode = journal(state).stat().st_ino
    # then: it was rewritten (not grown without end), and it holds exactly the live names
    assert rewrites >= 1
    assert NameJournal(journal(state)).read() == set(keep)
    assert NameJournal(journal(state)).entries <= 2 * len(keep) + COMPACT_SLACK + 400
    position.advance(["late.png"])
    position.prune(keep)  # taken and gone before the save: not kept
    position.advance(["back.png"])
    book.touch()
    assert book.save_if_dirty()
    _, again = life(state)
    assert again.names() == {*keep, "back.png"}


def test_a_name_forgotten_and_taken_again_before_a_save_is_kept(tmp_path: Path) -> None:
    # given
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, ["a.png", "b.png"])
    # when: a.png goes and a new file of that name is taken; b.png goes
    position.prune(["b.png"])
    position.advance(["a.png"])
    position.prune(["a.png"])
    book.touch()
    assert book.save_if_dirty()
    # then
    _, again = life(state)
    assert again.names() == {"a.png"}


def test_the_journal_of_a_removed_source_goes_once_the_progress_file_forgets_it(tmp_path: Path) -> None:
    # given
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(2))
    # when
    book.retain([])
    assert journal(state).exists()
    assert book.save_if_dirty()
    # then
    assert not journal(state).exists()
    assert json.loads((state / FILE_NAME).read_bytes())["sources"] == {}


def test_without_a_state_folder_the_names_stay_in_memory(tmp_path: Path) -> None:
    # given
    book = ProgressBook(None)
    position = book.attach("dir", KEY, TakenNames())
    assert isinstance(position, TakenNames)
    # when
    position.advance(["a.png"])
    position.flush()
    # then
    assert position.to_doc() == {"names": ["a.png"]}
    assert os.listdir(tmp_path) == []


def test_a_save_while_a_source_is_restored_leaves_its_journal_and_entry_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a saved folder position, and a restart where another source's batch is saved
    # while this one is being restored
    state = tmp_path / "state"
    book, position = life(state)
    take(book, position, names(3))
    restarted = ProgressBook.in_folder(state)
    restarted.load()
    read = NameJournal.read
    written: list[dict[str, Any]] = []

    def read_during_a_save(self: NameJournal) -> set[str]:
        restarted.touch()
        assert restarted.save_if_dirty()
        written.append(json.loads((state / FILE_NAME).read_bytes()))
        return read(self)

    monkeypatch.setattr(NameJournal, "read", read_during_a_save)
    # when
    again = restarted.attach("dir", KEY, TakenNames())
    # then: the save neither rewrote the journal nor dropped the source's entry
    assert isinstance(again, TakenNames)
    assert again.names() == set(names(3))
    assert written[0]["sources"]["dir"] == {"key": KEY, "position": {"journal": journal_name("dir")}}


def test_a_position_naming_another_journal_restarts_the_source(tmp_path: Path) -> None:
    # given: a progress file whose folder position names a journal not this source's
    state = tmp_path / "state"
    state.mkdir()
    other = {"version": 1, "sources": {"dir": {"key": KEY, "position": {"journal": "../elsewhere.jsonl"}}}}
    (state / FILE_NAME).write_text(json.dumps(other), encoding="utf-8")
    # when
    book, position = life(state)
    # then
    assert position.names() == frozenset()
    assert "its journal '../elsewhere.jsonl' is not 'capture-taken-dir.jsonl'" in (
        book.stats()["corrupt"] or ""
    )
