"""Local cameras (V4L2 on Linux) by index or device path."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal

import cv2
from pydantic import Field, field_validator

from edgeloop_capture.progress import Position
from edgeloop_capture.sources._opencv_live import read_live, set_properties
from edgeloop_capture.sources.base import Captured, ImageSettings, SourceControl, SourceError


class UsbSettings(ImageSettings):
    kind: Literal["usb"] = Field(description="A local camera.")
    device: int | str = Field(default=0, description="Camera index (0, 1, ...) or device path (/dev/video0).")
    capture_width: int | None = Field(default=None, ge=1, description="Ask the camera for this width.")
    capture_height: int | None = Field(default=None, ge=1, description="Ask the camera for this height.")
    capture_fps: float | None = Field(default=None, gt=0, description="Ask the camera for this frame rate.")

    @field_validator("device")
    @classmethod
    def _index_or_path(cls, device: int | str) -> int | str:
        if isinstance(device, int) and device < 0:
            raise ValueError("a camera index is 0 or more")
        if isinstance(device, str) and not device.startswith("/dev/"):
            raise ValueError("a camera path starts with /dev/ (or give the index as a number)")
        return device


class UsbSource:
    live: ClassVar[bool] = True
    position: Position | None = None

    def __init__(self, settings: UsbSettings) -> None:
        self.settings = settings

    def frames(self, ctl: SourceControl) -> Iterator[Captured]:
        s = self.settings
        device = s.device
        if isinstance(device, str) and not ctl.resolve(device).exists():
            raise SourceError(f"camera {device} not present")
        cap = cv2.VideoCapture(device, cv2.CAP_V4L2)
        set_properties(
            cap,
            {
                cv2.CAP_PROP_FRAME_WIDTH: s.capture_width,
                cv2.CAP_PROP_FRAME_HEIGHT: s.capture_height,
                cv2.CAP_PROP_FPS: s.capture_fps,
            },
        )
        yield from read_live(ctl, cap, what=f"camera {device}", attributes={"device": str(device)})
