"""Capture source kinds, one file each, registered by their ``kind`` name.

To add a kind: write ``<kind>.py`` with a settings model (``kind: Literal["<kind>"]``) and a
source class whose ``frames`` generator yields ``Captured`` items, then add it to ``KINDS``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgeloop_capture.sources.base import Captured, Source, SourceControl, SourceError, SourceSettings
from edgeloop_capture.sources.folder import FolderSettings, FolderSource
from edgeloop_capture.sources.sensor import SensorSettings, SensorSource
from edgeloop_capture.sources.stream import StreamSettings, StreamSource
from edgeloop_capture.sources.usb import UsbSettings, UsbSource
from edgeloop_capture.sources.video import VideoSettings, VideoSource


@dataclass(frozen=True)
class SourceKind:
    """A kind of source: its settings model and how to build it from validated settings."""

    settings: type[SourceSettings]
    build: Callable[[Any], Source]


KINDS: dict[str, SourceKind] = {
    "video": SourceKind(VideoSettings, VideoSource),
    "stream": SourceKind(StreamSettings, StreamSource),
    "usb": SourceKind(UsbSettings, UsbSource),
    "folder": SourceKind(FolderSettings, FolderSource),
    "sensor": SourceKind(SensorSettings, SensorSource),
}

__all__ = ["KINDS", "Captured", "Source", "SourceControl", "SourceError", "SourceKind", "SourceSettings"]
