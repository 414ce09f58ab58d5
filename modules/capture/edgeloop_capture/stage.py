"""A pipeline stage: one thread applying a function to items from a bounded queue, in order.

Reading a frame and storing it (encoding, hashing, writing) are mostly GIL-free work (OpenCV
and file system calls); running the store as a stage of its source overlaps the two on several
cores while keeping each source's frames in order.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")
_POLL_S = 0.05


class Stage(Generic[T]):
    def __init__(self, name: str, fn: Callable[[T], None], *, size: int = 4) -> None:
        self.name = name
        self._fn = fn
        self._queue: queue.Queue[T] = queue.Queue(maxsize=size)
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, item: T, stopping: Callable[[], bool]) -> bool:
        """Hand an item on, waiting while the stage is full; False if stopping first."""
        while not self._closed.is_set():
            try:
                self._queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                if stopping():
                    return False
        return False

    def drain(self) -> None:
        """Wait until every item handed on so far has been processed."""
        self._queue.join()

    def close(self, timeout: float = 5.0) -> None:
        """Process what is queued, then end the thread."""
        self._closed.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            try:
                item = self._queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self._closed.is_set():
                    return
                continue
            try:
                self._fn(item)
            except Exception:
                log.exception("stage %s failed on an item", self.name)
            finally:
                self._queue.task_done()
