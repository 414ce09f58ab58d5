"""The last lines a trainer printed, bounded in count and width, for the run record."""

from __future__ import annotations

import threading
from collections import deque

#: Lines kept by default; a line longer than ``MAX_LINE`` characters is cut.
DEFAULT_LINES = 200
MAX_LINE = 1000


class LogTail:
    """A thread-safe ring of the most recent lines."""

    def __init__(self, lines: int = DEFAULT_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=lines)
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        text = line.rstrip("\r\n")
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + " [cut]"
        with self._lock:
            self._lines.append(text)

    def add_text(self, text: str) -> None:
        for line in text.splitlines():
            self.add(line)

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)
