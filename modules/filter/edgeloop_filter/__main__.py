"""``python -m edgeloop_filter``: the filter module's container entry point."""

from __future__ import annotations

import os
import sys
from datetime import UTC
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from edgeloop.runtime import run_module
from edgeloop_filter.module import FilterModule
from edgeloop_filter.state import JsonFileStateStore


def build_module() -> FilterModule:
    state_dir = Path(os.environ.get("EDGELOOP_STATE_DIR", ".edgeloop/state/filter"))
    return FilterModule(
        store=JsonFileStateStore(state_dir / "filter-state.json"),
        scheduler=BackgroundScheduler(timezone=UTC),
    )


def main() -> int:
    return run_module(build_module())


if __name__ == "__main__":
    sys.exit(main())
