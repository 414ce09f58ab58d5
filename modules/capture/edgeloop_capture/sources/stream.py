"""Network streams (RTSP, HTTP/MJPEG, RTMP, ...) through OpenCV's FFmpeg backend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, Literal
from urllib.parse import urlsplit, urlunsplit

import cv2
from pydantic import Field, field_validator, model_validator

from edgeloop.secrets import SecretUnavailableError, check_env_name, read_secret_env, read_secret_file
from edgeloop_capture.progress import Position
from edgeloop_capture.sources._opencv_live import open_timeouts_ms, read_live
from edgeloop_capture.sources.base import Captured, ImageSettings, SourceControl, SourceError

SCHEMES = ("rtsp", "rtsps", "http", "https", "rtmp", "rtmps", "udp", "tcp", "srt")


class StreamSettings(ImageSettings):
    kind: Literal["stream"] = Field(description="A network stream read through FFmpeg.")
    url: str | None = Field(
        default=None,
        description=f"Stream URL without credentials; schemes: {', '.join(SCHEMES)}. A URL with a "
        "password belongs in url_secret_file or url_env, not in the twin.",
    )
    url_secret_file: str | None = Field(
        default=None,
        description="Path of a mounted secret file holding the full stream URL with its credentials "
        "(rtsp://user:pass@host/...); read each time the stream opens.",
    )
    url_env: str | None = Field(
        default=None, description="Name of an environment variable holding the full stream URL."
    )
    open_timeout_s: float = Field(default=10.0, gt=0, le=300, description="Give up opening after this long.")
    read_timeout_s: float = Field(default=10.0, gt=0, le=300, description="A read stalled this long fails.")

    @field_validator("url")
    @classmethod
    def _known_scheme(cls, url: str | None) -> str | None:
        return None if url is None else check_scheme(url)

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, name: str | None) -> str | None:
        return check_env_name(name)

    @model_validator(mode="after")
    def _one_url(self) -> StreamSettings:
        given = [k for k in ("url", "url_secret_file", "url_env") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"set exactly one of url, url_secret_file, url_env (got {given or 'none'})")
        return self

    def resolve_url(self) -> str:
        """The stream URL, from the twin, the secret file or the variable.

        Raises:
            SourceError: the secret is unavailable or is not a stream URL (the reason names the
                file or variable, never the URL's credentials).
        """
        if self.url is not None:
            return self.url
        where = (
            f"url_secret_file {self.url_secret_file!r}" if self.url_secret_file else f"url_env {self.url_env}"
        )
        try:
            url = (
                read_secret_file(self.url_secret_file)
                if self.url_secret_file
                else read_secret_env(str(self.url_env))
            )
            return check_scheme(url)
        except SecretUnavailableError as exc:
            raise SourceError(f"stream URL unavailable: {exc}") from exc
        except ValueError as exc:
            raise SourceError(f"stream URL from {where} is not usable: {exc}") from exc


def check_scheme(url: str) -> str:
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
        url = s.resolve_url()
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, open_timeouts_ms(s.open_timeout_s, s.read_timeout_s))
        shown = redact(url)
        yield from read_live(ctl, cap, what=f"stream {shown}", attributes={"url": shown})
