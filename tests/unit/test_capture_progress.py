"""File sources go on after a restart from what was sent, never from what was read.

The module runs under the runtime with the in-memory hub and a state folder on disk. A "kill"
is taken as the state folder at the moment a send is under way: what a SIGKILL then would
leave behind. A restart starts a new module on that state.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from edgeloop_capture import CaptureModule
from edgeloop_capture.progress import (
    CursorMark,
    FileCursor,
    FileIdentity,
    Ledger,
    TakenNames,
    settle_all,
)
from edgeloop_capture.progress_book import FILE_NAME, ProgressBook, journal_name
from edgeloop_capture.progress_journal import NameJournal
from edgeloop_capture.testing import write_images, write_sensor_csv, write_video

from edgeloop.errors import HubError
from edgeloop.runtime import OutboundMessage
from edgeloop.runtime.fake import FakeHubClient
from tests.support import wait_for
from tests.unit import capture_support


class KilledHub(FakeHubClient):
    """Takes ``good`` sends; at the next one copies the capture's state folder to ``frozen``
    (what a kill during that send leaves) and refuses every send from then on."""

    def __init__(self, good: int, state: Path, frozen: Path) -> None:
        super().__init__()
        self.good = good
        self.state = state
        self.frozen = frozen
        self.down = threading.Event()

    def send(self, message: OutboundMessage) -> None:
        if not self.down.is_set() and len(self.sent) >= self.good:
            shutil.copytree(self.state, self.frozen, dirs_exist_ok=True)
            self.down.set()
        if self.down.is_set():
            raise HubError("the module was killed")
        super().send(message)


class Capture(capture_support.Capture):
    """One life of the capture module on ``state``."""

    def __init__(
        self, root: Path, state: Path | None, desired: dict[str, Any], hub: FakeHubClient | None = None
    ) -> None:
        super().__init__(root, desired, hub, progress=ProgressBook.in_folder(state))

    def at_end(self, sid: str) -> bool:
        """The file source reached the end of its file and everything it read is sent."""
        return self.state(sid) == "finished" and "the end" in self.progress()["positions"].get(sid, "")

    def progress(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.module.stats()["progress"]
        return stats


def folder(sid: str = "dir", path: str = "in", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "kind": "folder", "path": path, "poll_s": 0.05, "settle_s": 0, **extra}


def video(sid: str = "cam", path: str = "input/clip.avi", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "kind": "video", "path": path, "realtime": False, **extra}


def sensor(sid: str = "vib", path: str = "input/vib.csv", **extra: Any) -> dict[str, Any]:
    return {"id": sid, "kind": "sensor", "path": path, "realtime": False, **extra}


def saved(state: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((state / FILE_NAME).read_text(encoding="utf-8"))
    return doc


def taken(state: Path, sid: str = "dir") -> list[str]:
    """The names a folder source's saved position holds (in its journal)."""
    assert saved(state)["sources"][sid]["position"] == {"journal": journal_name(sid)}
    return sorted(NameJournal(state / journal_name(sid)).read())


def names(count: int, start: int = 0) -> list[str]:
    return [f"img_{i:04d}.png" for i in range(start, start + count)]


# -- folders -------------------------------------------------------------------------------
def test_a_restarted_folder_source_skips_the_files_it_sent(tmp_path: Path) -> None:
    # given: a first life takes the folder's five files
    state = tmp_path / "state"
    write_images(tmp_path / "in", 5)
    with Capture(tmp_path, state, {"sources": [folder()]}) as first:
        wait_for(lambda: len(first.frames()) == 5)
        wait_for(lambda: first.progress()["positions"].get("dir") == "5 files taken")
    # when: the module starts again and two files arrive
    with Capture(tmp_path, state, {"sources": [folder()]}) as second:
        wait_for(lambda: second.progress()["resumed"])
        write_images(tmp_path / "in", 2, start=5)
        wait_for(lambda: len(second.frames()) == 2)
        progress = second.progress()
    # then: only the new ones were taken
    assert first.attr("file_name") == names(5)
    assert second.attr("file_name") == names(2, start=5)
    assert progress["resumed"] == {"dir": "5 files taken"}
    assert taken(state) == names(7)


