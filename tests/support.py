"""Helpers shared by the test suites."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any


def wait_for(
    predicate: Callable[[], Any], timeout: float = 30.0, what: str = "condition", interval: float = 0.02
) -> Any:
    """Poll ``predicate`` until it returns something truthy and return that; fail the test with
    ``what`` after ``timeout`` seconds (an upper bound for a failing test, never a speed check)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def body_items(body: Any) -> list[dict[str, Any]]:
    """The items of a message body as the hub recorded it, each a JSON object with its
    ``schema`` tag, whichever shape the message had (one item, an ``edgeloop.batch/1``
    envelope, an ``edgeloop.predictions/1`` batch with its header fields filled in)."""
    from edgeloop.runtime.codec import decode

    if not isinstance(body, dict):
        return []
    if body.get("schema") == "edgeloop.predictions/1":
        return [item.to_wire() for item in decode(json.dumps(body))]
    items = body.get("items", [body])
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []
