"""Image folders: the files already there in name order, then new ones as they arrive.

The names whose references were sent are the source's position: after a restart those files
are skipped, so each file is taken once (a file whose reference was not sent yet when the
module stopped is taken again). With a state folder they are kept in a journal that each save
appends the newly taken names to (``progress_journal``)."""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from edgeloop.fileread import read_whole
from edgeloop_capture.progress import Position, TakenNames
from edgeloop_capture.sources.base import Captured, Image, ImageSettings, SourceControl, SourceError

IMAGE_PATTERNS = ("*.jpg", "*.jpeg", "*.png", "*.bmp", "*.tif", "*.tiff", "*.webp")


class FolderSettings(ImageSettings):
    kind: Literal["folder"] = Field(description="A folder of image files.")
    path: str = Field(
        min_length=1, description="Folder; a relative path is taken from the samples volume root."
    )
    patterns: list[str] = Field(
        default_factory=lambda: list(IMAGE_PATTERNS),
        min_length=1,
        description="File name patterns to take (case-insensitive globs).",
    )
    poll_s: float = Field(default=1.0, gt=0, le=3600, description="How often to look for new files.")
    settle_s: float = Field(
        default=1.0,
        ge=0,
        le=3600,
        description="A new file is taken once unchanged for this long (still being written before).",
    )


class FolderSource:
    live: ClassVar[bool] = False

    def __init__(self, settings: FolderSettings) -> None:
        self.settings = settings
        #: The files whose references were sent (or that were passed over), kept across
        #: restarts by the module; skipped from the start.
        self.position: Position | None = TakenNames()
        #: Names read by this process (sent or on their way), kept across reopenings so
        #: nothing is read twice.
        self.seen: set[str] = set()
        #: The patterns as one case-blind expression: one match a new name, not one a pattern.
        self._wanted_re = re.compile(
            "|".join(f"(?:{fnmatch.translate(p.lower())})" for p in settings.patterns)
        )

    def frames(self, ctl: SourceControl) -> Iterator[Captured]:
        folder = ctl.resolve(self.settings.path)
        index = 0
        while not ctl.stopping:
            for entry in self._ready(ctl, folder):
                self.seen.add(entry.name)
                keep = ctl.keep_nth(index)
                index += 1
                if not keep:
                    ctl.passed(entry.name)
                    continue
                read = self._read(ctl, entry.path)
                if read is None:
                    ctl.passed(entry.name)
                    continue
                if not ctl.throttle():
                    return
                image, data = read
                yield Captured(
                    image=image, encoded=data, attributes={"file_name": entry.name}, mark=entry.name
                )
            if not ctl.wait(self.settings.poll_s):
                return

    def _taken(self) -> TakenNames:
        assert isinstance(self.position, TakenNames)
        return self.position

    def _ready(self, ctl: SourceControl, folder: Path) -> list[os.DirEntry[str]]:
        try:
            entries = list(os.scandir(folder))
        except FileNotFoundError as exc:
            raise SourceError(f"folder {str(folder)!r} not found") from exc
        except OSError as exc:
            raise SourceError(f"cannot list folder {str(folder)!r}: {exc.strerror}") from exc
        present = {entry.name for entry in entries}
        self.seen.intersection_update(present)  # a name that comes back is a new file
        taken = self._taken()
        taken.prune(present)
        candidates = [
            e
            for e in entries
            if e.name not in self.seen and not e.name.startswith(".") and self._wanted(e.name)
        ]
        fresh = taken.not_taken([e.name for e in candidates])  # no copy of the names a poll
        now = ctl.clock.now().timestamp()
        ready = []
        for entry in candidates:
            if entry.name not in fresh:
                continue
            try:
                stat = entry.stat()
            except OSError:
                continue
            if entry.is_file() and now - stat.st_mtime >= self.settings.settle_s:
                ready.append(entry)
        return sorted(ready, key=lambda e: e.name)

    def _wanted(self, name: str) -> bool:
        return self._wanted_re.match(name.lower()) is not None

    @staticmethod
    def _read(ctl: SourceControl, path: str) -> tuple[Image, bytes] | None:
        """The decoded image and the file's bytes; None (counted as skipped) when unreadable."""
        name = os.path.basename(path)
        try:
            raw = read_whole(path)
        except OSError as exc:
            ctl.skip("unreadable_file", f"{name}: {exc.strerror}")
            return None
        try:
            image = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR) if raw else None
        except cv2.error as exc:  # e.g. a header claiming more pixels than OpenCV allows
            ctl.skip("unreadable_file", f"{name}: OpenCV refused it: {str(exc).strip()[-120:]}")
            return None
        if image is None:
            ctl.skip("unreadable_file", f"{name}: not an image OpenCV can decode")
            return None
        return image, raw
