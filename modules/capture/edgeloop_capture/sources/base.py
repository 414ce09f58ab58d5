"""What every capture source shares: its settings, what it yields, and the control it gets.

A source kind is one file in this package holding its settings model (a ``SourceSettings``
subclass with ``kind`` fixed) and its implementation (a ``Source`` whose ``frames`` generator
opens the device or file, yields ``Captured`` items and closes it when the generator closes).
The worker around it does pacing checks, pausing, retries with backoff and health.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict, Field

from edgeloop.clock import Clock
from edgeloop.errors import EdgeLoopError
from edgeloop_capture.progress import Position

#: An OpenCV image: BGR (height x width x 3) or grey (height x width), 8-bit.
Image = NDArray[Any]

SOURCE_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"


class SourceError(EdgeLoopError):
    """A source cannot produce frames now (file missing, device gone, URL unreachable).

    The worker records the reason and retries with backoff.
    """


class SourceSettings(BaseModel):
    """Settings every source has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=SOURCE_ID_PATTERN, description="Unique source id (letters, digits, '_', '-').")
    kind: str = Field(description="Source kind: video, stream, usb, folder or sensor.")
    enabled: bool = Field(default=True, description="False keeps the definition but captures nothing.")
    fps: float | None = Field(
        default=None,
        gt=0,
        le=1000,
        description="Frames a second: video keeps at most this many per second of video, stream and "
        "usb at most this many per second (dropping the rest), folder and sensor are paced to it; "
        "null = no limit.",
    )
    every_n: int = Field(default=1, ge=1, le=100_000, description="Keep one frame of every N read.")


class ImageSettings(SourceSettings):
    """Settings of sources that produce images."""

    max_width: int | None = Field(
        default=None, ge=8, le=16384, description="Downscale (keeping the aspect) to at most this width."
    )
    max_height: int | None = Field(
        default=None, ge=8, le=16384, description="Downscale (keeping the aspect) to at most this height."
    )
    grayscale: bool = Field(default=False, description="Store single-channel grey images.")
    format: Literal["jpeg", "png"] = Field(default="jpeg", description="File encoding of stored frames.")
    jpeg_quality: int = Field(default=90, ge=1, le=100, description="JPEG quality, for format=jpeg.")
    png_compression: int = Field(default=3, ge=0, le=9, description="PNG compression level, for format=png.")


@dataclass
class Captured:
    """One frame or reading as a source produced it."""

    image: Image | None = None
    #: The file the image was decoded from, as read (file sources): stored as it is when it is
    #: already in the stored format and the frame is not resized (``encoded``).
    encoded: bytes | None = None
    #: Stands in for ``image`` when the source did not decode the frame whole (``image`` None;
    #: MJPG packets): ``encoded`` decoded grey at a fraction of its size, enough for the dHash.
    #: The pipeline decodes ``encoded`` whole only when it needs the pixels.
    preview: Image | None = None
    #: The whole image's width and height, with ``preview``.
    size: tuple[int, int] | None = None
    vector: list[float] | None = None
    attributes: dict[str, str] = field(default_factory=dict)
    #: Where the source is once this item is sent (file sources; see ``progress``).
    mark: Any = None


class SourceControl(Protocol):
    """What the worker offers a running source."""

    def keep(self, index: int, media_time: float | None) -> bool:
        """Whether the frame read as number ``index`` (media time in seconds for files, None
        for live sources) passes the rate settings; skip decoding it when False."""
        ...

    def keep_nth(self, index: int) -> bool:
        """Whether item ``index`` passes ``every_n`` (sources paced by ``throttle`` use this)."""
        ...

    def throttle(self) -> bool:
        """Wait so that kept items are at least 1/fps apart (no-op without fps); False when
        stopping."""
        ...

    def wait(self, seconds: float) -> bool:
        """Sleep (poll intervals); False when stopping."""
        ...

    def pace(self, media_time: float) -> bool:
        """Wait until ``media_time`` is due in real-time replay; False when stopping."""
        ...

    def restart_pacing(self) -> None:
        """A new pass begins (a looping file): media time starts again at 0."""
        ...

    def skip(self, reason: str, detail: str) -> None:
        """Count a bad item (corrupt frame, unreadable file, bad row) and go on."""
        ...

    def passed(self, mark: Any) -> None:
        """A file source read an item and yields nothing for it (not kept, unreadable): its
        position may move past it once the items read before it are sent."""
        ...

    def resolve(self, path: str) -> Path:
        """A configured path; relative paths are taken from the samples volume root."""
        ...

    @property
    def stopping(self) -> bool: ...

    @property
    def clock(self) -> Clock: ...


class Source(Protocol):
    """A running source built from its settings."""

    #: Live sources (cameras, streams) are closed while paused and reopened on resume;
    #: file sources keep their position.
    live: ClassVar[bool]
    #: Where a file source got to (``progress``), kept across restarts; None for live sources.
    position: Position | None

    def frames(self, ctl: SourceControl) -> Iterator[Captured]:
        """Open, yield frames until the end (files) or forever (live), close on exit.

        Raises:
            SourceError: cannot open or read on; the worker retries with backoff.
        """
        ...


def describe(settings: SourceSettings) -> dict[str, Any]:
    """The settings as reported."""
    return settings.model_dump(mode="json")
