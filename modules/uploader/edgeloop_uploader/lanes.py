"""Threads that carry the samples an upload worker has in flight.

A worker hands each sample of its batch to a lane and starts the next sample as soon as the
previous one's envelope is written, so one sample's sidecar goes out while the next one's
envelope does. Lanes are daemon threads: a request hanging until its timeout never holds up the
process's exit (whatever it cut off is redelivered from the outbox).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Job = tuple[Future[Any], Callable[[], Any]]


class Lanes:
    """A pool of daemon threads, started as they are needed and kept for the next batch."""

    def __init__(self, name: str = "uploader-lane") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, job: Callable[[], Any]) -> Future[Any]:
        """Run ``job`` on an idle lane (a new one when none is idle); its outcome is the future's.

        Raises:
            RuntimeError: the lanes are closed.
        """
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError("uploader lanes are closed")
            self._jobs.put((future, job))
            if not self._idle.acquire(blocking=False):
                thread = threading.Thread(
                    target=self._serve, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        return future

    def _serve(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            future, job = item
            if not future.set_running_or_notify_cancel():
                self._idle.release()
                continue
            try:
                result = job()
            except BaseException as exc:  # handed to the worker that waits on it
                self._idle.release()  # idle before the worker wakes, so its next job finds this lane
                future.set_exception(exc)
            else:
                self._idle.release()
                future.set_result(result)

    @property
    def size(self) -> int:
        """Lanes started so far."""
        return len(self._threads)

    def close(self) -> None:
        """Let every lane end once its job is done; waits for none of them."""
        with self._lock:
            self._closed = True
            for _ in self._threads:
                self._jobs.put(None)
