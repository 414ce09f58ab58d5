"""The capture module: sources on their own threads, samples onto the shared volume,
references on ``frames``, a janitor for what nobody claimed, and where each file source got to
kept in the state folder (``progress_book``)."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field

from edgeloop.contracts import FrameRef
from edgeloop.errors import MethodError
from edgeloop.runtime import EdgeModule, MethodRegistry, ModuleContext
from edgeloop_capture.config import CaptureConfig, ParsedSources, parse_sources
from edgeloop_capture.ids import SampleIds
from edgeloop_capture.janitor import Janitor
from edgeloop_capture.pipeline import FramePipeline
from edgeloop_capture.progress import Ledger, Receipt, settle_all
from edgeloop_capture.progress_book import ProgressBook
from edgeloop_capture.ring import RawRing
from edgeloop_capture.sender import FrameSender
from edgeloop_capture.sources import KINDS, SourceSettings
from edgeloop_capture.worker import SourceWorker
from edgeloop_capture.writer import FRAMES_DIR, SampleWriter

log = logging.getLogger(__name__)

OUTPUT = "frames"
#: How long a changed definition waits for the references its old source still has on their
#: way before the new one starts from what was sent.
SETTLE_S = 5.0


def progress_key(settings: SourceSettings) -> dict[str, str]:
    """What a file source's position is about: another kind or path starts afresh."""
    return {"kind": settings.kind, "path": str(getattr(settings, "path", ""))}


class SourcePayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    source: str = Field(description="Source id.")


class SnapshotPayload(SourcePayload):
    timeout_s: float = Field(default=10.0, gt=0, le=60, description="How long to wait for the frame.")


