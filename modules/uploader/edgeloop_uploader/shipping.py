"""Shipping sealed entries to Blob Storage: batches claimed from the outbox, create-only writes,
retries with backoff, quarantine of entries that cannot succeed, and the done record.

A sample is one create-only request: the envelope with its metadata and index tags. A worker
claims up to ``_UPLOAD_BATCH`` ready entries in one transaction, ships them one after the other
(with the opt-in sidecar, two samples in flight: one's sidecar beside the next one's envelope),
and records the batch in one commit. A
failure of the storage itself (unreachable, credential refused) backs every upload off without
counting an attempt against the entries.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future, wait
from pathlib import Path

from edgeloop.blobstore import (
    BlobAuthError,
    BlobContainer,
    BlobNotFoundError,
    BlobStoreError,
    BlobUnavailableError,
)
from edgeloop_uploader import blobs, observe
from edgeloop_uploader.backoff import backoff_delay
from edgeloop_uploader.core import Core, remove_files
from edgeloop_uploader.lanes import Lanes
from edgeloop_uploader.notices import Notices
from edgeloop_uploader.outbox import DONE, IN_DATABASE, QUEUED, UPLOADING, Entry
from edgeloop_uploader.storage import StorageLink

log = logging.getLogger(__name__)

#: Entries an upload worker takes at a time: claimed in one transaction, recorded done in one.
_UPLOAD_BATCH = 8
#: Samples of a worker's batch in flight at once: with the sidecar, one's sidecar goes out beside
#: the next one's envelope, so a worker has at most two requests in flight (without it, one).
_IN_FLIGHT = 2
#: The storage (not an entry) failed: every upload backs off, no attempt is counted.
_STORE_ERRORS = (BlobUnavailableError, BlobAuthError, BlobNotFoundError)
#: The outcome of a batch's entry that was not started (the storage failed first, or a stop).
_NOT_TRIED = object()


class CorruptEntryError(Exception):
    """An outbox entry's own file is missing or damaged: retrying cannot help."""


