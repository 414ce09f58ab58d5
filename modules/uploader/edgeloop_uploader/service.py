"""The uploader's work, apart from the hub: accept, claim, seal, budget, upload, report.

``Uploader`` is driven by the module (inputs, ticks, methods on the runtime thread; uploads on
worker threads) and by tests directly with a ``FakeClock`` and a ``MemoryBlobStore``.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import mimetypes
import os
import random
import threading
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from edgeloop.blobstore import (
    AzureBlobStore,
    BlobAuthError,
    BlobExistsError,
    BlobNotFoundError,
    BlobStore,
    BlobStoreError,
    BlobUnavailableError,
    prediction_log_blob_name,
    sample_blob_name,
)
from edgeloop.clock import Clock
from edgeloop.contracts import Prediction, SelectedSample, UploadedNotice
from edgeloop.envelope import VERSION as ENVELOPE_VERSION
from edgeloop.envelope import EnvelopeContext, PublicKey, seal, sealed_size
from edgeloop_uploader import predlog
from edgeloop_uploader.backoff import backoff_delay
from edgeloop_uploader.claim import claim_file, fsync_dir, write_durably
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.outbox import DONE, EVICTED, QUARANTINED, QUEUED, UPLOADING, Entry, OutboxDB
from edgeloop_uploader.sources import Credential, load_public_key, resolve_credential

log = logging.getLogger(__name__)

SEALED_CONTENT_TYPE = "application/vnd.edgeloop.envelope"
SIDECAR_SCHEMA = "edgeloop.sample-sidecar/1"
StoreFactory = Callable[[Credential, UploaderConfig], BlobStore]
Notify = Callable[[list[UploadedNotice]], None]


def azure_store_factory(credential: Credential, config: UploaderConfig) -> BlobStore:
    return AzureBlobStore.from_credential(
        credential.secret, container=config.storage.container, read_timeout=config.storage.timeout_s
    )


class CorruptEntryError(Exception):
    """An outbox entry's own file is missing or damaged: retrying cannot help."""


class ConflictError(Exception):
    """A different blob already sits at the entry's deterministic name."""


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


