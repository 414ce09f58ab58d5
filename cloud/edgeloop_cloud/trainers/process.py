"""Run a trainer as a child process: its output into a log tail, a timeout, its group ended after.

The child starts in its own process group (session), so a timeout ends the trainer and
whatever it started, and nothing else.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO

from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.logtail import LogTail

log = logging.getLogger(__name__)

#: Seconds a trainer gets to exit after SIGTERM before SIGKILL.
GRACE_S = 5.0


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout_s: float,
    tail: LogTail,
    log_file: Path,
) -> None:
    """Run ``argv`` to the end; its merged stdout/stderr go to ``tail`` and ``log_file``.

    Raises:
        TrainerFailed: it cannot start, exits non-zero, or runs past ``timeout_s``.
    """
    try:
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=dict(env), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, text=True, errors="replace", start_new_session=True,
        )  # fmt: skip
    except OSError as exc:
        raise TrainerFailed(f"cannot start the trainer {argv[0]!r}: {exc.strerror or exc}") from exc
    assert proc.stdout is not None
    reader = threading.Thread(target=_pump, args=(proc.stdout, tail, log_file), daemon=True)
    reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        _end_group(proc)
        raise TrainerFailed(
            f"the trainer ran past its timeout of {timeout_s:g} s and was stopped",
            log_tail=_drain(reader, tail),
        ) from None
    finally:
        reader.join(timeout=GRACE_S)
        proc.stdout.close()
    if code != 0:
        how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
        raise TrainerFailed(f"the trainer {how}", log_tail=tail.lines())


def _drain(reader: threading.Thread, tail: LogTail) -> list[str]:
    reader.join(timeout=GRACE_S)
    return tail.lines()


def _pump(stream: IO[str], tail: LogTail, log_file: Path) -> None:
    with log_file.open("a", encoding="utf-8") as out:
        for line in stream:
            tail.add(line)
            out.write(line)
            log.debug("trainer: %s", line.rstrip())


def _end_group(proc: subprocess.Popen[str]) -> None:
    """SIGTERM to the trainer's process group; SIGKILL to what is left after the grace period."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=GRACE_S)
    except ProcessLookupError:
        return
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    proc.wait()
