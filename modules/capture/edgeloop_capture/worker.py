"""One thread per source: reads frames, applies rate settings, hands them to the pipeline,
retries with backoff when the source fails, and keeps the source's health.

Each frame then goes through the source's store stage, on a thread of its own: prepare (resize,
JPEG/PNG, dHash) and write (atomic file, reference, emit). Frames stay in order. One stage, not
one for preparing and one for writing: most frames are stored as read (little to prepare), and
writing one costs far less than encoding one, so a second hand-off between threads cost more a
frame than the overlap gave. On the raw path (``frames.store: raw``) a packet the source left
encoded (MJPG) is decoded whole on the source's thread before the hand-off
(``FramePipeline.decode_ahead``): decoding, then checksumming and writing 900 KiB of pixels,
are each about a millisecond a 640x480 frame, and split this way they overlap."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from edgeloop.clock import Clock
from edgeloop.contracts import FrameRef
from edgeloop.errors import MethodError
from edgeloop_capture.pipeline import EncodeError, FramePipeline
from edgeloop_capture.progress import Ledger, Receipt
from edgeloop_capture.sources.base import Captured, Source, SourceError, SourceSettings
from edgeloop_capture.stage import Stage

log = logging.getLogger(__name__)

#: Longest single sleep, so stop, resume and snapshot requests are seen promptly.
_SLICE_S = 0.05
#: Real-time replay that falls this far behind starts pacing afresh instead of bursting.
_MAX_LAG_S = 1.0

#: Hands a reference to the sender with the receipt that moves the source's position on once
#: it is sent; False when it will not be sent (stopping).
Emit = Callable[[FrameRef, Receipt | None], bool]


@dataclass
class _Snapshot:
    done: threading.Event = field(default_factory=threading.Event)
    ref: FrameRef | None = None
    error: MethodError | None = None

    def finish(self, ref: FrameRef | None = None, error: MethodError | None = None) -> None:
        self.ref, self.error = ref, error
        self.done.set()


@dataclass
class _Job:
    """A frame on its way through the store stage."""

    captured: Captured
    captured_at: datetime
    snapshot: _Snapshot | None
    receipt: Receipt | None = None

    def settle(self) -> None:
        """Handled without a reference (skipped): the position may move past it."""
        if self.receipt is not None:
            self.receipt.settle()

    def abandon(self) -> None:
        """Dropped at a stop: it is read again after the restart."""
        if self.receipt is not None:
            self.receipt.abandon()


class SourceWorker:
    """Runs one source on its own thread until ``stop``."""

    def __init__(
        self,
        settings: SourceSettings,
        source: Source,
        *,
        pipeline: FramePipeline,
        emit: Emit,
        clock: Clock,
        root: Path,
        module_paused: Callable[[], bool],
        retry_initial_s: float = 1.0,
        retry_max_s: float = 30.0,
        progress: Ledger | None = None,
    ) -> None:
        self.settings = settings
        self.progress = progress
        self.source = source
        self.pipeline = pipeline
        self.emit = emit
        self.clock = clock
        self.root = root
        self.module_paused = module_paused
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.seq = 0
        self.paused = False
        self._stop = threading.Event()
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stage: Stage[_Job] | None = None
        self._skip_lock = threading.Lock()
        # health
        self.state = "starting"
        self.since = clock.now()
        self.last_frame_at: datetime | None = None
        self.frames = 0
        self.skipped: Counter[str] = Counter()
        self.last_skip: str | None = None
        self.errors = 0
        self.last_error: str | None = None
        self.retries = 0
        self._read = 0
        # rate and pacing
        self._next_keep: float | None = None
        self._pace_origin: float | None = None
        self._last_throttle: float | None = None

    # -- control from the module -----------------------------------------------------------
    def start(self) -> None:
        """Start the source thread and its store stage."""
        name = f"capture-{self.settings.id}"
        self._stage = Stage(f"{name}-store", self._store_job)
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading; frames already read are still written and emitted."""
        self._stop.set()
        with self._lock:
            if self._snapshot is not None:
                self._snapshot.finish(error=MethodError(409, f"source {self.settings.id!r} stopped"))
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.warning("source %s did not stop within %.1fs", self.settings.id, timeout)
        if self._stage is not None:
            self._stage.close(timeout)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused

    def snapshot(self, timeout: float) -> FrameRef:
        """Capture one frame now (rate settings and pauses aside) and return its reference.

        Raises:
            MethodError: 409 when the source cannot give one (finished, stopped, busy),
                504 when no frame came within ``timeout``.
        """
        request = _Snapshot()
        with self._lock:
            if self.state == "finished":
                raise MethodError(409, f"source {self.settings.id!r} has finished (end of its input)")
            if self._snapshot is not None:
                raise MethodError(409, f"source {self.settings.id!r} is already taking a snapshot")
            self._snapshot = request
        if not request.done.wait(timeout):
            with self._lock:
                self._snapshot = None
            raise MethodError(
                504, f"source {self.settings.id!r} gave no frame within {timeout}s (state {self.state})"
            )
        if request.error is not None:
            raise request.error
        assert request.ref is not None
        return request.ref

    def health(self) -> dict[str, Any]:
        return {
            "kind": self.settings.kind,
            "state": "paused" if self._is_paused() and self.state == "running" else self.state,
            "since": self.since.isoformat(),
            "paused": self.paused,
            "frames": self.frames,
            "lastFrameAt": self.last_frame_at.isoformat() if self.last_frame_at else None,
            "skipped": dict(self.skipped),
            "lastSkip": self.last_skip,
            "errors": self.errors,
            "lastError": self.last_error,
            "retries": self.retries,
        }

    # -- SourceControl (called by the source on this worker's thread) ----------------------
    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def resolve(self, path: str) -> Path:
        candidate = Path(path)
        return candidate if candidate.is_absolute() else self.root / candidate

    def keep(self, index: int, media_time: float | None) -> bool:
        self._hold_while_paused()
        if self._snapshot_pending():
            return True
        if not self.keep_nth(index):
            return False
        fps = self.settings.fps
        if fps is None:
            return True
        now = self.clock.monotonic() if media_time is None else media_time
        period = 1.0 / fps
        if self._next_keep is None or now + 1e-9 >= self._next_keep:
            self._next_keep = (self._next_keep or now) + period
            if self._next_keep <= now:
                self._next_keep = now + period
            return True
        return False

    def keep_nth(self, index: int) -> bool:
        self._hold_while_paused()
        return self._snapshot_pending() or index % self.settings.every_n == 0

    def restart_pacing(self) -> None:
        self._next_keep = None
        self._pace_origin = None

    def pace(self, media_time: float) -> bool:
        now = self.clock.monotonic()
        if self._pace_origin is None or now - (self._pace_origin + media_time) > _MAX_LAG_S:
            self._pace_origin = now - media_time
        return self._sleep_until(self._pace_origin + media_time)

    def throttle(self) -> bool:
        if self.settings.fps is None:
            return not self.stopping
        now = self.clock.monotonic()
        due = now if self._last_throttle is None else max(now, self._last_throttle + 1.0 / self.settings.fps)
        self._last_throttle = due
        return self._sleep_until(due)

    def wait(self, seconds: float) -> bool:
        return self._sleep_until(self.clock.monotonic() + seconds)

    def passed(self, mark: Any) -> None:
        if self.progress is not None:
            self.progress.passed(mark)

    def skip(self, reason: str, detail: str) -> None:
        with self._skip_lock:
            self.skipped[reason] += 1
            self.last_skip = f"{reason}: {detail}"
        log.warning("source %s skipped %s: %s", self.settings.id, reason, detail)

    # -- the thread ------------------------------------------------------------------------
    def _run(self) -> None:
        delay = self.retry_initial_s
        while not self.stopping:
            if self._is_paused():
                self._idle_while_paused()
                continue
            frames: Iterator[Captured] | None = None
            read_before = self._read
            try:
                self._set_state("starting")
                frames = iter(self.source.frames(self))
                if self._consume(frames):
                    delay = self.retry_initial_s
                    continue  # paused a live source: reopen on resume
                if self.stopping:
                    break
                if self.source.live:
                    raise SourceError("the source ended")
                self._drain()
                if self.progress is not None:
                    self.progress.save()
                self._set_state("finished")
                self._finished()
                return
            except SourceError as exc:
                self._failed(str(exc))
            except Exception as exc:
                log.exception("source %s failed", self.settings.id)
                self._failed(f"{exc.__class__.__name__}: {exc}")
            finally:
                if frames is not None and hasattr(frames, "close"):
                    frames.close()
            if self._read > read_before:
                delay = self.retry_initial_s  # it worked for a while: start the backoff afresh
            if not self.wait(delay):
                break
            delay = min(delay * 2, self.retry_max_s)
        self._set_state("stopped")

    def _consume(self, frames: Iterator[Captured]) -> bool:
        """Handle frames until the source ends (False) or a live source pauses (True).

        A paused file source blocks in ``keep`` instead, so it keeps its place."""
        for captured in frames:
            if self.stopping:
                return False
            if self.source.live and self._is_paused():
                return True
            self._handle(captured)
        return False

    def _hold_while_paused(self) -> None:
        if self.source.live:
            return
        while self._is_paused() and not self.stopping and not self._snapshot_pending():
            self._idle()

    def _idle_while_paused(self) -> None:
        self._set_state("paused" if self.settings.enabled else "disabled")
        while self._is_paused() and not self.stopping:
            if self._snapshot_pending():
                self._one_off_snapshot()
            else:
                self._idle()

    def _one_off_snapshot(self) -> None:
        frames = iter(self.source.frames(self))
        try:
            captured = next(frames, None)
            if captured is None:
                self._answer_snapshot_error("gave no frame")
            else:
                self._handle(captured)
        except Exception as exc:
            self._answer_snapshot_error(f"failed: {exc}")
        finally:
            if hasattr(frames, "close"):
                frames.close()

    def _finished(self) -> None:
        while not self.stopping:
            if self._snapshot_pending():
                self._answer_snapshot_error("has finished (end of its input)")
            self._idle()

    def _handle(self, captured: Captured) -> None:
        """On the source thread: stamp the frame and hand it to the store stage."""
        self._read += 1
        with self._lock:
            snapshot, self._snapshot = self._snapshot, None
        if snapshot is not None:
            captured.attributes["trigger"] = "snapshot"
        if self.state != "running":
            self._set_state("running")
        receipt = None
        if self.progress is not None and captured.mark is not None:
            receipt = self.progress.expect(captured.mark)
        job = _Job(captured=captured, captured_at=self.clock.now(), snapshot=snapshot, receipt=receipt)
        self.pipeline.decode_ahead(self.settings, captured)
        assert self._stage is not None
        if not self._stage.put(job, lambda: self.stopping):
            job.abandon()
            if snapshot is not None:
                snapshot.finish(error=MethodError(409, f"source {self.settings.id!r} stopped"))

    def _store_job(self, job: _Job) -> None:
        """Store stage: resize, encode, hash; the file, the reference, the health, then out to
        the sender."""
        try:
            prepared = self.pipeline.prepare(self.settings, job.captured, captured_at=job.captured_at)
        except EncodeError as exc:
            self._job_failed(job, "encode_failed", exc)
            return
        try:
            ref = self.pipeline.store(self.settings, prepared, seq=self.seq)
        except OSError as exc:
            self._job_failed(job, "write_failed", exc)
            return
        self.seq += 1
        self.frames += 1
        self.last_frame_at = job.captured_at
        if job.snapshot is not None:
            job.snapshot.finish(ref=ref)
        if not self.emit(ref, job.receipt):
            job.abandon()

    def _job_failed(self, job: _Job, reason: str, exc: Exception) -> None:
        self.skip(reason, str(exc))
        job.settle()
        if job.snapshot is not None:
            job.snapshot.finish(error=MethodError(500, f"snapshot of {self.settings.id!r} failed: {exc}"))

    def _drain(self) -> None:
        """Wait until every frame read so far is written and emitted."""
        if self._stage is not None:
            self._stage.drain()

    def _failed(self, reason: str) -> None:
        self.errors += 1
        self.retries += 1
        self.last_error = reason
        self._set_state("retrying")
        log.warning("source %s: %s; retrying", self.settings.id, reason)
        self._answer_snapshot_error(f"is failing: {reason}")

    def _answer_snapshot_error(self, why: str) -> None:
        with self._lock:
            snapshot, self._snapshot = self._snapshot, None
        if snapshot is not None:
            snapshot.finish(error=MethodError(409, f"source {self.settings.id!r} {why}"))

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.since = self.clock.now()

    def _is_paused(self) -> bool:
        return self.paused or self.module_paused() or not self.settings.enabled

    def _snapshot_pending(self) -> bool:
        return self._snapshot is not None

    def _idle(self) -> None:
        """Wait for a stop, resume or snapshot request (in real time, whatever the clock)."""
        self._stop.wait(_SLICE_S)

    def _sleep_until(self, due: float) -> bool:
        while not self.stopping and not self._snapshot_pending():
            left = due - self.clock.monotonic()
            if left <= 0:
                break
            self.clock.sleep(min(left, _SLICE_S))
        return not self.stopping
