"""The one way a trainer run fails: a reason in words and the trainer's last log lines."""

from __future__ import annotations

from edgeloop_cloud.errors import TrainingError


class TrainerFailed(TrainingError):
    """A trainer crashed, timed out, or wrote output the cloud cannot use; the champion stays.

    ``reason`` says what went wrong; ``log_tail`` holds the trainer's last output lines (what the
    run record keeps).
    """

    def __init__(self, reason: str, *, log_tail: list[str] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.log_tail = list(log_tail or [])