def _ascii(value: Any) -> str:
    return "".join(ch if 32 <= ord(ch) < 127 else "_" for ch in str(value))[:1024]


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
        self._store_lock = threading.Lock()
        self._store: BlobStore | None = None
        self._credential: Credential | None = None
        self._override: Credential | None = None
        self._store_failures = 0
        self._store_retry_at = 0.0
        self.store_error: str | None = None
        self._seal_lock = threading.Lock()
        # Upload workers and the runtime thread all send notices: one at a time, or two of them
        # read the same unnotified entries and announce a sample twice.
        self._notice_lock = threading.Lock()
        self.wake = threading.Event()

    # -- helpers ---------------------------------------------------------------------------
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

    def _random(self) -> float:
        with self._rng_lock:
            return self.rng.random()

    # -- configuration and credentials -----------------------------------------------------
    def configure(self, config: UploaderConfig, previous: UploaderConfig | None) -> None:
        """Apply a new config. Raises ``ConfigError`` (the old config stays) for a bad public key."""
        key = load_public_key(config, env_file=self.env_public_key_file)
        if previous is not None and previous.storage != config.storage:
            self._override = None  # a twin change of credentials replaces a setCredentials one
        self.config = config
        self.db.set_durability(config.outbox.durability)
        if key is not None and (self.public_key is None or key.key_id != self.public_key.key_id):
            log.info("envelope public key %s in force", key.key_id)
        self.public_key = key
        self._refresh_store(force=previous is None or previous.storage != config.storage)
        self.wake.set()

    def set_credentials(self, secret: str) -> dict[str, str]:
        """Replace the storage credential now (a new SAS after the old one expired)."""
        credential = Credential(secret.strip(), "method:setCredentials")
        store = self.store_factory(credential, self.config)  # raises BlobAuthError for a malformed one
        with self._store_lock:
            self._override = credential
            self._install(store, credential)
        self.db.reset_backoff(self._now())
        log.info("storage credentials replaced (%s)", credential.kind)
        self.wake.set()
        return credential.describe()

    def _refresh_store(self, *, force: bool = False) -> None:
        credential = resolve_credential(self.config, override=self._override, env_value=self.env_credential)
        with self._store_lock:
            if credential is None:
                self._store, self._credential = None, None
                self.store_error = (
                    "no storage credentials (twin storage.*, a credentials file or the environment)"
                )
                return
            if not force and self._credential is not None and credential.secret == self._credential.secret:
                return
            try:
                store = self.store_factory(credential, self.config)
            except BlobStoreError as exc:
                self._store, self._credential = None, credential
                self.store_error = f"storage credential from {credential.source} refused: {exc}"
                log.error("%s", self.store_error)
                return
            self._install(store, credential)

    def _install(self, store: BlobStore, credential: Credential) -> None:
        self._store, self._credential = store, credential
        self._store_failures, self._store_retry_at, self.store_error = 0, 0.0, None
        log.info("storage: %s from %s, container %s", credential.kind, credential.source, store.container)
        if self.config.storage.create_container and credential.kind == "connection_string":
            try:
                store.ensure_container()
            except BlobStoreError as exc:
                log.warning("could not create container %s: %s", store.container, exc)

    def _store_for_upload(self) -> BlobStore | None:
        with self._store_lock:
            if self._store is None or self.clock.monotonic() < self._store_retry_at:
                return None
            return self._store

    def _store_failed(self, exc: BlobStoreError) -> None:
        with self._store_lock:
            self._store_failures += 1
            delay = backoff_delay(self._store_failures, self.config.retry, self.rng)
            self._store_retry_at = self.clock.monotonic() + delay
            self.store_error = str(exc)
        self._count("store_errors")
        log.warning("storage failing (%s); next try in %.1fs", exc, delay)
        if isinstance(exc, BlobAuthError) and self._override is None:
            self._refresh_store()  # a rotated secret file or environment is picked up here

    def _store_ok(self) -> None:
        if self._store_failures:
            with self._store_lock:
                self._store_failures, self.store_error = 0, None
            log.info("storage reachable again")

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
        if self.db.get(item.sample_id) is not None:
            self._count("duplicates")
            return False
        frame = item.prediction.frame
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
        name = sample_blob_name(
            model=item.prediction.model_name,
            version=item.prediction.model_version,
            captured_at=frame.captured_at,
            device_id=self.device_id,
            sample_id=item.sample_id,
            suffix=suffix,
        )
        info = {"selected": item.to_wire(), "strategy": item.strategy, "traceparent": item.traceparent}
        with self.db.transaction() as conn:
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
        self._count("accepted")
        self._seal_if_possible(item.sample_id)
        self.wake.set()
        return True

    def _claim(self, item: SelectedSample) -> tuple[Path, str, str]:
        frame = item.prediction.frame
        if frame.file_ref is None:
            target = self.paths.claims / f"{item.sample_id}.json"
            body = {"sample_id": item.sample_id, "vector": frame.vector, "attributes": frame.attributes}
            write_durably(target, json.dumps(body, separators=(",", ":")).encode("utf-8"))
            fsync_dir(target.parent)
            return target, "application/json", ".json"
        suffix = Path(frame.file_ref).suffix
        target = self.paths.claims / f"{item.sample_id}{suffix}"
        how = claim_file(self.paths.samples / frame.file_ref, target)
        self._count(f"claimed_by_{how}")
        content_type = (
            frame.content_type or mimetypes.guess_type(frame.file_ref)[0] or "application/octet-stream"
        )
        return target, content_type, suffix

    def _make_room(self, size: int, priority: int, created: float, new_id: str) -> bool:
        budget = self.config.outbox.max_bytes
        held = self.db.held_bytes()
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

    def _evict(self, entry: Entry, reason: str) -> None:
        if not self.db.update(entry.id, expect_state=entry.state, state=EVICTED, last_error=reason, size=0,
                              updated_at=self._now()):  # fmt: skip
            return
        for path in (entry.plain_path, entry.sealed_path):
            if path:
                Path(path).unlink(missing_ok=True)
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

    def _seal(self, entry: Entry, key: PublicKey) -> None:
        plain = Path(entry.plain_path or "")
        target = self.paths.sealed / f"{entry.id}.elenv"
        tmp = target.with_name(f".{target.name}.tmp")
        context = EnvelopeContext(
            sample_id=entry.id, device_id=self.device_id, content_type=entry.content_type
        )
        try:
            with open(plain, "rb") as fin, open(tmp, "wb") as fout:
                result = seal(
                    fin, fout, public_key=key, context=context, chunk_size=self.config.encryption.chunk_size
                )
                fout.flush()
                os.fsync(fout.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        info = dict(entry.info)
        info["device_id"] = self.device_id
        info["plaintext_bytes"] = result.plaintext_bytes
        expected = (info.get("selected") or {}).get("prediction", {}).get("frame", {}).get("sha256")
        self.db.update(
            entry.id,
            sealed_path=str(target),
            plain_path=None,
            size=result.ciphertext_bytes,
            key_id=result.key_id,
            plaintext_sha256=result.plaintext_sha256,
            ciphertext_sha256=result.ciphertext_sha256,
            info=info,
            updated_at=self._now(),
        )
        plain.unlink(missing_ok=True)
        self._count("sealed")
        if expected and expected != result.plaintext_sha256:
            sealed = self.db.get(entry.id)
            if sealed is not None:
                self._quarantine(
                    sealed, f"content sha256 {result.plaintext_sha256} differs from capture's {expected}"
                )

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
        write_durably(target, data)
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
    def upload_one(self) -> bool:
        """Upload the most urgent ready entry; False when there was nothing to do (or no store)."""
        store = self._store_for_upload()
        if store is None:
            return False
        entry = self.db.claim_next(self._now())
        if entry is None:
            return False
        try:
            self._ship(store, entry)
        except CorruptEntryError as exc:
            self._quarantine(entry, str(exc))
        except ConflictError as exc:
            self._quarantine(entry, str(exc))
        except (BlobUnavailableError, BlobAuthError) as exc:
            self.db.update(entry.id, expect_state=UPLOADING, state=QUEUED, updated_at=self._now())
            self._store_failed(exc)
        except BlobNotFoundError as exc:  # the container is missing: not this entry's fault
            self.db.update(entry.id, expect_state=UPLOADING, state=QUEUED, updated_at=self._now())
            self._store_failed(exc)
        except Exception as exc:
            self._failed_attempt(entry, exc)
        else:
            self._store_ok()
            self._done(entry)
        return True

    def _read_sealed(self, entry: Entry) -> bytes:
        try:
            data = Path(entry.sealed_path or "").read_bytes()
        except OSError as exc:
            raise CorruptEntryError(f"sealed file unreadable: {exc.strerror or exc}") from exc
        if hashlib.sha256(data).hexdigest() != entry.ciphertext_sha256:
            raise CorruptEntryError("sealed file damaged on disk (sha256 differs from when it was sealed)")
        return data

    def _metadata(self, entry: Entry) -> dict[str, str]:
        selected = entry.info.get("selected") or {}
        prediction = selected.get("prediction") or {}
        fields = {
            "sample_id": entry.id,
            "kind": entry.kind,
            "device_id": entry.info.get("device_id", self.device_id),
            "key_id": entry.key_id,
            "envelope": f"ELENV/{ENVELOPE_VERSION}",
            "content_type": entry.content_type,
            "plaintext_sha256": entry.plaintext_sha256,
            "blob_sha256": entry.ciphertext_sha256,
            "strategy": entry.info.get("strategy"),
            "model": prediction.get("model_name"),
            "model_version": prediction.get("model_version"),
            "label": prediction.get("label"),
            "traceparent": entry.info.get("traceparent"),
        }
        return {k: _ascii(v) for k, v in fields.items() if v is not None}

    def _sidecar(self, entry: Entry) -> bytes:
        selected = entry.info.get("selected") or {}
        doc = {
            "schema": SIDECAR_SCHEMA,
            "sample_id": entry.id,
            "device_id": entry.info.get("device_id", self.device_id),
            "blob_name": entry.blob_name,
            "content_type": entry.content_type,
            "envelope_version": ENVELOPE_VERSION,
            "key_id": entry.key_id,
            "plaintext_sha256": entry.plaintext_sha256,
            "plaintext_bytes": entry.info.get("plaintext_bytes"),
            "ciphertext_sha256": entry.ciphertext_sha256,
            "strategy": selected.get("strategy"),
            "reason": selected.get("reason"),
            "tags": selected.get("tags", []),
            "priority": selected.get("priority", entry.priority),
            "selected_at": selected.get("selected_at"),
            "traceparent": selected.get("traceparent"),
            "prediction": selected.get("prediction"),
        }
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")

    def _put_once(
        self, store: BlobStore, name: str, data: bytes, metadata: dict[str, str], content_type: str
    ) -> None:
        """Create-only write; an identical blob already there (an earlier try) counts as success."""
        try:
            store.put(name, data, length=len(data), metadata=metadata, content_type=content_type)
            return
        except BlobExistsError:
            pass
        try:
            existing = store.info(name)
        except BlobAuthError:
            # A create-only SAS cannot read: the deterministic name is this entry's own earlier try.
            self._count("already_present_unverified")
            log.info("%s already exists (credential cannot read it back); taken as an earlier try", name)
            return
        if existing.metadata.get("blob_sha256") == metadata["blob_sha256"] and existing.size == len(data):
            self._count("already_present")
            return
        raise ConflictError(f"a different blob already exists at {name!r}; not overwritten")

    def _ship(self, store: BlobStore, entry: Entry) -> None:
        data = self._read_sealed(entry)
        metadata = self._metadata(entry)
        self._put_once(store, entry.blob_name, data, metadata, SEALED_CONTENT_TYPE)
        if entry.sidecar_name:
            sidecar = self._sidecar(entry)
            side_meta = {
                "sample_id": entry.id,
                "kind": "sidecar",
                "blob_sha256": hashlib.sha256(sidecar).hexdigest(),
                "key_id": metadata.get("key_id", ""),
                "plaintext_sha256": metadata.get("plaintext_sha256", ""),
            }
            self._put_once(store, entry.sidecar_name, sidecar, side_meta, "application/json")
        self._count("uploaded_bytes", len(data))

    def _done(self, entry: Entry) -> None:
        now = self._now()
        self.db.update(entry.id, expect_state=UPLOADING, state=DONE, updated_at=now, last_error=None)
        if entry.sealed_path:
            Path(entry.sealed_path).unlink(missing_ok=True)
        self._count("uploaded")
        self._count(f"uploaded_{entry.kind}")
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
        """Send ``uploaded`` notices not yet sent (the hub may have been away)."""
        if self.notify is None:
            return 0
        with self._notice_lock:
            return self._send_pending_notices(self.notify)

    def _send_pending_notices(self, notify: Notify) -> int:
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
        for entry in pending:
            self.db.update(entry.id, notified=1)
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
        referenced = self.db.referenced_paths()
        removed = 0
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
        if self._store is None and (self.config.storage.credentials_file or self.env_credential):
            self._refresh_store()
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
        with self._store_lock:
            self._store_retry_at = 0.0
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
        with self._store_lock:
            credential = self._credential
            return {
                "credential": credential.describe() if credential else None,
                "container": self._store.container if self._store else None,
                "error": self.store_error,
                "retry_in_s": round(max(0.0, self._store_retry_at - self.clock.monotonic()), 1),
            }

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
        self.db.close()
