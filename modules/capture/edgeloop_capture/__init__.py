"""EdgeLoop capture module: cameras, streams, video files, image folders and sensor logs onto
the shared sample volume, with frame references sent on ``frames``."""

from edgeloop_capture.config import CaptureConfig
from edgeloop_capture.module import CaptureModule

__all__ = ["CaptureConfig", "CaptureModule"]
