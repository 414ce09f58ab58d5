"""Sensor readings replayed from a log (CSV, JSONL) at their recorded times or a set rate.

The readings travel inline in the message (``kind="vector"``); no file is written. The last line
sent is the source's position: after a restart the lines up to it are read and dropped, and a
file replaced since (another size or modification time) starts over.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from edgeloop_capture.progress import CursorMark, FileCursor, FileIdentity, Position
from edgeloop_capture.sources.base import Captured, SourceControl, SourceError, SourceSettings
from edgeloop_capture.sources.readers import READERS, SUFFIXES, Reading

#: Vectors are small by design; more values than this belong in a file.
MAX_VALUES = 4096


class SensorSettings(SourceSettings):
    kind: Literal["sensor"] = Field(description="Sensor readings from a reader.")
    path: str = Field(
        min_length=1,
        description="Input of the reader; a relative path is taken from the samples volume root.",
    )
    format: Literal["auto", "csv", "jsonl"] = Field(
        default="auto", description="Reader to use; auto picks by file suffix (.csv, .jsonl, .ndjson)."
    )
    timestamp_field: str | None = Field(
        default="timestamp", description="Field with the recorded time (epoch seconds or ISO 8601)."
    )
    fields: list[str] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_VALUES,
        description="Fields forming the vector, in order; null takes every numeric field.",
    )
    realtime: bool = Field(
        default=True,
        description="Replay at the recorded time gaps (divided by speed); else at fps, or as fast as it can.",
    )
    speed: float = Field(default=1.0, gt=0, le=10_000, description="Replay speed-up for recorded times.")
    loop: bool = Field(default=False, description="Start again at the first reading after the last.")

    @model_validator(mode="after")
    def _reader_known(self) -> SensorSettings:
        if self.format == "auto" and self.reader_name() is None:
            raise ValueError(
                f"format 'auto' cannot tell the reader of {self.path!r}; "
                f"name the file {', '.join(SUFFIXES)} or set format to one of {', '.join(READERS)}"
            )
        return self

    def reader_name(self) -> str | None:
        if self.format != "auto":
            return self.format
        suffix = "." + self.path.rsplit(".", 1)[-1].lower() if "." in self.path else ""
        return SUFFIXES.get(suffix)


class SensorSource:
    live: ClassVar[bool] = False

    def __init__(self, settings: SensorSettings) -> None:
        self.settings = settings
        #: The last line sent (or passed over) in which file, kept across restarts by the
        #: module: lines up to it are read and dropped, a replaced file starts over.
        self.position: Position | None = FileCursor()
        #: The last line this process read, so a reopening goes on after it.
        self._read: CursorMark | None = None

    def frames(self, ctl: SourceControl) -> Iterator[Captured]:
        name = self.settings.reader_name()
        assert name is not None  # checked by the settings model
        reader = READERS[name]
        path = ctl.resolve(self.settings.path)
        if not path.exists():
            raise SourceError(f"sensor input {str(path)!r} not found")
        try:
            file = FileIdentity.of(path)
        except OSError as exc:
            raise SourceError(f"cannot look at sensor input {str(path)!r}: {exc.strerror}") from exc
        assert isinstance(self.position, FileCursor)
        resume = self.position.resume_point(file, self._read)
        loop_pass = resume.loop_pass if resume is not None else 0
        after = resume.index if resume is not None else 0
        if resume is not None and resume.ended:
            if not self.settings.loop:
                return  # this log was read to its end
            loop_pass, after = loop_pass + 1, 0
        while not ctl.stopping:
            ctl.restart_pacing()
            first: float | None = None
            index, line = 0, 0
            for item in reader.read(path, self.settings):
                line = item.line
                if isinstance(item, Reading):
                    if first is None and item.timestamp is not None:
                        first = item.timestamp
                    number, index = index, index + 1  # also for lines dropped: every_n keeps its rhythm
                if line <= after:
                    continue  # sent before a restart: read and dropped
                mark = CursorMark(file, loop_pass, line)
                if not isinstance(item, Reading):
                    ctl.skip("bad_reading", f"{path.name} {item.reason}")
                    self._pass_over(ctl, mark)
                    continue
                if not ctl.keep_nth(number):
                    self._pass_over(ctl, mark)
                    continue
                if not self._wait_turn(ctl, item, first):
                    return
                self._read = mark
                yield Captured(
                    vector=list(item.values), attributes=self._attributes(item, path.name), mark=mark
                )
            self._pass_over(ctl, CursorMark(file, loop_pass, line, ended=True))
            loop_pass, after = loop_pass + 1, 0
            if not self.settings.loop:
                return

    def _pass_over(self, ctl: SourceControl, mark: CursorMark) -> None:
        self._read = mark
        ctl.passed(mark)

    def _wait_turn(self, ctl: SourceControl, item: Reading, first: float | None) -> bool:
        if self.settings.realtime and item.timestamp is not None and first is not None:
            return ctl.pace((item.timestamp - first) / self.settings.speed)
        return ctl.throttle()

    @staticmethod
    def _attributes(item: Reading, file_name: str) -> dict[str, str]:
        attributes = {"fields": ",".join(item.names), "line": str(item.line), "file_name": file_name}
        if item.timestamp is not None:
            attributes["recorded_at"] = repr(item.timestamp)
        return attributes
