"""Sends frame references on ``frames`` in batches from one thread.

Sources put references into a bounded queue; the sender takes whatever is ready (up to
``batch_max``) and sends it in as few messages as the limits allow. When more than one was
ready (references come faster than messages go), it first waits up to ``batch_window_s`` for
more: fuller messages cost every later hop less (one SDK send and receive, one hub hop, one
progress write per message), for at most the window of latency. It waits only when the window
would bring at least two more: the moving average of the time between references is under half
the window. A reference that comes alone (a paced source keeping up) goes at once, and so do
the few ready after a slow send at a paced rate (100 frames/s against a 10 ms window: the window
would add one reference a message and 10 ms to each). When the hub is slow the
queue fills and sources wait: references are batched, never dropped. A failed send is retried
with backoff, keeping the batch. Once a batch is sent (``send`` returned: the hub has it), the
receipts that came with its references go to ``on_sent``, which moves the sources' positions on.

The queue is a deque under one lock: a reference is put with one lock round (its arrival gap
counted under it, so sources' threads never race on the average), a batch is taken whole in
another, and a thread is woken only when one waits (the sender for references, a source for
room).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from edgeloop.contracts import FrameRef
from edgeloop.runtime.pacing import ArrivalGap
from edgeloop_capture.progress import Receipt

log = logging.getLogger(__name__)

SendFn = Callable[[Sequence[FrameRef]], None]
SentFn = Callable[[Sequence[Receipt]], None]
_POLL_S = 0.05


@dataclass(frozen=True)
class _Outgoing:
    ref: FrameRef
    receipt: Receipt | None


def _nothing(receipts: Sequence[Receipt]) -> None:
    pass


class FrameSender:
    def __init__(
        self,
        send: SendFn,
        *,
        on_sent: SentFn = _nothing,
        batch_max: int = 32,
        batch_window_s: float = 0.0,
        queue_size: int = 512,
        retry_max_s: float = 30.0,
    ) -> None:
        self._send = send
        self._on_sent = on_sent
        self.batch_max = batch_max
        self.batch_window_s = batch_window_s
        self.retry_max_s = retry_max_s
        self.queue_size = queue_size
        self._queue: deque[_Outgoing] = deque()
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)  # references came (the sender waits)
        self._room = threading.Condition(self._lock)  # room came (full: sources wait)
        self._sender_waits = False  # the sender waits on _ready (only then is it notified)
        self._room_waits = 0  # sources waiting on _room
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.counters: Counter[str] = Counter()
        self._pending: list[_Outgoing] = []
        self._gap = ArrivalGap()  # moving average of the time between references

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="capture-sender", daemon=True)
        self._thread.start()

    def put(self, ref: FrameRef, stopping: Callable[[], bool], receipt: Receipt | None = None) -> bool:
        """Queue a reference (and the receipt to settle once it is sent), waiting while the
        queue is full; False if stopping first."""
        item = _Outgoing(ref, receipt)
        with self._lock:
            self._gap.arrived()
            if len(self._queue) >= self.queue_size:
                self.counters["backpressure_waits"] += 1
                while len(self._queue) >= self.queue_size:
                    if stopping() or self._stop.is_set():
                        self.counters["unsent_at_stop"] += 1
                        return False
                    self._room_waits += 1
                    try:
                        self._room.wait(_POLL_S)
                    finally:
                        self._room_waits -= 1
            self._queue.append(item)
            if self._sender_waits:
                self._ready.notify()
        return True

    def window_pays(self) -> bool:
        """Whether waiting the window would bring at least two more references: the moving
        average of the time between them is under half the window (unknown: it does)."""
        gap = self._gap.value
        return gap is None or 2 * gap < self.batch_window_s

    def stop(self, timeout: float = 10.0) -> None:
        """Send what is queued (within ``timeout``), then end the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
        left = self.queued()
        if left:
            self.counters["unsent_at_stop"] += left
            log.warning("%d frame references not sent at shutdown", left)

    def flush_once(self) -> int:
        """Send one batch of what is ready now; returns how many references went out."""
        batch = self._pending or self._take(block=False)
        if not batch:
            return 0
        self._pending = batch
        self._send([item.ref for item in batch])
        self._pending = []
        self.counters["batches"] += 1
        self.counters["sent"] += len(batch)
        receipts = [item.receipt for item in batch if item.receipt is not None]
        if receipts:
            try:
                self._on_sent(receipts)
            except Exception:  # the batch is sent: never send it again for this
                self.counters["progress_errors"] += 1
                log.exception("recording %d sent frame references failed", len(receipts))
        return len(batch)

    def queued(self) -> int:
        """References waiting to be sent (queued, or in a batch not sent yet)."""
        with self._lock:
            return len(self._queue) + len(self._pending)

    def stats(self) -> dict[str, Any]:
        return {**dict(self.counters), "queued": self.queued()}

    def _take(self, *, block: bool) -> list[_Outgoing]:
        """What is ready (waiting up to ``_POLL_S`` for a first one when ``block``); then, when
        ``block`` and more than one but not ``batch_max`` were ready and the window pays, what
        came within ``batch_window_s``."""
        with self._lock:
            if block and not self._queue:
                self._sender_waits = True
                try:
                    self._ready.wait(_POLL_S)
                finally:
                    self._sender_waits = False
            batch = self._pop(self.batch_max)
        if block and 1 < len(batch) < self.batch_max and self.batch_window_s > 0:
            if self.window_pays():
                self._fill(batch)
            else:
                self.counters["window_skipped"] += 1
        return batch

    def _pop(self, most: int) -> list[_Outgoing]:
        """Up to ``most`` references off the queue, waking the sources that wait for room
        (the lock held)."""
        queue = self._queue
        count = min(most, len(queue))
        if count == len(queue):
            batch = list(queue)
            queue.clear()
        else:
            batch = [queue.popleft() for _ in range(count)]
        if count and self._room_waits:
            self._room.notify(count)
        return batch

    def _fill(self, batch: list[_Outgoing]) -> None:
        """Wait the window out (one sleep, not a wake-up per reference), then take what came."""
        if self._stop.wait(self.batch_window_s):
            return
        with self._lock:
            batch.extend(self._pop(self.batch_max - len(batch)))

    def _run(self) -> None:
        delay = 0.5
        while True:
            if not self._pending:
                self._pending = self._take(block=True)
            if not self._pending:
                if self._stop.is_set():
                    return
                continue
            try:
                self.flush_once()
                delay = 0.5
            except Exception:
                self.counters["send_errors"] += 1
                log.warning(
                    "sending %d frame references failed; retrying in %.1fs",
                    len(self._pending),
                    delay,
                    exc_info=True,
                )
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.retry_max_s)
