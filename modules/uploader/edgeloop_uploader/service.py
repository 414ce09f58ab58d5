"""The uploader's work, apart from the hub: accept, claim, seal, budget, upload, report.

``Uploader`` is driven by the module (inputs, ticks, methods on the runtime thread; uploads on
worker threads) and by tests directly with a ``FakeClock`` and a ``MemoryContainer``.
"""

from __future__ import annotations

import errno
import functools
import hashlib
import io
import json
import logging
import mimetypes
import os
import random
import sqlite3
import threading
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from edgeloop.blobstore import (
    BlobAuthError,
    BlobContainer,
    BlobNotFoundError,
    BlobStoreError,
    BlobUnavailableError,
    SampleBlobName,
    prediction_log_blob_name,
    sample_blob_name,
)
from edgeloop.clock import Clock
from edgeloop.contracts import Prediction, SelectedSample, UploadedNotice
from edgeloop.envelope import EnvelopeContext, PublicKey, SealResult, seal, sealed_size
from edgeloop_uploader import blobs, observe, predlog
from edgeloop_uploader.backoff import backoff_delay
from edgeloop_uploader.claim import claim_file, fsync_dir, write_durably
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.lanes import Lanes
from edgeloop_uploader.outbox import (
    DONE,
    EVICTED,
    IN_DATABASE,
    QUARANTINED,
    QUEUED,
    UPLOADING,
    Entry,
    OutboxDB,
)
from edgeloop_uploader.sources import load_public_key
from edgeloop_uploader.storage import StorageLink, StoreFactory, azure_store_factory

log = logging.getLogger(__name__)

#: Envelopes up to this size are kept in the outbox database (one commit, no file to create);
#: larger ones go to a file in ``outbox/sealed`` (SQLite would write them twice: WAL, then table).
_IN_DATABASE_BYTES = 256 * 1024
#: Up to this size sealing happens in memory and the envelope is kept for the upload (bounded cache).
_IN_MEMORY_BYTES = 4 * 1024 * 1024
#: Entries an upload worker takes at a time: claimed in one transaction, recorded done in one.
_UPLOAD_BATCH = 8
#: Samples of a worker's batch in flight at once: one's sidecar goes out beside the next one's
#: envelope, so a worker has at most two requests in flight.
_IN_FLIGHT = 2
#: The storage (not an entry) failed: every upload backs off, no attempt is counted.
_STORE_ERRORS = (BlobUnavailableError, BlobAuthError, BlobNotFoundError)
#: The outcome of a batch's entry that was not started (the storage failed first, or a stop).
_NOT_TRIED = object()
Notify = Callable[[list[UploadedNotice]], None]


def _remove_files(entry: Entry) -> None:
    for path in (entry.plain_path, entry.sealed_path):
        if path and path != IN_DATABASE:
            Path(path).unlink(missing_ok=True)


class CorruptEntryError(Exception):
    """An outbox entry's own file is missing or damaged: retrying cannot help."""


@dataclass(frozen=True)
class _PendingAccept:
    """A sealed sample waiting for its batch's durable commit."""

    row: dict[str, Any]
    data: bytes | None
    info: dict[str, Any]
    result: SealResult


@dataclass(frozen=True)
class Paths:
    samples: Path
    outbox: Path

    @property
    def claims(self) -> Path:
        return self.outbox / "claims"

    @property
    def sealed(self) -> Path:
        return self.outbox / "sealed"

    @property
    def database(self) -> Path:
        return self.outbox / "outbox.db"


