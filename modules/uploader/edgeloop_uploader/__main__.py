"""``python -m edgeloop_uploader``: the uploader module's container entry point."""

from __future__ import annotations

import os
import sys

from edgeloop.runtime import run_module
from edgeloop_uploader.module import UploaderModule


def main() -> int:
    return run_module(UploaderModule.from_environment(os.environ))


if __name__ == "__main__":
    sys.exit(main())
