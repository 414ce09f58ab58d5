"""Network streams (RTSP, HTTP/MJPEG, RTMP, ...) through OpenCV's FFmpeg backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import cv2
from pydantic import Field, field_validator

from edgeloop_capture.progress import Position
from edgeloop_capture.sources._opencv_live import open_timeouts_ms, read_live
from edgeloop_capture.sources.base import Captured, ImageSettings, SourceControl

SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "udp", "tcp", "srt")


class StreamSettings(ImageSettings):
    kind: Literal["stream"] = Field(description="A network stream read through FFmpeg.")
    url: str = Field(description=f"Stream URL; schemes: {', '.join(SCHEMES)}.")
    open_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Give up opening after this long.")
    read_timeout_s: float = Field(default=10.0, gt=0, le=300, description="A read stalled this long fails.")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str) -> str:
        scheme = urlsplit(url).scheme.lower()
        if scheme not in SCHEMES:
            raise ValueError(f"URL scheme {scheme or '(none)'!r} is not one of {', '.join(SCHEMES)}")
        return url


def redact(url: str) -> str:
    """The URL without its password, for logs and health."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


class StreamSource:
    live: ClassVar[bool] = True
    position: Position | None = None

    def __init__(self, settings: StreamSettings) -> None:
        self.settings = settings

    def frames(self, ctl: SourceControl) -> Iterator[Captured]:
        s = self.settings
        cap = cv2.VideoCapture(s.url, cv2.CAP_FFMPEG, open_timeouts_ms(s.open_timeout_s, s.read_timeout_s))
        shown = redact(s.url)
        yield from read_live(ctl, cap, what=f"stream {shown}", attributes={"url": shown})
