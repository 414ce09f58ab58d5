"""A pipeline stage: one thread applying a function to items from a bounded queue, in order.

Reading a frame and storing it (encoding, hashing, writing) are mostly GIL-free work (OpenCV
and file system calls); running the store as a stage of its source overlaps the two on several
cores while keeping each source's frames in order.

The hand-off wakes a thread only when it pays: a producer that found the stage full sleeps until
it is half empty (not one wake-up a frame while the source runs ahead of the store), and the
stage's thread is woken only when it waits for work.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_POLL_S = 0.05


class Stage(Generic[T]):
    def __init__(self, name: str, fn: Callable[[T], None], *, size: int = 4) -> None:
        if size < 1:
            raise ValueError(f"stage {name}: size must be at least 1, got {size}")
        self.name = name
        self.size = size
        self._fn = fn
        self._items: deque[T] = deque()
        self._unfinished = 0  # handed on and not yet processed
        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # items came, or the stage closed
        self._room = threading.Condition(self._lock)  # the queue fell to half, or closed
        self._done = threading.Condition(self._lock)  # every item so far processed
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T, stopping: Callable[[], bool]) -> bool:
        """Hand an item on, waiting while the stage is full; False if stopping first (or the
        stage closed)."""
        with self._lock:
            while len(self._items) >= self.size:
                if self._closed or stopping():
                    return False
                self._room.wait(_POLL_S)
            if self._closed:
                return False
            self._items.append(item)
            self._unfinished += 1
            self._work.notify()
            return True

    def drain(self) -> None:
        """Wait until every item handed on so far has been processed."""
        with self._lock:
            while self._unfinished:
                self._done.wait()

    def close(self, timeout: float = 5.0) -> None:
        """Process what is queued, then end the thread."""
        with self._lock:
            self._closed = True
            self._work.notify()
            self._room.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        low = self.size // 2
        while True:
            with self._lock:
                while not self._items:
                    if self._closed:
                        return
                    self._work.wait(_POLL_S)
                item = self._items.popleft()
                if len(self._items) <= low:
                    self._room.notify()
            try:
                self._fn(item)
            except Exception:
                log.exception("stage %s failed on an item", self.name)
            finally:
                with self._lock:
                    self._unfinished -= 1
                    if not self._unfinished:
                        self._done.notify_all()
