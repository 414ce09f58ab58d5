"""Reading a live OpenCV capture (network stream or camera), shared by ``stream`` and ``usb``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import cv2

from edgeloop_capture.sources.base import Captured, SourceControl, SourceError

#: Consecutive failed reads after which the device or stream counts as gone.
MAX_FAILED_READS = 10


def read_live(ctl: SourceControl, cap: Any, *, what: str, attributes: dict[str, str]) -> Iterator[Captured]:
    """Yield frames from an opened capture until it fails; always releases it."""
    try:
        if not cap.isOpened():
            raise SourceError(f"cannot open {what}")
        index, failed = 0, 0
        while not ctl.stopping:
            if not cap.grab():
                failed += 1
                if failed >= MAX_FAILED_READS:
                    raise SourceError(f"{what} stopped delivering frames ({failed} failed reads)")
                ctl.skip("read_failed", what)
                continue
            failed = 0
            if ctl.keep(index, None):
                ok, image = cap.retrieve()
                if ok and image is not None:
                    yield Captured(image=image, attributes=dict(attributes))
                else:
                    ctl.skip("corrupt_frame", f"{what} frame {index}")
            index += 1
    finally:
        cap.release()


def set_properties(cap: Any, props: dict[int, float | None]) -> None:
    for prop, value in props.items():
        if value is not None:
            cap.set(prop, value)


def open_timeouts_ms(open_timeout_s: float, read_timeout_s: float) -> list[int]:
    """Open parameters that bound how long FFmpeg waits on a dead URL."""
    return [
        cv2.CAP_PROP_OPEN_TIMEOUT_MSEC,
        int(open_timeout_s * 1000),
        cv2.CAP_PROP_READ_TIMEOUT_MSEC,
        int(read_timeout_s * 1000),
    ]