def test_a_kill_during_a_send_repeats_only_what_was_not_sent(tmp_path: Path) -> None:
    # given: the hub takes two batches of at most two references, and the module is killed
    # during the third send
    state, frozen = tmp_path / "state", tmp_path / "frozen"
    write_images(tmp_path / "in", 9)
    desired = {"sources": [folder()], "batch_max": 2}
    hub = KilledHub(good=2, state=state, frozen=frozen)
    with Capture(tmp_path, state, desired, hub=hub) as first:
        wait_for(hub.down.is_set)
    sent_before = first.attr("file_name")
    recorded = taken(frozen)
    # when: it starts again on the state the kill left
    with Capture(tmp_path, frozen, desired) as second:
        wait_for(lambda: len(second.frames()) == 9 - len(sent_before))
        wait_for(lambda: second.progress()["positions"].get("dir") == "9 files taken")
    # then: every file was announced once in all
    assert 1 <= len(sent_before) <= 4
    assert recorded == sent_before  # what was sent is recorded, what was read but not sent is not
    assert sorted(sent_before + second.attr("file_name")) == names(9)


def test_the_record_forgets_files_gone_from_the_folder(tmp_path: Path) -> None:
    # given
    state = tmp_path / "state"
    write_images(tmp_path / "in", 3)
    with Capture(tmp_path, state, {"sources": [folder()]}) as first:
        wait_for(lambda: first.progress()["positions"].get("dir") == "3 files taken")
    # when: a file is removed and another comes
    (tmp_path / "in" / "img_0000.png").unlink()
    with Capture(tmp_path, state, {"sources": [folder()]}) as second:
        write_images(tmp_path / "in", 1, start=3)
        wait_for(lambda: len(second.frames()) == 1)
        wait_for(lambda: taken(state) == names(3, start=1))
    # then
    assert second.attr("file_name") == ["img_0003.png"]


def test_files_passed_over_by_every_n_are_not_taken_after_a_restart(tmp_path: Path) -> None:
    # given: one file of every three is kept
    state = tmp_path / "state"
    write_images(tmp_path / "in", 7)
    desired = {"sources": [folder(every_n=3)]}
    with Capture(tmp_path, state, desired) as first:
        wait_for(lambda: len(first.frames()) == 3)
        wait_for(lambda: first.progress()["positions"].get("dir") == "7 files taken")
    # when
    with Capture(tmp_path, state, desired) as second:
        write_images(tmp_path / "in", 1, start=7)
        wait_for(lambda: len(second.frames()) == 1)
    # then
    assert first.attr("file_name") == ["img_0000.png", "img_0003.png", "img_0006.png"]
    assert second.attr("file_name") == ["img_0007.png"]


def test_a_source_on_another_path_starts_afresh(tmp_path: Path) -> None:
    # given
    state = tmp_path / "state"
    write_images(tmp_path / "in", 3)
    write_images(tmp_path / "other", 3)
    with Capture(tmp_path, state, {"sources": [folder()]}) as first:
        wait_for(lambda: first.progress()["positions"].get("dir") == "3 files taken")
    # when: the same id now reads another folder holding the same names
    with Capture(tmp_path, state, {"sources": [folder(path="other")]}) as second:
        wait_for(lambda: len(second.frames()) == 3)
        progress = second.progress()
    # then
    assert second.attr("file_name") == names(3)
    assert progress["resumed"] == {}
    assert saved(state)["sources"]["dir"]["key"] == {"kind": "folder", "path": "other"}


# -- videos and sensor logs ----------------------------------------------------------------
def test_a_video_goes_on_after_the_last_frame_sent(tmp_path: Path) -> None:
    # given: the module is killed during its third send of at most three references
    state, frozen = tmp_path / "state", tmp_path / "frozen"
    write_video(tmp_path / "input" / "clip.avi", 20)
    desired = {"sources": [video()], "batch_max": 3}
    hub = KilledHub(good=2, state=state, frozen=frozen)
    with Capture(tmp_path, state, desired, hub=hub) as first:
        wait_for(hub.down.is_set)
    before = [int(i) for i in first.attr("frame_index")]
    # when
    with Capture(tmp_path, frozen, desired) as second:
        wait_for(lambda: second.at_end("cam"))
        after = [int(i) for i in second.attr("frame_index")]
        stats = second.module.stats()
    # then: frames 0..19 announced once in all, the second life starting after the first's last
    assert 1 <= len(before) <= 6
    assert before + after == list(range(20))
    assert saved(frozen)["sources"]["cam"]["position"]["ended"] is True
    assert stats["progress"]["writes"] <= stats["sender"]["batches"] + 1  # one a batch, one at the end


