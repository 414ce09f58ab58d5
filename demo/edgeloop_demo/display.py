"""The demo's live display: one progress line (rewritten in place on a terminal) and messages."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Progress:
    """The figures the live display shows."""

    captured: int = 0
    scored: int = 0
    selected: int = 0
    uploaded: int = 0
    outbox: int = 0
    labelled: int = 0
    model: str = "-"
    decisions: list[str] = field(default_factory=list)

    def line(self, elapsed: float) -> str:
        last = self.decisions[-1] if self.decisions else "no gate decision yet"
        return (
            f"[{elapsed:5.0f}s] captured {self.captured}  scored {self.scored}  selected {self.selected}  "
            f"uploaded {self.uploaded}  outbox {self.outbox}  labelled {self.labelled}  "
            f"model {self.model}  | {last}"
        )


class Display:
    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.tty = out.isatty()
        self._last = 0.0

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.out.write("\r\033[K" + text[:200])
            self.out.flush()
        elif force or now - self._last >= 5.0:
            self.out.write(text + "\n")
            self.out.flush()
            self._last = now

    def say(self, text: str) -> None:
        if self.tty:
            self.out.write("\r\033[K")
        self.out.write(text + "\n")
        self.out.flush()
