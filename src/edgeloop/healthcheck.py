"""Container health check, the module images' ``HEALTHCHECK``: ``python -m edgeloop.healthcheck``.

Healthy (exit 0) when the module process, PID 1 in its container, is alive (not a zombie,
not stopped) and, where a heartbeat file is named by ``EDGELOOP_HEARTBEAT_FILE``, that file
was touched within ``EDGELOOP_HEARTBEAT_MAX_AGE_S`` seconds (default 120). Unhealthy (exit 1)
otherwise, with the reason on stdout, which Docker keeps in ``docker inspect`` and edgeAgent
acts on through the module's restart policy.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

DEFAULT_MAX_AGE_S = 120.0
#: /proc/<pid>/stat states of a process that is not doing its work.
DEAD_STATES = {"Z": "zombie", "X": "dead", "T": "stopped", "t": "stopped by a tracer"}


@dataclass(frozen=True)
class Health:
    healthy: bool
    reason: str


def process_state(stat_text: str) -> str:
    """The one-letter state from the text of ``/proc/<pid>/stat`` (the field after the
    parenthesised command name, which may itself hold spaces and parentheses)."""
    return stat_text[stat_text.rindex(")") + 2 :].split(" ", 1)[0]


def check(
    *,
    proc_root: Path = Path("/proc"),
    pid: int = 1,
    env: Mapping[str, str] | None = None,
    now: Callable[[], float] = time.time,
) -> Health:
    """Judge the health of the module process ``pid`` as seen under ``proc_root``."""
    env = os.environ if env is None else env
    try:
        state = process_state((proc_root / str(pid) / "stat").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return Health(False, f"module process {pid} not found: {exc}")
    if state in DEAD_STATES:
        return Health(False, f"module process {pid} is {DEAD_STATES[state]}")
    heartbeat = env.get("EDGELOOP_HEARTBEAT_FILE")
    if not heartbeat:
        return Health(True, f"module process {pid} is running")
    try:
        max_age = float(env.get("EDGELOOP_HEARTBEAT_MAX_AGE_S", DEFAULT_MAX_AGE_S))
    except ValueError:
        return Health(False, "EDGELOOP_HEARTBEAT_MAX_AGE_S must be a number of seconds")
    try:
        age = now() - Path(heartbeat).stat().st_mtime
    except OSError as exc:
        return Health(False, f"no heartbeat file {heartbeat}: {exc}")
    if age > max_age:
        return Health(False, f"heartbeat {heartbeat} is {age:.0f}s old (limit {max_age:.0f}s)")
    return Health(True, f"module process {pid} is running, heartbeat {age:.0f}s old")


def main() -> int:
    health = check()
    print(("healthy: " if health.healthy else "unhealthy: ") + health.reason)
    return 0 if health.healthy else 1


if __name__ == "__main__":
    sys.exit(main())