class _SealedCache:
    """Recently sealed small entries kept in memory, so their upload need not read the file back."""

    def __init__(self, max_bytes: int = 64 * 1024 * 1024) -> None:
        self._items: OrderedDict[str, bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()

    def put(self, key: str, data: bytes) -> None:
        with self._lock:
            self._items[key] = data
            self._bytes += len(data)
            while self._bytes > self._max and self._items:
                _, dropped = self._items.popitem(last=False)
                self._bytes -= len(dropped)

    def pop(self, key: str) -> bytes | None:
        with self._lock:
            data = self._items.pop(key, None)
            if data is not None:
                self._bytes -= len(data)
            return data


class Uploader:
    """Everything between an accepted ``SelectedSample`` and its ``UploadedNotice``."""

    def __init__(
        self,
        *,
        samples_dir: Path,
        outbox_dir: Path,
        device_id: str,
        clock: Clock,
        rng: random.Random | None = None,
        store_factory: StoreFactory = azure_store_factory,
        notify: Notify | None = None,
        env_credential: str | None = None,
        env_public_key_file: str | None = None,
    ) -> None:
        self.paths = Paths(Path(samples_dir), Path(outbox_dir))
        for folder in (self.paths.outbox, self.paths.claims, self.paths.sealed):
            folder.mkdir(parents=True, exist_ok=True)
        self.default_device_id = device_id
        self.clock = clock
        self.rng = rng or random.Random()
        self._rng_lock = threading.Lock()
        self._time_lock = threading.Lock()
        self._last_time: tuple[float, float] | None = None  # (outbox time, monotonic) of the last reading
        self.store_factory = store_factory
        self.notify = notify
        self.env_credential = env_credential
        self.env_public_key_file = env_public_key_file
        self.config = UploaderConfig()
        self.db = OutboxDB(str(self.paths.database), durability=self.config.outbox.durability)
        self.public_key: PublicKey | None = None
        self.counters: Counter[str] = Counter()
        self._count_lock = threading.Lock()
        self.recent_evictions: deque[dict[str, Any]] = deque(maxlen=20)
        self.recent_rejections: deque[dict[str, Any]] = deque(maxlen=20)
        self.storage = StorageLink(
            factory=store_factory, clock=clock, rng=self.rng, env_credential=env_credential
        )
        self._seal_lock = threading.Lock()
        self._notice_lock = threading.Lock()
        self._sealed_cache = _SealedCache()
        self._pending: list[_PendingAccept] = []
        self._pending_ids: set[str] = set()
        self._batching = False
        self._known_ids: set[str] = set()  # of the batch being accepted, already in the outbox
        self._held_base: int | None = None  # outbox bytes held, read once per batch (see _held)
        self._notices_due = threading.Event()
        self._lanes = Lanes()
        self._stopping = threading.Event()
        self.wake = threading.Event()

    # -- helpers ---------------------------------------------------------------------------
    @property
    def durable(self) -> bool:
        """Whether files and records must survive a power loss (``outbox.durability: full``)."""
        return self.config.outbox.durability == "full"

    @property
    def device_id(self) -> str:
        return self.config.device_id or self.default_device_id

    def _now(self) -> float:
        """Outbox time: the wall clock, except that it never runs backwards while the process
        lives. After the wall clock goes back (NTP after a cold boot, a bad RTC) it advances at
        the monotonic rate from where it was, so retry times and the oldest-first order hold."""
        with self._time_lock:
            wall, mono = self.clock.now().timestamp(), self.clock.monotonic()
            if self._last_time is not None:
                last, last_mono = self._last_time
                carried = last + max(0.0, mono - last_mono)
                if wall < carried:
                    if carried - wall > 1.0:
                        self._count("clock_went_back")
                    wall = carried
            self._last_time = (wall, mono)
            return wall

    def _budgeted_size(self, plain_bytes: int, item: SelectedSample, content_type: str) -> int:
        """What a sample will hold on disk once sealed (the envelope adds a header and a tag per
        chunk); the plaintext size while no public key is known yet."""
        if self.public_key is None:
            return plain_bytes
        context = EnvelopeContext(
            sample_id=item.sample_id, device_id=self.device_id, content_type=content_type
        )
        return sealed_size(
            plain_bytes,
            public_key=self.public_key,
            context=context,
            chunk_size=self.config.encryption.chunk_size,
        )

    def _count(self, name: str, amount: int = 1) -> None:
        with self._count_lock:
            self.counters[name] += amount
        observe.count(name, amount)

    def _random(self) -> float:
        with self._rng_lock:
            return self.rng.random()

    # -- configuration and credentials -----------------------------------------------------
    def configure(self, config: UploaderConfig, previous: UploaderConfig | None) -> None:
        """Apply a new config. Raises ``ConfigError`` (the old config stays) for a bad public key."""
        key = load_public_key(config, env_file=self.env_public_key_file)
        self.config = config
        self.db.set_durability(config.outbox.durability)
        if key is not None and (self.public_key is None or key.key_id != self.public_key.key_id):
            log.info("envelope public key %s in force", key.key_id)
        self.public_key = key
        self.storage.configure(config, changed=previous is None or previous.storage != config.storage)
        self.wake.set()

    def set_credentials(self, secret: str) -> dict[str, str]:
        """Replace the storage credential now (a new SAS after the old one expired).

        Raises:
            BlobAuthError: neither a SAS URL nor a connection string (the secret is not quoted).
        """
        described = self.storage.replace(secret)
        self.db.reset_backoff(self._now())
        self.wake.set()
        return described

    # -- accepting ---------------------------------------------------------------------------
    def _reject(self, sample_id: str, reason: str, category: str) -> None:
        self._count("rejected")
        self._count(f"rejected_{category}")
        self.recent_rejections.append(
            {"sample_id": sample_id, "reason": reason, "at": self.clock.now().isoformat()}
        )
        log.warning("sample %s not accepted: %s", sample_id, reason)

    def accept_selected(self, item: SelectedSample) -> bool:
        """Claim, budget, record and (if a key is known) seal one selected sample.

        Returns False when it is not taken (a duplicate, a missing or truncated file, no room).
        """
        with observe.claim_span(item) as stage:
            taken = self._accept_selected(item)
            stage.set("taken", taken)
        return taken

    def _accept_selected(self, item: SelectedSample) -> bool:
        if item.sample_id in self._pending_ids or (
            item.sample_id in self._known_ids if self._batching else self.db.get(item.sample_id) is not None
        ):
            self._count("duplicates")
            return False
        frame = item.prediction.frame
        key = self.public_key
        if key is not None and frame.file_ref is not None:
            return self._accept_sealing(item, frame.file_ref, key)
        try:
            plain, content_type, suffix = self._claim(item)
        except FileNotFoundError:
            self._reject(
                item.sample_id, f"sample file {frame.file_ref!r} is missing from the volume", "missing"
            )
            return False
        except OSError as exc:
            category = "disk_full" if exc.errno == errno.ENOSPC else "io"
            self._reject(item.sample_id, f"cannot claim {frame.file_ref!r}: {exc.strerror or exc}", category)
            return False
        size = plain.stat().st_size
        if frame.bytes is not None and size != frame.bytes:
            plain.unlink(missing_ok=True)
            self._reject(
                item.sample_id,
                f"sample file {frame.file_ref!r} has {size} bytes, capture wrote {frame.bytes} (truncated?)",
                "truncated",
            )
            return False
        now = self._now()
        budgeted = self._budgeted_size(size, item, content_type)
        if not self._make_room(budgeted, item.priority, now, item.sample_id):
            plain.unlink(missing_ok=True)
            return False
        name = self._blob_name(item, suffix)
        info = {"selected": item.to_wire(), "strategy": item.strategy, "traceparent": item.traceparent}
        try:
            self._insert_claimed(item, now, name, content_type, plain, size, info)
        except (sqlite3.OperationalError, OSError) as exc:
            plain.unlink(missing_ok=True)
            self._reject(item.sample_id, *_recording_failure(exc))
            return False
        self._held_base = None  # this thread added to the outbox: read it again
        if self._batching:
            self._known_ids.add(item.sample_id)
        self._count("accepted")
        self._seal_if_possible(item.sample_id)
        self.wake.set()
        return True

    def _insert_claimed(
        self,
        item: SelectedSample,
        now: float,
        name: SampleBlobName,
        content_type: str,
        plain: Path,
        size: int,
        info: dict[str, Any],
    ) -> None:
        with self.db.transaction(durable=True) as conn:
            self.db.insert(
                conn,
                id=item.sample_id,
                kind="sample",
                state=QUEUED,
                priority=item.priority,
                created_at=now,
                updated_at=now,
                blob_name=name.name,
                sidecar_name=name.sidecar,
                content_type=content_type,
                plain_path=str(plain),
                size=size,
                info=info,
            )

    def _blob_name(self, item: SelectedSample, suffix: str) -> SampleBlobName:
        return sample_blob_name(
            model=item.prediction.model_name,
            version=item.prediction.model_version,
            captured_at=item.prediction.frame.captured_at,
            device_id=self.device_id,
            sample_id=item.sample_id,
            suffix=suffix,
        )

    def _accept_sealing(self, item: SelectedSample, file_ref: str, key: PublicKey) -> bool:
        """With the key at hand the claim is the sealed copy itself: the volume's file is opened
        (an open file outlives the janitor's unlink) and sealed straight into the outbox."""
        frame = item.prediction.frame
        content_type = frame.content_type or mimetypes.guess_type(file_ref)[0] or "application/octet-stream"
        try:
            fin = open(self.paths.samples / file_ref, "rb")  # noqa: SIM115 - closed below
        except FileNotFoundError:
            self._reject(item.sample_id, f"sample file {file_ref!r} is missing from the volume", "missing")
            return False
        except OSError as exc:
            self._reject(item.sample_id, f"cannot open {file_ref!r}: {exc.strerror or exc}", "io")
            return False
        with fin:
            size = os.fstat(fin.fileno()).st_size
            if frame.bytes is not None and size != frame.bytes:
                reason = (
                    f"sample file {file_ref!r} has {size} bytes, capture wrote {frame.bytes} (truncated?)"
                )
                self._reject(item.sample_id, reason, "truncated")
                return False
            context = EnvelopeContext(item.sample_id, self.device_id, content_type)
            chunk = self.config.encryption.chunk_size
            expected_size = sealed_size(size, public_key=key, context=context, chunk_size=chunk)
            now = self._now()
            if not self._make_room(expected_size, item.priority, now, item.sample_id):
                return False
            try:
                with observe.encrypt_span():
                    target, result, data = self._seal_stream(fin, item.sample_id, content_type, key)
            except OSError as exc:
                category = "disk_full" if exc.errno == errno.ENOSPC else "io"
                self._reject(item.sample_id, f"cannot seal {file_ref!r}: {exc.strerror or exc}", category)
                return False
        name = self._blob_name(item, Path(file_ref).suffix)
        info = {"selected": item.to_wire(), "strategy": item.strategy, "traceparent": item.traceparent}
        row = {
            "id": item.sample_id,
            "kind": "sample",
            "state": QUEUED,
            "priority": item.priority,
            "created_at": now,
            "updated_at": now,
            "blob_name": name.name,
            "sidecar_name": name.sidecar,
            "content_type": content_type,
            **self._sealed_fields(target, result, info),
        }
        self._pending.append(_PendingAccept(row=row, data=data, info=info, result=result))
        self._pending_ids.add(item.sample_id)
        if not self._batching:
            self._commit_pending()
        return True

    def accept_selected_batch(self, items: list[SelectedSample]) -> int:
        """Accept several samples with one durable commit (a message from the filter holds a batch).
        When this returns, every sample it counts is on disk, sealed and recorded."""
        self._batching = True
        self._known_ids = self.db.existing_ids([item.sample_id for item in items])
        try:
            taken = sum(1 for item in items if self.accept_selected(item))
        finally:
            self._batching = False
            self._known_ids, self._held_base = set(), None
            self._commit_pending()
        return taken

    def _commit_pending(self) -> None:
        pending, self._pending = self._pending, []
        self._pending_ids = set()
        if not pending:
            return
        try:
            with self.db.transaction(durable=True) as conn:
                for accept in pending:
                    self._store_sealed(conn, accept.row["id"], accept.data)
                    self.db.insert(conn, **accept.row)
        except (sqlite3.OperationalError, OSError) as exc:
            reason, category = _recording_failure(exc)
            for accept in pending:  # nothing of the batch is recorded: none of it was accepted
                entry_id = accept.row["id"]
                self._sealed_cache.pop(entry_id)
                if accept.row.get("sealed_path") not in (None, IN_DATABASE):
                    Path(accept.row["sealed_path"]).unlink(missing_ok=True)
                self._reject(entry_id, reason, category)
            return
        for accept in pending:
            if accept.data is not None:
                self._sealed_cache.put(accept.row["id"], accept.data)
            self._count("accepted")
            self._count("claimed_by_seal")
            self._count("sealed")
            self._check_digest(accept.row["id"], accept.info, accept.result)
        self.wake.set()

    def _claim(self, item: SelectedSample) -> tuple[Path, str, str]:
        frame = item.prediction.frame
        if frame.file_ref is None:
            target = self.paths.claims / f"{item.sample_id}.json"
            body = {"sample_id": item.sample_id, "vector": frame.vector, "attributes": frame.attributes}
            write_durably(
                target, json.dumps(body, separators=(",", ":")).encode("utf-8"), durable=self.durable
            )
            if self.durable:
                fsync_dir(target.parent)
            return target, "application/json", ".json"
        suffix = Path(frame.file_ref).suffix
        target = self.paths.claims / f"{item.sample_id}{suffix}"
        how = claim_file(self.paths.samples / frame.file_ref, target, durable=self.durable)
        self._count(f"claimed_by_{how}")
        content_type = (
            frame.content_type or mimetypes.guess_type(frame.file_ref)[0] or "application/octet-stream"
        )
        return target, content_type, suffix

    def _held(self, *, exact: bool) -> int:
        """Bytes the outbox holds, with the samples waiting for their batch's commit. Within a
        batch the database is read once: only uploads (which shrink it) run beside the runtime
        thread that accepts, so that reading stays an upper bound until this thread inserts."""
        if exact or not self._batching or self._held_base is None:
            self._held_base = self.db.held_bytes()
        return self._held_base + sum(p.row["size"] for p in self._pending)

    def _make_room(self, size: int, priority: int, created: float, new_id: str) -> bool:
        pending = sum(p.row["size"] for p in self._pending)
        if not self._room_on_disk(size + pending, new_id):
            return False
        budget = self.config.outbox.max_bytes
        held = self._held(exact=False)
        if held + size <= budget:
            return True
        held = self._held(exact=True)  # uploads may have made room since the batch began
        if held + size <= budget:
            return True
        if size <= budget:
            for victim in self.db.eviction_candidates():
                if (victim.priority, victim.created_at) > (priority, created):
                    break
                self._evict(victim, f"disk budget {budget} bytes: made room for {new_id}")
                held -= victim.size
                if held + size <= budget:
                    return True
        self._count("evicted")
        self._count("evicted_bytes", size)
        reason = f"disk budget {budget} bytes: no queued entry ranks lower (priority {priority})"
        self.recent_evictions.append(
            {"id": new_id, "reason": reason, "bytes": size, "at": self.clock.now().isoformat()}
        )
        log.warning("evicted %s on arrival: %s", new_id, reason)
        return False

    def _room_on_disk(self, size: int, new_id: str) -> bool:
        """Refuse a sample the outbox's volume cannot hold while keeping its reserve free: the
        database needs room to record uploads, or a disk filled by the outbox would never drain.
        The reserve is ``outbox.min_free_bytes``, at most a tenth of the volume."""
        try:
            volume = os.statvfs(self.paths.outbox)
        except OSError:
            return True  # nothing to go by: the writes themselves will tell
        free = volume.f_bavail * volume.f_frsize + self.db.reusable_bytes()
        reserve = min(self.config.outbox.min_free_bytes, volume.f_blocks * volume.f_frsize // 10)
        if free - size >= reserve:
            return True
        reason = (
            f"the outbox disk is full: {free} bytes free (with the database's free pages), "
            f"{size} needed, and outbox.min_free_bytes keeps {reserve} free for the outbox's own records"
        )
        self._reject(new_id, reason, "disk_full")
        return False

    def _evict(self, entry: Entry, reason: str) -> None:
        if not self.db.finish(entry.id, state=EVICTED, now=self._now(), reason=reason):
            return
        self._sealed_cache.pop(entry.id)
        _remove_files(entry)
        self._count("evicted")
        self._count("evicted_bytes", entry.size)
        self.recent_evictions.append(
            {"id": entry.id, "reason": reason, "bytes": entry.size, "priority": entry.priority,
             "at": self.clock.now().isoformat()}
        )  # fmt: skip
        log.warning("evicted %s (%s bytes, priority %s): %s", entry.id, entry.size, entry.priority, reason)

    # -- sealing -----------------------------------------------------------------------------
    def seal_pending(self) -> int:
        """Seal entries that waited for a public key (or were cut off by a crash)."""
        if self.public_key is None:
            return 0
        return sum(1 for entry in self.db.unsealed() if self._seal_if_possible(entry.id))

    def _seal_if_possible(self, entry_id: str) -> bool:
        key = self.public_key
        if key is None:
            self._count("waiting_for_key")
            return False
        with self._seal_lock:
            entry = self.db.get(entry_id)
            if entry is None or entry.sealed or entry.state != QUEUED or entry.plain_path is None:
                return False
            try:
                self._seal(entry, key)
            except FileNotFoundError:
                self._quarantine(entry, "claimed file vanished from the outbox before sealing")
                return False
            except OSError as exc:
                self._count("seal_errors")
                log.error("cannot seal %s: %s", entry_id, exc)
                return False
            return True

    def _seal_stream(
        self, fin: BinaryIO, entry_id: str, content_type: str, key: PublicKey
    ) -> tuple[str, SealResult, bytes | None]:
        """Seal ``fin``: small samples in memory (returned, for the database and the upload cache),
        large ones streamed to ``outbox/sealed/<id>.elenv``. Returns (sealed_path, facts, bytes)."""
        context = EnvelopeContext(sample_id=entry_id, device_id=self.device_id, content_type=content_type)
        chunk_size = self.config.encryption.chunk_size
        size = os.fstat(fin.fileno()).st_size
        target = self.paths.sealed / f"{entry_id}.elenv"
        if size <= _IN_MEMORY_BYTES:
            buffer = io.BytesIO()
            result = seal(fin, buffer, public_key=key, context=context, chunk_size=chunk_size)
            data = buffer.getvalue()
            if size <= _IN_DATABASE_BYTES:
                return IN_DATABASE, result, data
            write_durably(target, data, durable=self.durable)
            self._sealed_cache.put(entry_id, data)
            return str(target), result, None
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with open(tmp, "wb") as fout:
                result = seal(fin, fout, public_key=key, context=context, chunk_size=chunk_size)
                fout.flush()
                if self.durable:
                    os.fsync(fout.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return str(target), result, None

    def _store_sealed(self, conn: Any, entry_id: str, data: bytes | None) -> None:
        if data is not None:
            conn.execute("INSERT OR REPLACE INTO sealed_data (id, data) VALUES (?, ?)", (entry_id, data))

    def _sealed_fields(self, target: str, result: SealResult, info: dict[str, Any]) -> dict[str, Any]:
        return {
            "sealed_path": target,
            "plain_path": None,
            "size": result.ciphertext_bytes,
            "key_id": result.key_id,
            "plaintext_sha256": result.plaintext_sha256,
            "ciphertext_sha256": result.ciphertext_sha256,
            "info": {**info, "device_id": self.device_id, "plaintext_bytes": result.plaintext_bytes},
        }

    def _check_digest(self, entry_id: str, info: dict[str, Any], result: SealResult) -> None:
        expected = (info.get("selected") or {}).get("prediction", {}).get("frame", {}).get("sha256")
        if expected and expected != result.plaintext_sha256:
            entry = self.db.get(entry_id)
            if entry is not None:
                reason = f"content sha256 {result.plaintext_sha256} differs from capture's {expected}"
                self._quarantine(entry, reason)

    def _seal(self, entry: Entry, key: PublicKey) -> None:
        plain = Path(entry.plain_path or "")
        with open(plain, "rb") as fin, observe.encrypt_span(entry.info.get("traceparent")):
            target, result, data = self._seal_stream(fin, entry.id, entry.content_type, key)
        fields = self._sealed_fields(target, result, entry.info)
        with self.db.transaction(durable=True) as conn:
            self._store_sealed(conn, entry.id, data)
            self.db.update_in(conn, entry.id, updated_at=self._now(), **fields)
        if data is not None:
            self._sealed_cache.put(entry.id, data)
        plain.unlink(missing_ok=True)
        self._count("sealed")
        self._check_digest(entry.id, entry.info, result)

    # -- prediction log --------------------------------------------------------------------
    def accept_predictions(self, items: list[Prediction]) -> int:
        settings = self.config.prediction_log
        if not settings.enabled or not items:
            return 0
        now = self._now()
        rows = []
        for prediction in items:
            if self._random() >= settings.sample_rate:
                self._count("predictions_not_sampled")
                continue
            when = prediction.scored_at or prediction.frame.captured_at
            record = predlog.log_record(prediction, include_scores=settings.include_scores)
            line = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
            rows.append((predlog.hour_key(when.astimezone(UTC)), prediction.sample_id, now, line))
        if rows:
            self.db.add_predictions(rows)
            self._count("predictions_logged", len(rows))
        return len(rows)

    def flush_prediction_log(self, *, force: bool = False) -> int:
        """Cut batches that are full or old enough (all of them with ``force``); returns how many."""
        settings = self.config.prediction_log
        now, cut = self._now(), 0
        for hour, count, oldest in self.db.pending_hours():
            while count > 0 and (force or count >= settings.max_batch or now - oldest >= settings.max_age_s):
                taken = self._cut_batch(hour, settings.max_batch, settings.priority)
                if taken == 0:
                    break
                count -= taken
                cut += 1
        return cut

    def _cut_batch(self, hour: str, limit: int, priority: int) -> int:
        rows = self.db.pending_lines(hour, limit)
        if not rows:
            return 0
        seqs = [r[0] for r in rows]
        sample_ids = [r[1] for r in rows]
        data = predlog.batch_bytes([r[2] for r in rows], self.db.selection_of(sample_ids), sample_ids)
        batch_id = f"{hour.replace('-', '').replace('T', '')}-{seqs[0]:012d}"
        hour_start = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        target = self.paths.claims / f"{batch_id}.jsonl.gz"
        now = self._now()
        write_durably(target, data, durable=self.durable)
        if not self._make_room(len(data), priority, now, batch_id):
            target.unlink(missing_ok=True)
            self._delete_pending(seqs)
            return len(rows)
        with self.db.transaction() as conn:
            self.db.insert(
                conn,
                id=batch_id,
                kind="predlog",
                state=QUEUED,
                priority=priority,
                created_at=now,
                updated_at=now,
                blob_name=prediction_log_blob_name(
                    device_id=self.device_id, hour=hour_start, batch_id=batch_id
                ),
                sidecar_name=None,
                content_type="application/x-ndjson+gzip",
                plain_path=str(target),
                size=len(data),
                info={"strategy": "prediction-log", "lines": len(rows), "hour": hour},
            )
            conn.executemany("DELETE FROM predlog_pending WHERE seq = ?", [(s,) for s in seqs])
        self._count("prediction_batches")
        self._seal_if_possible(batch_id)
        self.wake.set()
        return len(rows)

    def _delete_pending(self, seqs: list[int]) -> None:
        with self.db.transaction() as conn:
            conn.executemany("DELETE FROM predlog_pending WHERE seq = ?", [(s,) for s in seqs])

    # -- uploading -------------------------------------------------------------------------
    def upload_ready(self) -> int:
        """Upload a few of the most urgent ready entries: claimed in one transaction, two
        samples in flight at a time (one's sidecar beside the next one's envelope), recorded
        done in one transaction. Returns how many were taken; 0 when nothing was ready (or
        there is no usable store)."""
        store = self.storage.ready()
        if store is None or self._stopping.is_set():
            return 0
        entries = self.db.claim_ready(self._now(), limit=_UPLOAD_BATCH, share=self.config.outbox.workers)
        if entries:
            self._settle(self._ship_batch(store, entries))
        return len(entries)

    def stop_uploads(self) -> None:
        """Start no more uploads (a stop is under way): batches end after what is in flight."""
        self._stopping.set()
        self.wake.set()

    def _ship_batch(self, store: BlobContainer, entries: list[Entry]) -> list[tuple[Entry, object]]:
        """Each entry with its outcome: None (uploaded), the exception, or ``_NOT_TRIED``."""
        jobs: list[tuple[Entry, Future[None]]] = []
        store_failed = threading.Event()
        envelope_sent: threading.Event | None = None
        for entry in entries:
            if envelope_sent is not None:
                envelope_sent.wait()  # a sample's envelope is out before the next one's starts
            if len(jobs) >= _IN_FLIGHT:
                wait([jobs[-_IN_FLIGHT][1]])
            if store_failed.is_set() or self._stopping.is_set():
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
            self._ship(store, entry, envelope_sent.set)
        except _STORE_ERRORS:
            store_failed.set()
            raise
        finally:
            envelope_sent.set()

    def _settle(self, outcomes: list[tuple[Entry, object]]) -> None:
        """Record what a batch came to. A crash-like exception (not an ``Exception``) is raised
        before anything is recorded: the whole batch is then redelivered after a restart."""
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
                self.db.update(entry.id, expect_state=UPLOADING, state=QUEUED, updated_at=self._now())
            elif isinstance(outcome, (CorruptEntryError, blobs.ConflictError)):
                self._quarantine(entry, str(outcome))
            elif isinstance(outcome, _STORE_ERRORS):  # the storage failed, not this entry
                self.db.update(entry.id, expect_state=UPLOADING, state=QUEUED, updated_at=self._now())
                self._count("store_errors")
                store_error = store_error or outcome
            elif isinstance(outcome, Exception):
                self._failed_attempt(entry, outcome)
        if store_error is not None:
            self.storage.failed(store_error)

    def _read_sealed(self, entry: Entry) -> bytes:
        cached = self._sealed_cache.pop(entry.id)
        if cached is not None:
            return cached
        if entry.sealed_path == IN_DATABASE:
            stored = self.db.sealed_bytes(entry.id)
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

    def _ship(
        self, store: BlobContainer, entry: Entry, envelope_written: Callable[[], None] | None = None
    ) -> None:
        """Write an entry's envelope, then its sidecar (``envelope_written`` is called between)."""
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
        data = self._read_sealed(entry)
        metadata = blobs.envelope_metadata(entry, self.device_id)
        if traceparent:  # the cloud continues the trace from the upload
            metadata["traceparent"] = traceparent
        self._count_put(blobs.put_once(store, entry.blob_name, data, metadata, blobs.SEALED_CONTENT_TYPE))
        if envelope_written is not None:
            envelope_written()
        if entry.sidecar_name and self.config.storage.sidecar:  # after the envelope: a sidecar
            sidecar = blobs.sidecar_bytes(entry, self.device_id)  # present means its sample is complete
            side_meta = blobs.sidecar_metadata(sidecar)
            self._count_put(blobs.put_once(store, entry.sidecar_name, sidecar, side_meta, "application/json"))
        self._count("uploaded_bytes", len(data))

    def _count_put(self, outcome: str) -> None:
        self._count("blobs_written" if outcome == "written" else outcome)

    def _done(self, entries: list[Entry]) -> None:
        """Record a batch's uploads in one commit, then remove their files and send the notices."""
        self.db.finish_all([entry.id for entry in entries], state=DONE, now=self._now())
        for entry in entries:
            _remove_files(entry)
        self._count("uploaded", len(entries))
        for kind, count in Counter(entry.kind for entry in entries).items():
            self._count(f"uploaded_{kind}", count)
        self.send_notices()

    def _failed_attempt(self, entry: Entry, exc: Exception) -> None:
        attempts = entry.attempts + 1
        reason = f"{exc.__class__.__name__}: {exc}"
        self._count("attempt_errors")
        if attempts >= self.config.retry.max_attempts:
            self.db.update(entry.id, attempts=attempts)
            self._quarantine(
                Entry(**{**entry.__dict__, "attempts": attempts}),
                f"{attempts} attempts failed; last: {reason}",
            )
            return
        delay = backoff_delay(attempts, self.config.retry, self.rng)
        self.db.update(
            entry.id,
            expect_state=UPLOADING,
            state=QUEUED,
            attempts=attempts,
            next_attempt_at=self._now() + delay,
            last_error=reason,
            updated_at=self._now(),
        )
        log.warning("upload of %s failed (attempt %s, retry in %.1fs): %s", entry.id, attempts, delay, reason)

    def _quarantine(self, entry: Entry, reason: str) -> None:
        self.db.update(entry.id, state=QUARANTINED, last_error=reason, updated_at=self._now())
        self._count("quarantined")
        log.error("quarantined %s: %s", entry.id, reason)

    def send_notices(self) -> int:
        """Send ``uploaded`` notices not yet sent (the hub may have been away); returns how many
        this call sent. One sender at a time, so no notice goes twice; a caller that finds
        another one sending leaves its notices to it (the sender looks again before it stops)."""
        if self.notify is None:
            return 0
        self._notices_due.set()
        sent = 0
        while self._notices_due.is_set() and self._notice_lock.acquire(blocking=False):
            try:
                while self._notices_due.is_set():
                    self._notices_due.clear()
                    sent += self._send_unnotified(self.notify)
            finally:
                self._notice_lock.release()
        return sent

    def _send_unnotified(self, notify: Notify) -> int:
        pending = self.db.unnotified()
        if not pending:
            return 0
        notices = [self._notice(entry) for entry in pending]
        try:
            notify(notices)
        except Exception as exc:
            self._count("notice_errors")
            log.warning("uploaded notices not sent yet (%s); will retry", exc)
            return 0
        self.db.mark_notified([entry.id for entry in pending])
        self._count("notices_sent", len(notices))
        return len(notices)

    def _notice(self, entry: Entry) -> UploadedNotice:
        return UploadedNotice(
            sample_id=entry.id,
            blob_name=entry.blob_name,
            bytes=entry.size,
            plaintext_sha256=entry.plaintext_sha256,
            key_id=entry.key_id,
            strategy=entry.info.get("strategy"),
            uploaded_at=datetime.fromtimestamp(entry.updated_at, UTC),
            traceparent=entry.info.get("traceparent"),
        )

    # -- start-up, upkeep, methods ---------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """After a restart: entries cut off mid-upload go back to the queue, unsealed ones are
        sealed, files no entry refers to (a crash between write and record) are removed."""
        now = self._now()
        requeued = self.db.requeue_interrupted(now)
        clamped = self.db.clamp_backoff(now, now + self.config.retry.max_backoff_s)
        if clamped:
            log.warning("%s retries were scheduled beyond the longest backoff (the clock went back)", clamped)
        for entry in self.db.unsealed():
            if entry.plain_path and not Path(entry.plain_path).exists():
                self._quarantine(entry, "claimed file lost before sealing")
        removed = self.db.drop_orphan_data()
        referenced = self.db.referenced_paths()
        for folder in (self.paths.claims, self.paths.sealed):
            for path in folder.iterdir():
                if str(path) not in referenced:
                    path.unlink(missing_ok=True)
                    removed += 1
        sealed = self.seal_pending()
        if requeued or removed:
            log.info("outbox recovered: %s uploads resumed, %s stray files removed", requeued, removed)
        return {"requeued": requeued, "stray_files": removed, "sealed": sealed}

    def upkeep(self) -> None:
        """Periodic work: load a key that appeared, seal, cut prediction-log batches, notices, pruning."""
        if self.public_key is None:
            try:
                self.public_key = load_public_key(self.config, env_file=self.env_public_key_file)
            except Exception as exc:
                log.error("envelope public key unusable: %s", exc)
        storage = self.config.storage
        if self.storage.missing and (
            storage.credentials_file or storage.credential_env or self.env_credential
        ):
            self.storage.refresh()
        self.seal_pending()
        self.flush_prediction_log()
        self.send_notices()
        pruned = self.db.prune_done(self._now() - self.config.outbox.keep_done_s)
        if pruned:
            self._count("pruned", pruned)

    def retry_quarantined(self, ids: list[str] | None) -> int:
        count = self.db.retry_quarantined(ids, self._now())
        self.seal_pending()
        self.wake.set()
        return count

    def flush(self) -> None:
        """Cut every pending prediction-log batch and retry every queued entry now."""
        self.flush_prediction_log(force=True)
        self.db.reset_backoff(self._now())
        self.storage.retry_now()
        self.wake.set()

    def queue_info(self) -> dict[str, Any]:
        counts = self.db.counts()
        oldest = self.db.oldest_waiting()
        return {
            "depth": counts[QUEUED] + counts[UPLOADING],
            "states": counts,
            "oldest_age_s": round(self._now() - oldest.created_at, 3) if oldest else None,
            "oldest_id": oldest.id if oldest else None,
            "bytes": self.db.held_bytes(),
            "budget_bytes": self.config.outbox.max_bytes,
            "unsealed": len(self.db.unsealed()),
            "predictions_pending": self.db.pending_count(),
            "quarantined": [
                {"id": e.id, "reason": e.last_error, "attempts": e.attempts}
                for e in self.db.by_state(QUARANTINED)[:20]
            ],
            "storage": self.storage_status(),
        }

    def storage_status(self) -> dict[str, Any]:
        return self.storage.status()

    def warnings(self) -> list[str]:
        """Storage problems, and samples waiting unsealed for want of a public key."""
        found = self.storage.problems()
        if self.public_key is None:
            found.append(
                "no envelope public key (encryption.public_key_pem, encryption.public_key_file or "
                "EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE): samples wait unsealed"
            )
        return found

    def stats(self) -> dict[str, Any]:
        with self._count_lock:
            counters = dict(self.counters)
        return {
            "counters": counters,
            "queue": {k: v for k, v in self.queue_info().items() if k != "quarantined"},
            "key_id": self.public_key.key_id if self.public_key else None,
            "recent_evictions": list(self.recent_evictions),
            "recent_rejections": list(self.recent_rejections),
        }

    def close(self) -> None:
        self._stopping.set()
        self._lanes.close()
        self.db.close()


def _recording_failure(exc: Exception) -> tuple[str, str]:
    """(reason, category) for a failure to record samples in the outbox's database."""
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "full" in str(exc)
    if full:
        return f"the outbox disk is full, the sample cannot be recorded ({exc})", "disk_full"
    return f"the outbox cannot record the sample: {exc}", "io"