def test_a_finished_video_stays_finished_and_a_replaced_one_starts_over(tmp_path: Path) -> None:
    # given: a video read to its end
    state = tmp_path / "state"
    clip = write_video(tmp_path / "input" / "clip.avi", 8)
    with Capture(tmp_path, state, {"sources": [video(fps=10)]}) as first:
        wait_for(lambda: first.at_end("cam"))
    # when: the module starts again on the same file, then on a replaced one
    with Capture(tmp_path, state, {"sources": [video(fps=10)]}) as same:
        wait_for(lambda: same.at_end("cam"))
    write_video(clip, 5, width=80)
    os.utime(clip, ns=(1_000_000_000, 1_000_000_000))
    with Capture(tmp_path, state, {"sources": [video(fps=10)]}) as replaced:
        wait_for(lambda: replaced.at_end("cam"))
    # then: 10 of the file's 25 frames a second kept, the frames after the last kept one passed
    # over and recorded too, so nothing is left to take
    assert first.attr("frame_index") == ["0", "3", "5"]
    assert same.frames() == []
    assert replaced.attr("frame_index") == ["0", "3"]


def test_a_sensor_log_goes_on_after_the_last_line_sent(tmp_path: Path) -> None:
    # given
    state, frozen = tmp_path / "state", tmp_path / "frozen"
    rows: list[dict[str, object]] = [{"timestamp": i, "x": i * 1.5} for i in range(30)]
    write_sensor_csv(tmp_path / "input" / "vib.csv", rows)
    desired = {"sources": [sensor()], "batch_max": 4}
    hub = KilledHub(good=2, state=state, frozen=frozen)
    with Capture(tmp_path, state, desired, hub=hub) as first:
        wait_for(hub.down.is_set)
    # when
    with Capture(tmp_path, frozen, desired) as second:
        wait_for(lambda: second.at_end("vib"))
    # then: every reading announced once in all
    values = [f.vector[0] for f in first.frames() + second.frames() if f.vector]
    assert values == [i * 1.5 for i in range(30)]
    assert first.frames()
    assert second.frames()


# -- the progress file ---------------------------------------------------------------------
@pytest.mark.parametrize(
    "content",
    [b"{not json", b"", b"[1, 2]", b'{"version": 99, "sources": {}}', b"\xff\xfe\x00garbage"],
)
def test_a_corrupt_progress_file_is_reported_and_set_aside(tmp_path: Path, content: bytes) -> None:
    # given
    state = tmp_path / "state"
    state.mkdir()
    (state / FILE_NAME).write_bytes(content)
    write_images(tmp_path / "in", 3)
    # when
    with Capture(tmp_path, state, {"sources": [folder()]}) as capture:
        wait_for(lambda: len(capture.frames()) == 3)
        wait_for(lambda: capture.progress()["writes"] >= 1)
        progress = capture.progress()
    # then: every file taken, the reason in the stats, the bad file kept aside, a good one written
    assert capture.attr("file_name") == names(3)
    assert "is not a progress file" in progress["corrupt"]
    assert (state / (FILE_NAME + ".corrupt")).read_bytes() == content
    assert taken(state) == names(3)


