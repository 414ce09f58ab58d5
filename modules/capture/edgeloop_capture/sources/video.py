"""Video files (any container/codec OpenCV's FFmpeg backend reads), optionally looped."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, Literal

import cv2
from pydantic import Field

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

    def frames(self, ctl: SourceControl) -> Iterator[Captured]:
        path = ctl.resolve(self.settings.path)
        passes = 0
        while not ctl.stopping:
            ctl.restart_pacing()
            yield from self._one_pass(ctl, path, passes)
            passes += 1
            if not self.settings.loop:
                return

    def _one_pass(self, ctl: SourceControl, path: Path, loop_pass: int) -> Iterator[Captured]:
        if not path.is_file():
            raise SourceError(f"video file {str(path)!r} not found")
        cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                raise SourceError(f"cannot open video file {str(path)!r} (not a video OpenCV can read)")
            fps = cap.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS
            total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
            index, bad = 0, 0
            while not ctl.stopping:
                media_time = index / fps
                if not cap.grab():
                    if total and index < total - 1 and bad < MAX_BAD_FRAMES:
                        bad += 1
                        ctl.skip("corrupt_frame", f"{path.name} frame {index}")
                        index += 1
                        continue
                    if index == 0:
                        raise SourceError(f"video file {str(path)!r} has no readable frame")
                    return
                if ctl.keep(index, media_time):
                    ok, image = cap.retrieve()
                    if not ok or image is None:
                        ctl.skip("corrupt_frame", f"{path.name} frame {index}")
                    else:
                        bad = 0
                        if self.settings.realtime and not ctl.pace(media_time):
                            return
                        yield Captured(
                            image=image,
                            attributes={
                                "frame_index": str(index),
                                "file_name": path.name,
                                "loop_pass": str(loop_pass),
                            },
                        )
                index += 1
        finally:
            cap.release()
