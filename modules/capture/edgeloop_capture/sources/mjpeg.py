"""MJPG video frames as the camera's own JPEG: read as packets, previewed for capture.

An MJPG file's frames are JPEG images already. When the source stores JPEG unchanged (no
resize, not grey), the video source reads each frame's packet, so capture stores the packet as
read instead of encoding the decoded frame again (``encoded``). Only files whose frames are
complete JPEG images (their own Huffman tables; some cameras leave them out) are read this way;
others, and OpenCV builds that cannot hand out packets, decode as before.

A packet is not decoded whole: the frame's size comes from its header and the dHash from a grey
decode at 1/8 (or 1/4, 1/2) of the size (``preview``), which libjpeg makes from the DCT
coefficients at about a quarter of a full decode's cost. Every coefficient is still read, so a
packet libjpeg cannot decode is found as before. The pipeline decodes the packet whole only
when it needs the pixels (raw frames).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeloop_capture.encoded import JPEG_SIGNATURE
from edgeloop_capture.sources.base import Image, ImageSettings

MJPG = cv2.VideoWriter.fourcc(*"MJPG")
_HUFFMAN_TABLES = b"\xff\xc4"
#: Start-of-frame markers (SOF0-SOF15 less DHT, JPG and DAC), which carry the frame's size.
_START_OF_FRAME = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: Markers without a length: TEM, RST0-RST7, SOI.
_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8), 0xD8})
_START_OF_SCAN = 0xDA
#: Grey decodes at 1/8, 1/4 and 1/2 of the size, smallest first.
_REDUCED = (
    (8, cv2.IMREAD_REDUCED_GRAYSCALE_8),
    (4, cv2.IMREAD_REDUCED_GRAYSCALE_4),
    (2, cv2.IMREAD_REDUCED_GRAYSCALE_2),
)
#: The smallest preview taken: 4x4 pixels a dHash cell (9x8 cells), each pixel already the
#: mean of a block of the frame. Smaller frames are decoded grey at full size.
PREVIEW_MIN = (36, 32)
#: The most pixels OpenCV decodes whole (its ``OPENCV_IO_MAX_IMAGE_PIXELS`` default): a frame
#: claiming more is refused here too, though its preview alone would be small enough.
MAX_PIXELS = 1 << 30


def wanted(settings: ImageSettings) -> bool:
    """Whether frames would be stored as read: JPEG, not resized, not grey."""
    return (
        settings.format == "jpeg"
        and not settings.grayscale
        and settings.max_width is None
        and settings.max_height is None
    )


def complete_jpeg(packet: Any) -> bytes | None:
    """The packet's bytes when it is one complete JPEG image (with Huffman tables); else None."""
    if not isinstance(packet, np.ndarray) or packet.dtype != np.uint8:
        return None
    if packet.ndim != 2 or packet.shape[0] != 1:
        return None
    data = packet.tobytes()
    return data if data.startswith(JPEG_SIGNATURE) and _HUFFMAN_TABLES in data else None


def open_packets(path: Path) -> Any | None:
    """``path`` opened to hand out each frame's packet, when it is MJPG with complete JPEG
    frames (its first frame is checked); None otherwise."""
    probe = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        if not _packet_mode(probe) or not probe.grab():
            return None
        ok, packet = probe.retrieve()
        if not ok or complete_jpeg(packet) is None:
            return None
    finally:
        probe.release()
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if _packet_mode(cap):
        return cap
    cap.release()
    return None


@dataclass(frozen=True)
class Packet:
    """A frame's JPEG as read, its size and its grey preview."""

    data: bytes
    width: int
    height: int
    preview: Image


def retrieve(cap: Any) -> Packet | None:
    """The grabbed frame's packet with its size and preview; None when it is unreadable."""
    ok, packet = cap.retrieve()
    data = complete_jpeg(packet) if ok else None
    return preview(data) if data is not None else None


def preview(data: bytes) -> Packet | None:
    """``data`` (one complete JPEG) with its size and a grey decode at a fraction of it; None
    when its header holds no size, claims more than ``MAX_PIXELS`` or libjpeg cannot decode it."""
    size = jpeg_size(data)
    if size is None or size[0] * size[1] > MAX_PIXELS:
        return None
    width, height = size
    scale, flag = next(
        ((s, f) for s, f in _REDUCED if width // s >= PREVIEW_MIN[0] and height // s >= PREVIEW_MIN[1]),
        (1, cv2.IMREAD_GRAYSCALE),
    )
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
    except cv2.error:
        return None
    if image is None:
        return None
    expected = (-(-height // scale), -(-width // scale))  # libjpeg rounds a scaled size up
    if image.shape[:2] == expected[::-1] != expected:
        width, height = height, width  # turned by its EXIF orientation, as a full decode is
    elif image.shape[:2] != expected:
        return None
    return Packet(data=data, width=width, height=height, preview=image)


def jpeg_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from a JPEG's start-of-frame header; None when there is none before
    the image data, or the header is cut short."""
    at, end = 2, len(data)
    while at + 4 <= end:
        if data[at] != 0xFF:
            return None
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in _STANDALONE:
            at += 2
            continue
        if marker == _START_OF_SCAN:
            return None
        if marker in _START_OF_FRAME:
            if at + 9 > end:
                return None
            height = int.from_bytes(data[at + 5 : at + 7], "big")
            width = int.from_bytes(data[at + 7 : at + 9], "big")
            return (width, height) if width and height else None
        at += 2 + int.from_bytes(data[at + 2 : at + 4], "big")
    return None


def _packet_mode(cap: Any) -> bool:
    return bool(
        cap.isOpened() and int(cap.get(cv2.CAP_PROP_FOURCC)) == MJPG and cap.set(cv2.CAP_PROP_FORMAT, -1)
    )