class CaptureModule(EdgeModule[CaptureConfig]):
    name: ClassVar[str] = "capture"
    config_model: ClassVar[type[BaseModel]] = CaptureConfig

    def __init__(
        self, samples_dir: Path, *, ids: SampleIds | None = None, progress: ProgressBook | None = None
    ) -> None:
        self.samples_dir = samples_dir
        self.ids = ids or SampleIds()
        self.progress = progress or ProgressBook()
        self.writer = SampleWriter(samples_dir)
        self.config = CaptureConfig()
        self.ring = RawRing(max_bytes=self.config.frames.max_bytes)
        self.pipeline = FramePipeline(
            self.writer, self.ids, raw_writer=SampleWriter(samples_dir, subdir=FRAMES_DIR), ring=self.ring
        )
        self.workers: dict[str, SourceWorker] = {}
        self.config_errors: dict[str, str] = {}
        self.paused = False
        self.ctx: ModuleContext[CaptureConfig] | None = None
        self.sender: FrameSender | None = None
        self.janitor: Janitor | None = None
        self.frames_janitor: Janitor | None = None
        self._janitor_thread: threading.Thread | None = None
        self._lock = threading.RLock()
        self._reported_ids: set[str] = set()
        self._last_report: dict[str, Any] | None = None
        self._next_report = 0.0

    @classmethod
    def from_environment(cls) -> CaptureModule:
        root = os.environ.get("EDGELOOP_SAMPLES_DIR", "/samples")
        state = os.environ.get("EDGELOOP_STATE_DIR")
        return cls(Path(root), progress=ProgressBook.in_folder(Path(state) if state else None))

    # -- EdgeModule ------------------------------------------------------------------------
    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add(
            "snapshot",
            self._snapshot,
            payload_model=SnapshotPayload,
            description="capture one frame now from {source}; returns its reference",
        )
        methods.add(
            "pauseSource",
            self._pause_source,
            payload_model=SourcePayload,
            description="stop capturing {source}",
        )
        methods.add(
            "resumeSource",
            self._resume_source,
            payload_model=SourcePayload,
            description="capture from {source} again",
        )

    def start(self, ctx: ModuleContext[CaptureConfig]) -> None:
        self.ctx = ctx
        c = self.config
        self.progress.load()
        self.sender = FrameSender(
            self._send,
            on_sent=self._sent,
            batch_max=c.batch_max,
            batch_window_s=c.batch_window_ms / 1000.0,
            queue_size=c.queue_size,
            retry_max_s=c.retry_max_s,
        )
        self.sender.start()
        j = c.janitor
        self.janitor = Janitor(
            self.samples_dir,
            clock=ctx.clock,
            ttl_s=j.ttl_s,
            max_bytes=j.max_bytes,
            stale_temp_s=j.stale_temp_s,
        )
        adopted = self.ring.adopt(self.samples_dir / FRAMES_DIR)
        if adopted:
            log.info("raw frame ring: %d frames left by an earlier run taken in", adopted)
        self.frames_janitor = Janitor(
            self.samples_dir,
            clock=ctx.clock,
            ttl_s=c.frames.ttl_s,
            max_bytes=c.frames.max_bytes,
            stale_temp_s=j.stale_temp_s,
            subdir=FRAMES_DIR,
            volume="frames",
        )
        self._janitor_thread = threading.Thread(
            target=self._janitor_loop, name="capture-janitor", daemon=True
        )
        self._janitor_thread.start()
        self._reconcile(parse_sources(c.sources), previous=None)
        self._report(force=True)

    def apply_config(self, config: CaptureConfig, previous: CaptureConfig | None) -> None:
        self.config = config
        self.writer.fsync = config.fsync
        self.pipeline.store_kind = config.frames.store
        self.ring.configure(max_bytes=config.frames.max_bytes)
        if self.ctx is None:
            return  # start() builds everything from this config
        if self.sender is not None:
            self.sender.batch_max = config.batch_max
            self.sender.batch_window_s = config.batch_window_ms / 1000.0
            self.sender.retry_max_s = config.retry_max_s
        if self.janitor is not None:
            j = config.janitor
            self.janitor.configure(ttl_s=j.ttl_s, max_bytes=j.max_bytes, stale_temp_s=j.stale_temp_s)
        if self.frames_janitor is not None:
            f = config.frames
            self.frames_janitor.configure(
                ttl_s=f.ttl_s, max_bytes=f.max_bytes, stale_temp_s=config.janitor.stale_temp_s
            )
        self._reconcile(parse_sources(config.sources), previous=previous)
        self._report(force=True)

    def set_paused(self, paused: bool) -> None:
        self.paused = paused

    def tick(self) -> None:
        self._report(force=False)

    def stats(self) -> dict[str, Any]:
        return {
            "sources": self.source_health(),
            "sender": self.sender.stats() if self.sender else {},
            "janitor": self.janitor.stats() if self.janitor else {},
            "frames": self.frames_stats(),
            "progress": self.progress.stats(),
            "paused": self.paused,
        }

    def warnings(self) -> list[str]:
        """Stream credentials kept in the twin, and stream URLs whose secret cannot be read."""
        found = []
        with self._lock:
            workers = list(self.workers.items())
        for sid, worker in workers:
            url = getattr(worker.settings, "url", None)
            if isinstance(url, str) and urlsplit(url).password is not None:
                found.append(
                    f"source {sid!r}: the twin's url holds a password (reported masked); "
                    "move the URL to url_secret_file or url_env"
                )
            if worker.last_error and worker.last_error.startswith("stream URL "):
                found.append(f"source {sid!r}: {worker.last_error}")
        return found

    def stop(self) -> None:
        with self._lock:
            workers = list(self.workers.values())
            self.workers.clear()
        for worker in workers:
            worker.stop()
        if self.sender is not None:
            self.sender.stop()
        self.progress.save_if_dirty()
        self._report(force=True)

    # -- sources ---------------------------------------------------------------------------
    def source_health(self) -> dict[str, Any]:
        with self._lock:
            health = {sid: w.health() for sid, w in self.workers.items()}
            for sid, reason in self.config_errors.items():
                entry = health.setdefault(sid, {"state": "invalid"})
                entry["configError"] = reason
            return health

    def _reconcile(self, parsed: ParsedSources, previous: CaptureConfig | None) -> None:
        """Start, stop or restart workers so they match the valid definitions; a source whose
        new definition is invalid keeps running on its last good one."""
        with self._lock:
            self.config_errors = dict(parsed.errors)
            for reason in parsed.errors.values():
                log.warning("source definition rejected: %s", reason)
            wanted = dict(parsed.valid)
            stopped = []
            for sid in list(self.workers):
                if sid in parsed.errors:
                    continue  # keep the last good definition running
                if sid not in wanted or wanted[sid] != self.workers[sid].settings:
                    worker = self.workers.pop(sid)
                    worker.stop()
                    stopped.append(worker)
            self._let_sent_settle(stopped, wanted)
            self.progress.retain([*wanted, *parsed.errors])
            for sid, settings in wanted.items():
                if sid not in self.workers:
                    self.workers[sid] = self._worker(settings)
                    self.workers[sid].start()

    def _let_sent_settle(self, stopped: list[SourceWorker], wanted: dict[str, SourceSettings]) -> None:
        """A source restarted on the same input goes on from what was sent: first let the
        references its old worker still has on their way be sent (a while at most)."""
        deadline = time.monotonic() + SETTLE_S
        for worker in stopped:
            sid = worker.settings.id
            if worker.progress is None or sid not in wanted:
                continue
            if progress_key(wanted[sid]) != progress_key(worker.settings):
                continue
            if not worker.progress.wait_settled(max(0.0, deadline - time.monotonic())):
                log.warning(
                    "source %s restarts with %d references of its input not sent yet; "
                    "they may be taken again",
                    sid,
                    worker.progress.in_flight,
                )

    def _worker(self, settings: SourceSettings) -> SourceWorker:
        assert self.ctx is not None
        assert self.sender is not None
        sender, ctx = self.sender, self.ctx
        source = KINDS[settings.kind].build(settings)
        ledger = None
        if source.position is None:
            self.progress.detach(settings.id)
        else:
            source.position = self.progress.attach(settings.id, progress_key(settings), source.position)
            ledger = Ledger(source.position, self.progress)
        return SourceWorker(
            settings,
            source,
            progress=ledger,
            pipeline=self.pipeline,
            emit=lambda ref, receipt: sender.put(ref, lambda: ctx.stopping.is_set(), receipt),
            clock=ctx.clock,
            root=self.samples_dir,
            module_paused=lambda: self.paused,
            retry_initial_s=self.config.retry_initial_s,
            retry_max_s=self.config.retry_max_s,
        )

    def _get(self, sid: str) -> SourceWorker:
        with self._lock:
            worker = self.workers.get(sid)
            if worker is None:
                if sid in self.config_errors:
                    raise MethodError(
                        409, f"source {sid!r} has an invalid definition: {self.config_errors[sid]}"
                    )
                raise MethodError(
                    404, f"no source {sid!r}; sources: {', '.join(sorted(self.workers)) or '(none)'}"
                )
            return worker

    # -- methods ---------------------------------------------------------------------------
    def _snapshot(self, payload: SnapshotPayload) -> dict[str, Any]:
        ref = self._get(payload.source).snapshot(payload.timeout_s)
        return ref.to_wire()

    def _pause_source(self, payload: SourcePayload) -> dict[str, Any]:
        worker = self._get(payload.source)
        worker.set_paused(True)
        self._report(force=True)
        return {"source": payload.source, "paused": True}

    def _resume_source(self, payload: SourcePayload) -> dict[str, Any]:
        worker = self._get(payload.source)
        worker.set_paused(False)
        self._report(force=True)
        return {"source": payload.source, "paused": False}

    # -- background ------------------------------------------------------------------------
    def _send(self, refs: Sequence[FrameRef]) -> None:
        assert self.ctx is not None
        self.ctx.send(OUTPUT, list(refs), max_batch=self.config.batch_max)

    def _sent(self, receipts: Sequence[Receipt]) -> None:
        """A batch is sent: move the positions on, and write them (once for the batch)."""
        settle_all(receipts)
        self.progress.save_if_dirty()

    def _janitor_loop(self) -> None:
        assert self.ctx is not None
        assert self.janitor is not None
        janitors = [self.janitor, *([self.frames_janitor] if self.frames_janitor else [])]
        while not self.ctx.stopping.is_set():
            for janitor in janitors:
                try:
                    janitor.run_once()
                except Exception:
                    janitor.errors += 1
                    log.exception("janitor run failed on %s", janitor.base)
            if self.ctx.stopping.wait(self.config.janitor.interval_s):
                return

    def _report(self, *, force: bool) -> None:
        """Source health to reported properties: on any state change, else every interval."""
        if self.ctx is None:
            return
        now = self.ctx.clock.monotonic()
        health = self.source_health()
        summary = {sid: (h.get("state"), h.get("configError"), h.get("paused")) for sid, h in health.items()}
        if not force and summary == self._last_report and now < self._next_report:
            return
        self._last_report = summary
        self._next_report = now + self.config.report_interval_s
        patch: dict[str, Any] = {sid: None for sid in self._reported_ids - set(health)}
        patch.update(health)
        self._reported_ids = set(health)
        janitor = self.janitor.stats() if self.janitor else {}
        self.ctx.report({"sources": patch, "janitor": janitor, "frames": self.frames_stats()})

    def frames_stats(self) -> dict[str, Any]:
        """The frame path in use, the raw ring and the janitor of the raw frames."""
        return {
            "store": self.config.frames.store,
            "ring": self.ring.stats(),
            "janitor": self.frames_janitor.stats() if self.frames_janitor else {},
        }