class Shipper:
    """Upload workers call ``upload_ready`` in a loop; thread-safe."""

    def __init__(self, core: Core, storage: StorageLink, notices: Notices) -> None:
        self.core = core
        self.storage = storage
        self.notices = notices
        self._lanes = Lanes()

    def upload_ready(self) -> int:
        """Upload a few of the most urgent ready entries: claimed in one transaction, shipped
        one request each (the sidecar, if on, beside the next one's envelope), recorded done
        in one transaction. Returns how many were taken; 0 when nothing was ready (or
        there is no usable store)."""
        core = self.core
        store = self.storage.ready()
        if store is None or core.stopping.is_set():
            return 0
        entries = core.db.claim_ready(core.now(), limit=_UPLOAD_BATCH, share=core.config.outbox.workers)
        if entries:
            self._settle(self._ship_batch(store, entries))
        return len(entries)

    def close(self) -> None:
        self._lanes.close()

    def _ship_batch(self, store: BlobContainer, entries: list[Entry]) -> list[tuple[Entry, object]]:
        """Each entry with its outcome: None (uploaded), the exception, or ``_NOT_TRIED``."""
        if not self.core.config.storage.sidecar:
            return self._ship_in_turn(store, entries)
        return self._ship_overlapped(store, entries)

    def _ship_in_turn(self, store: BlobContainer, entries: list[Entry]) -> list[tuple[Entry, object]]:
        """One request a sample, on this worker's thread, one after the other; a failure of the
        storage ends the batch (the rest are not tried)."""
        outcomes: list[tuple[Entry, object]] = []
        for entry in entries:
            if self.core.stopping.is_set():
                break
            try:
                self.ship(store, entry)
            except Exception as exc:
                outcomes.append((entry, exc))
                if isinstance(exc, _STORE_ERRORS):
                    break
            else:
                outcomes.append((entry, None))
        return outcomes + [(entry, _NOT_TRIED) for entry in entries[len(outcomes) :]]

    def _ship_overlapped(self, store: BlobContainer, entries: list[Entry]) -> list[tuple[Entry, object]]:
        """With sidecars: a sample's sidecar goes out on a lane beside the next one's envelope."""
        jobs: list[tuple[Entry, Future[None]]] = []
        store_failed = threading.Event()
        envelope_sent: threading.Event | None = None
        for entry in entries:
            if envelope_sent is not None:
                envelope_sent.wait()  # a sample's envelope is out before the next one's starts
            if len(jobs) >= _IN_FLIGHT:
                wait([jobs[-_IN_FLIGHT][1]])
            if store_failed.is_set() or self.core.stopping.is_set():
                break
            envelope_sent = threading.Event()
            job = functools.partial(self._ship_job, store, entry, envelope_sent, store_failed)
            jobs.append((entry, self._lanes.submit(job)))
        outcomes: list[tuple[Entry, object]] = [(entry, future.exception()) for entry, future in jobs]
        return outcomes + [(entry, _NOT_TRIED) for entry in entries[len(jobs) :]]

    def _ship_job(
        self,
        store: BlobContainer,
        entry: Entry,
        envelope_sent: threading.Event,
        store_failed: threading.Event,
    ) -> None:
        try:
            self.ship(store, entry, envelope_sent.set)
        except _STORE_ERRORS:
            store_failed.set()
            raise
        finally:
            envelope_sent.set()

    def _settle(self, outcomes: list[tuple[Entry, object]]) -> None:
        """Record what a batch came to. A crash-like exception (not an ``Exception``) is raised
        before anything is recorded: the whole batch is then redelivered after a restart."""
        core = self.core
        for _entry, outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, Exception):
                raise outcome
        uploaded = [entry for entry, outcome in outcomes if outcome is None]
        if uploaded:
            self.storage.succeeded()
            self._done(uploaded)
        store_error: BlobStoreError | None = None
        for entry, outcome in outcomes:
            if outcome is None:
                continue
            if outcome is _NOT_TRIED:
                core.db.update(entry.id, expect_state=UPLOADING, state=QUEUED, updated_at=core.now())
            elif isinstance(outcome, (CorruptEntryError, blobs.ConflictError)):
                core.quarantine(entry, str(outcome))
            elif isinstance(outcome, _STORE_ERRORS):  # the storage failed, not this entry
                core.db.update(entry.id, expect_state=UPLOADING, state=QUEUED, updated_at=core.now())
                core.count("store_errors")
                store_error = store_error or outcome
            elif isinstance(outcome, Exception):
                self._failed_attempt(entry, outcome)
        if store_error is not None:
            self.storage.failed(store_error)

    def _read_sealed(self, entry: Entry) -> bytes:
        core = self.core
        cached = core.sealed_cache.pop(entry.id)
        if cached is not None:
            return cached
        if entry.sealed_path == IN_DATABASE:
            stored = core.db.sealed_bytes(entry.id)
            if stored is None:
                raise CorruptEntryError("sealed envelope missing from the outbox database")
            data = stored
        else:
            try:
                data = Path(entry.sealed_path or "").read_bytes()
            except OSError as exc:
                raise CorruptEntryError(f"sealed file unreadable: {exc.strerror or exc}") from exc
        if hashlib.sha256(data).hexdigest() != entry.ciphertext_sha256:
            raise CorruptEntryError("sealed file damaged on disk (sha256 differs from when it was sealed)")
        return data

    def ship(
        self, store: BlobContainer, entry: Entry, envelope_written: Callable[[], None] | None = None
    ) -> None:
        """Write an entry's envelope with its metadata and tags, then (if on) its sidecar;
        ``envelope_written`` is called between.

        Raises:
            CorruptEntryError: the sealed copy is missing or damaged.
            blobs.ConflictError: a different blob sits at the entry's name.
            BlobStoreError: a write failed.
        """
        started = time.perf_counter()
        with observe.upload_span(entry.id, entry.blob_name, entry.info.get("traceparent")) as stage:
            self._ship_traced(store, entry, stage.traceparent, envelope_written)
        observe.record_upload(time.perf_counter() - started)

    def _ship_traced(
        self,
        store: BlobContainer,
        entry: Entry,
        traceparent: str | None,
        envelope_written: Callable[[], None] | None,
    ) -> None:
        core = self.core
        data = self._read_sealed(entry)
        metadata = blobs.envelope_metadata(entry)
        if traceparent:  # the cloud continues the trace from the upload
            metadata["traceparent"] = traceparent
        tags = blobs.envelope_tags(entry, core.device_id)
        outcome = blobs.put_once(store, entry.blob_name, data, metadata, blobs.SEALED_CONTENT_TYPE, tags)
        self._count_put(outcome)
        if envelope_written is not None:
            envelope_written()
        if entry.sidecar_name and core.config.storage.sidecar:  # after the envelope: a sidecar
            sidecar = blobs.sidecar_bytes(entry, core.device_id)  # present means its sample is complete
            side_meta = blobs.sidecar_metadata(sidecar)
            self._count_put(blobs.put_once(store, entry.sidecar_name, sidecar, side_meta, "application/json"))
        core.count("uploaded_bytes", len(data))

    def _count_put(self, outcome: str) -> None:
        self.core.count("blobs_written" if outcome == "written" else outcome)

    def _done(self, entries: list[Entry]) -> None:
        """Record a batch's uploads in one commit, then remove their files and send the notices."""
        core = self.core
        core.db.finish_all([entry.id for entry in entries], state=DONE, now=core.now())
        for entry in entries:
            remove_files(entry)
        core.count("uploaded", len(entries))
        for kind, count in Counter(entry.kind for entry in entries).items():
            core.count(f"uploaded_{kind}", count)
        self.notices.send()

    def _failed_attempt(self, entry: Entry, exc: Exception) -> None:
        core = self.core
        attempts = entry.attempts + 1
        reason = f"{exc.__class__.__name__}: {exc}"
        core.count("attempt_errors")
        if attempts >= core.config.retry.max_attempts:
            core.db.update(entry.id, attempts=attempts)
            core.quarantine(
                Entry(**{**entry.__dict__, "attempts": attempts}),
                f"{attempts} attempts failed; last: {reason}",
            )
            return
        delay = backoff_delay(attempts, core.config.retry, core.rng)
        core.db.update(
            entry.id,
            expect_state=UPLOADING,
            state=QUEUED,
            attempts=attempts,
            next_attempt_at=core.now() + delay,
            last_error=reason,
            updated_at=core.now(),
        )
        log.warning("upload of %s failed (attempt %s, retry in %.1fs): %s", entry.id, attempts, delay, reason)
