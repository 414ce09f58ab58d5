"""Video files (any container/codec OpenCV's FFmpeg backend reads), optionally looped.

The last frame sent is the source's position: after a restart the frames up to it are read and
dropped (decoded, not seeked to: seeking by frame number is not exact in every container), and
a file replaced since (another size or modification time) starts over. An MJPG file whose
frames are stored as JPEG unchanged is read as packets (``mjpeg``): each frame's JPEG is stored
as read, not encoded again, and decoded only at a fraction of its size for the dHash."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal

import cv2
from pydantic import Field

from edgeloop_capture.progress import CursorMark, FileCursor, FileIdentity, Position
from edgeloop_capture.sources import mjpeg
from edgeloop_capture.sources.base import Captured, ImageSettings, SourceControl, SourceError

#: Consecutive unreadable frames tolerated before the rest of the file counts as gone.
MAX_BAD_FRAMES = 5
DEFAULT_FPS = 25.0


class VideoSettings(ImageSettings):
    kind: Literal["video"] = Field(description="A video file.")
    path: str = Field(
        min_length=1, description="Video file; a relative path is taken from the samples volume root."
    )
    loop: bool = Field(default=False, description="Start again at the first frame after the last.")
    realtime: bool = Field(
        default=True,
        description="Replay at the file's own frame rate, like a camera; false reads as fast as it can.",
    )


class VideoSource:
    live: ClassVar[bool] = False

    def __init__(self, settings: VideoSettings) -> None:
        self.settings = settings
        #: The last frame sent (or passed over) in which file, kept across restarts by the
        #: module: frames up to it are read and dropped, a replaced file starts over.
        self.position: Position | None = FileCursor()
        #: The last frame this process read, so a reopening goes on after it.
        self._read: CursorMark | None = None

    def frames(self, ctl: SourceControl) -> Iterator[Captured]:
        path = ctl.resolve(self.settings.path)
        resume = self._resume_point(path)
        loop_pass = resume.loop_pass if resume is not None else 0
        if resume is not None and resume.ended:
            if not self.settings.loop:
                return  # this file was read to its end
            loop_pass, resume = loop_pass + 1, None
        while not ctl.stopping:
            ctl.restart_pacing()
            yield from self._one_pass(ctl, path, loop_pass, resume.index if resume is not None else -1)
            resume = None
            loop_pass += 1
            if not self.settings.loop:
                return

    def _resume_point(self, path: Path) -> CursorMark | None:
        assert isinstance(self.position, FileCursor)
        try:
            file = FileIdentity.of(path)
        except OSError:
            return None  # the pass says why
        return self.position.resume_point(file, self._read)

    def _one_pass(self, ctl: SourceControl, path: Path, loop_pass: int, after: int) -> Iterator[Captured]:
        """One pass through the file; frames up to index ``after`` are read and dropped."""
        if not path.is_file():
            raise SourceError(f"video file {str(path)!r} not found")
        cap = mjpeg.open_packets(path) if mjpeg.wanted(self.settings) else None
        packets = cap is not None
        if cap is None:
            cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                raise SourceError(f"cannot open video file {str(path)!r} (not a video OpenCV can read)")
            try:
                file = FileIdentity.of(path)
            except OSError as exc:
                raise SourceError(f"cannot look at video file {str(path)!r}: {exc.strerror}") from exc
            fps = cap.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            index, bad = 0, 0
            while not ctl.stopping:
                media_time = index / fps
                mark = CursorMark(file, loop_pass, index)
                if not cap.grab():
                    if total and index < total - 1 and bad < MAX_BAD_FRAMES:
                        bad += 1
                        if index > after:
                            ctl.skip("corrupt_frame", f"{path.name} frame {index}")
                            self._pass_over(ctl, mark)
                        index += 1
                        continue
                    if index == 0:
                        raise SourceError(f"video file {str(path)!r} has no readable frame")
                    self._pass_over(ctl, CursorMark(file, loop_pass, index, ended=True))
                    return
                if index <= after:
                    bad = 0  # sent before a restart: read and dropped
                elif ctl.keep(index, media_time):
                    captured = _retrieve(cap, packets=packets)
                    if captured is None:
                        ctl.skip("corrupt_frame", f"{path.name} frame {index}")
                        self._pass_over(ctl, mark)
                    else:
                        bad = 0
                        if self.settings.realtime and not ctl.pace(media_time):
                            return
                        self._read = mark
                        captured.attributes = {
                            "frame_index": str(index),
                            "file_name": path.name,
                            "loop_pass": str(loop_pass),
                        }
                        captured.mark = mark
                        yield captured
                else:
                    self._pass_over(ctl, mark)
                index += 1
        finally:
            cap.release()

    def _pass_over(self, ctl: SourceControl, mark: CursorMark) -> None:
        self._read = mark
        ctl.passed(mark)


def _retrieve(cap: Any, *, packets: bool) -> Captured | None:
    """The grabbed frame: its packet with size and preview (``packets``: stored as read, not
    decoded whole) or decoded; None when it is unreadable."""
    if packets:
        packet = mjpeg.retrieve(cap)
        if packet is None:
            return None
        return Captured(encoded=packet.data, preview=packet.preview, size=(packet.width, packet.height))
    ok, image = cap.retrieve()
    return Captured(image=image) if ok and image is not None else None
