"""``edgeloop dev up`` (in progress)."""

from __future__ import annotations

import asyncio
from typing import Any


async def run_up(
    settings: Any, manifest: Any, stop: asyncio.Event, *, azurite: bool, log_level: str | None
) -> None:
    raise NotImplementedError
