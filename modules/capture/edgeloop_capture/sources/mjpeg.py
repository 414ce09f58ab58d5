"""MJPG video frames as the camera's own JPEG: read as packets, decoded once for capture.

An MJPG file's frames are JPEG images already. When the source stores JPEG unchanged (no
resize, not grey), the video source reads each frame's packet and decodes it itself, so capture
stores the packet as read instead of encoding the decoded frame again (``encoded``). Only files
whose frames are complete JPEG images (their own Huffman tables; some cameras leave them out)
are read this way; others, and OpenCV builds that cannot hand out packets, decode as before.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edgeloop_capture.encoded import JPEG_SIGNATURE
from edgeloop_capture.sources.base import Image, ImageSettings

MJPG = cv2.VideoWriter.fourcc(*"MJPG")
_HUFFMAN_TABLES = b"\xff\xc4"


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


def retrieve(cap: Any) -> tuple[Image | None, bytes | None]:
    """The grabbed frame decoded, and its JPEG as read; (None, None) when it is unreadable."""
    ok, packet = cap.retrieve()
    data = complete_jpeg(packet) if ok else None
    if data is None:
        return None, None
    image = cv2.imdecode(packet, cv2.IMREAD_COLOR)
    return (image, data) if image is not None else (None, None)


def _packet_mode(cap: Any) -> bool:
    return bool(
        cap.isOpened() and int(cap.get(cv2.CAP_PROP_FOURCC)) == MJPG and cap.set(cv2.CAP_PROP_FORMAT, -1)
    )
