"""Micro-batching on a worker thread: a batch runs when ``max_batch`` items wait or ``max_wait``
seconds passed since its first item, whichever comes first.

Items come from any thread (``submit``); one worker takes them in order and hands each batch to
``process``. ``stop`` lets the worker finish what is queued (no waiting for batches to fill);
whatever is still queued when the drain deadline passes is returned to the caller, never
processed, so each item is processed exactly once or handed back.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class MicroBatcher(Generic[T]):
    def __init__(
        self,
        process: Callable[[list[T]], None],
        *,
        max_batch: int = 8,
        max_wait_s: float = 0.01,
        queue_limit: int = 2048,
        name: str = "batcher",
    ) -> None:
        self._process = process
        self._max_batch = max_batch
        self._max_wait_s = max_wait_s
        self._queue: queue.Queue[T] = queue.Queue(maxsize=queue_limit)
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.batch_sizes: Counter[int] = Counter()
        self.errors = 0

    def configure(self, *, max_batch: int, max_wait_s: float) -> None:
        """New limits, in force from the next batch."""
        self._max_batch, self._max_wait_s = max_batch, max_wait_s

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: T) -> None:
        """Queue one item; blocks while the queue is full. Raises RuntimeError once stopped."""
        if self._stopping.is_set():
            raise RuntimeError("the batcher is stopping and takes no more items")
        self._queue.put(item)

    def stop(self, timeout: float = 15.0) -> list[T]:
        """Process what is queued, then end the worker. Returns items left unprocessed when the
        drain took longer than ``timeout`` (the caller accounts for them)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._abandon.set()
        left: list[T] = []
        while True:
            try:
                left.append(self._queue.get_nowait())
            except queue.Empty:
                break
        if self._thread.is_alive():
            self._thread.join(timeout)
        return left

    # -- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._abandon.is_set():
            try:
                first = self._queue.get(timeout=0.05)
            except queue.Empty:
                if self._stopping.is_set():
                    return
                continue
            batch = self._collect(first)
            self.batch_sizes[len(batch)] += 1
            try:
                self._process(batch)
            except Exception:
                self.errors += 1
                log.exception("processing a batch of %d failed", len(batch))

    def _collect(self, first: T) -> list[T]:
        batch = [first]
        max_batch = self._max_batch
        deadline = time.monotonic() + self._max_wait_s
        while len(batch) < max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except queue.Empty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0 or self._stopping.is_set():
                break
            try:
                batch.append(self._queue.get(timeout=remaining))
            except queue.Empty:
                break
        return batch