def test_an_unusable_position_restarts_only_its_source(tmp_path: Path) -> None:
    # given: one source's saved position has the wrong shape, the other's is fine
    state = tmp_path / "state"
    state.mkdir()
    write_images(tmp_path / "a", 2)
    write_images(tmp_path / "b", 2)
    doc = {
        "version": 1,
        "sources": {
            "a": {"key": {"kind": "folder", "path": "a"}, "position": {"names": "img_0000.png"}},
            "b": {"key": {"kind": "folder", "path": "b"}, "position": {"names": ["img_0000.png"]}},
        },
    }
    (state / FILE_NAME).write_text(json.dumps(doc), encoding="utf-8")
    # when
    with Capture(tmp_path, state, {"sources": [folder("a", "a"), folder("b", "b")]}) as capture:
        wait_for(lambda: len(capture.frames()) == 3)
        progress = capture.progress()
    # then
    assert sorted((f.source_id, f.attributes["file_name"]) for f in capture.frames()) == [
        ("a", "img_0000.png"),
        ("a", "img_0001.png"),
        ("b", "img_0001.png"),
    ]
    assert "source 'a'" in progress["corrupt"]
    assert progress["resumed"] == {"b": "1 files taken"}


def test_a_failing_write_is_counted_and_never_stops_capture(tmp_path: Path) -> None:
    # given: the state folder is a file, so nothing can be written in it
    state = tmp_path / "state"
    state.write_text("not a folder", encoding="utf-8")
    write_images(tmp_path / "in", 3)
    # when
    with Capture(tmp_path, state, {"sources": [folder()]}) as capture:
        wait_for(lambda: len(capture.frames()) == 3)
        progress = capture.progress()
    # then
    assert progress["writeErrors"] >= 1
    assert progress["lastWriteError"]
    assert progress["writes"] == 0


def test_without_a_state_folder_progress_is_kept_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given
    monkeypatch.setenv("EDGELOOP_SAMPLES_DIR", str(tmp_path))
    monkeypatch.delenv("EDGELOOP_STATE_DIR", raising=False)
    bare = CaptureModule.from_environment()
    monkeypatch.setenv("EDGELOOP_STATE_DIR", str(tmp_path / "state"))
    # when
    kept = CaptureModule.from_environment()
    # then
    assert bare.progress.path is None
    assert bare.progress.stats()["kept"] is False
    assert kept.progress.path == tmp_path / "state" / FILE_NAME


# -- the ledger ----------------------------------------------------------------------------
def test_a_frame_on_its_way_holds_back_the_marks_read_after_it() -> None:
    # given
    cursor = FileCursor()
    ledger = Ledger(cursor)
    file = FileIdentity("clip.avi", 10, 1)
    mark: Callable[[int], CursorMark] = lambda i: CursorMark(file, 0, i)  # noqa: E731
    first = ledger.expect(mark(0))
    ledger.passed(mark(1))
    second = ledger.expect(mark(2))
    ledger.passed(mark(3))
    ledger.passed(mark(4))
    # when / then: nothing moves until the first is sent; then up to the second, still on its way
    assert cursor.mark is None
    second.settle()
    assert cursor.mark is None
    first.settle()
    assert cursor.mark == mark(4)


def test_a_sent_batch_settles_each_ledger_in_reading_order() -> None:
    # given: two sources, each with frames on their way; one frame of the first not in the batch
    taken_a, taken_b = TakenNames(), TakenNames()
    a, b = Ledger(taken_a), Ledger(taken_b)
    a1, b1, a2, b2 = a.expect("a1"), b.expect("b1"), a.expect("a2"), b.expect("b2")
    a3 = a.expect("a3")
    a.passed("a4")
    # when: the batch of a1, b1, b2 and a3 is sent (a2 goes in a later one)
    settle_all([a1, b1, b2, a3])
    # then: each position moves as far as its own reading order allows
    assert taken_a.names() == {"a1"}
    assert taken_b.names() == {"b1", "b2"}
    assert a.in_flight == 1
    # and once a2 is sent, past everything read after it
    settle_all([a2])
    assert taken_a.names() == {"a1", "a2", "a3", "a4"}
    assert a.wait_settled(0.1)


def test_an_abandoned_frame_never_lets_the_position_pass_it() -> None:
    # given
    taken = TakenNames()
    ledger = Ledger(taken)
    ledger.expect("a").settle()
    lost = ledger.expect("b")
    ledger.passed("c")
    # when
    lost.abandon()
    # then
    assert taken.names() == {"a"}
    assert ledger.wait_settled(0.1)
    assert ledger.in_flight == 0
