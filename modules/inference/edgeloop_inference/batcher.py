"""Micro-batching on a worker thread: a batch runs when ``max_batch`` items wait or ``max_wait``
seconds passed since its first item, whichever comes first; or at once, with what is queued,
when items have been coming more slowly than the worker processes them.

The wait for a fuller batch pays only while items come faster than batches are processed: then
a fuller run costs less an item and the queue would grow. When the time between arrivals (one
``submit``/``submit_many`` call, a moving average) is longer than a batch's processing (likewise),
the worker keeps up with what comes, and waiting would only add latency (a paced camera: up to
``max_wait`` on every frame), so it runs what is queued at once; the items of one call still
run together. Until both are known (the first batches) it waits, as without the rule.

Items come from any thread (``submit``, or ``submit_many`` for the frames of one message under
one lock); one worker takes them in order and hands each batch to ``process``, taking the items
a batch can hold in one step rather than one at a time. ``stop`` lets the worker finish what is
queued (no waiting for batches to fill); whatever is still queued when the drain deadline passes
is returned to the caller, never processed, so each item is processed exactly once or handed
back.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

from edgeloop.runtime.pacing import ArrivalGap, MovingAverage

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long the idle worker sleeps between looks at the stop flag.
_IDLE_WAIT_S = 0.05


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
        self._limit = max(1, queue_limit)
        self._items: deque[T] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)  # items queued (worker waits)
        self._room = threading.Condition(self._lock)  # room in the queue (submitters wait)
        self._stopping = threading.Event()
        self._abandon = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.batch_sizes: Counter[int] = Counter()
        self.errors = 0
        self.eager_batches = 0  # run at once: items were coming more slowly than processed
        self._arrival_gap = ArrivalGap()  # between submit_many calls (lock held)
        self._batch_time = MovingAverage()  # seconds a batch takes (worker thread)

    def configure(self, *, max_batch: int, max_wait_s: float) -> None:
        """New limits, in force from the next batch."""
        self._max_batch, self._max_wait_s = max_batch, max_wait_s

    @property
    def pending(self) -> int:
        return len(self._items)

    def start(self) -> None:
        self._thread.start()

    def submit(self, item: T) -> None:
        """Queue one item; blocks while the queue is full. Raises RuntimeError once stopped."""
        self.submit_many([item])

    def submit_many(self, items: Sequence[T]) -> None:
        """Queue ``items`` in order, under one lock while there is room; blocks while the queue
        is full. Raises RuntimeError once stopped (items already queued stay queued)."""
        start = 0
        while start < len(items):
            with self._lock:
                if self._stopping.is_set():
                    raise RuntimeError("the batcher is stopping and takes no more items")
                room = self._limit - len(self._items)
                if room <= 0:
                    self._room.wait(_IDLE_WAIT_S)
                    continue
                if start == 0:
                    self._arrival_gap.arrived()
                taken = items[start : start + room]
                self._items.extend(taken)
                start += len(taken)
                self._arrived.notify()

    def stop(self, timeout: float = 15.0) -> list[T]:
        """Process what is queued, then end the worker. Returns items left unprocessed when the
        drain took longer than ``timeout`` (the caller accounts for them)."""
        self._stopping.set()
        with self._lock:
            self._arrived.notify_all()
            self._room.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        self._abandon.set()
        with self._lock:
            left = list(self._items)
            self._items.clear()
            self._room.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return left

    def keeping_up(self) -> bool:
        """Whether items have been coming more slowly than batches are processed (the moving
        averages of both), so a batch runs at once with what is queued."""
        gap, busy = self._arrival_gap.value, self._batch_time.value
        return gap is not None and busy is not None and gap > busy

    # -- worker ----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._abandon.is_set():
            batch = self._next_batch()
            if batch is None:
                if self._stopping.is_set():
                    return
                continue
            self.batch_sizes[len(batch)] += 1
            started = time.monotonic()
            try:
                self._process(batch)
            except Exception:
                self.errors += 1
                log.exception("processing a batch of %d failed", len(batch))
            self._batch_time.add(time.monotonic() - started)

    def _next_batch(self) -> list[T] | None:
        """The next batch, or None when nothing came within the idle wait (or when stopping
        with nothing queued)."""
        with self._lock:
            if not self._items:
                if self._stopping.is_set():
                    return None
                self._arrived.wait(_IDLE_WAIT_S)
                if not self._items or self._abandon.is_set():
                    return None
            batch = self._take(self._max_batch)
            if len(batch) < self._max_batch and self.keeping_up():
                self.eager_batches += 1
                return batch
            deadline = time.monotonic() + self._max_wait_s
            while len(batch) < self._max_batch and not self._stopping.is_set():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._arrived.wait(remaining)
                if self._abandon.is_set():
                    break
                batch.extend(self._take(self._max_batch - len(batch)))
            return batch

    def _take(self, most: int) -> list[T]:
        """Up to ``most`` items from the front of the queue (the lock is held)."""
        items = self._items
        count = min(most, len(items))
        batch = [items.popleft() for _ in range(count)]
        if count:
            self._room.notify_all()
        return batch
