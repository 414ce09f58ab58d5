"""``python -m edgeloop_capture``: the capture module's container entry point."""

from __future__ import annotations

import sys

from edgeloop.runtime import run_module
from edgeloop_capture.module import CaptureModule


def main() -> int:
    return run_module(CaptureModule.from_environment())


if __name__ == "__main__":
    sys.exit(main())
