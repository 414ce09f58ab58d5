"""Taking selected samples into the outbox: one path for every sample.

A sample's content is its file on the shared volume (opened first: an open file outlives the
capture janitor's unlink), a raw frame encoded now (the memory-backed path: the raw file is
marked claimed once the sample is recorded) or, for a sensor vector, a small JSON document. It
is checked against what capture wrote, budgeted, then either sealed straight into the outbox (a
public key is known) or claimed as plaintext (a hard link, else a durable copy) to be sealed
when a key arrives. The samples of one input message are recorded in one durable commit: when
``accept_batch`` returns, every sample it counts is on disk and recorded.
"""

from __future__ import annotations

import errno
import io
import json
import logging
import mimetypes
import os
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from edgeloop import rawframe
from edgeloop.blobstore import SampleBlobName, sample_blob_name
from edgeloop.contracts import SelectedSample
from edgeloop.envelope import EnvelopeContext, PublicKey, SealResult, sealed_size
from edgeloop.statefile import fsync_folder
from edgeloop_uploader import observe
from edgeloop_uploader.budget import Budget
from edgeloop_uploader.claim import claim_file, write_durably
from edgeloop_uploader.core import Core
from edgeloop_uploader.outbox import IN_DATABASE, QUEUED
from edgeloop_uploader.rawencode import RawEncodeError, encode_raw_frame, suffix_for
from edgeloop_uploader.sealing import IN_DATABASE_BYTES, Sealer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Source:
    """A selected sample's content, open for reading."""

    stream: BinaryIO
    size: int
    content_type: str
    suffix: str
    path: Path | None  # the file on the shared volume; None for a vector or a raw frame
    raw_path: Path | None = None  # a raw frame, encoded into ``stream``: marked claimed once recorded


@dataclass(frozen=True)
class _Pending:
    """A sample taken, waiting for its batch's durable commit."""

    row: dict[str, Any]
    data: bytes | None  # an envelope kept in the database
    result: SealResult | None  # None: claimed as plaintext, sealed later
    raw_path: Path | None = None


class SampleRefused(Exception):
    """A sample is not taken; ``category`` counts it (``rejected_<category>``)."""

    def __init__(self, reason: str, category: str) -> None:
        super().__init__(reason)
        self.category = category


class Intake:
    """Accepts ``SelectedSample``s on the runtime thread."""

    def __init__(self, core: Core, budget: Budget, sealer: Sealer) -> None:
        self.core = core
        self.budget = budget
        self.sealer = sealer
        self._pending: list[_Pending] = []
        self._pending_ids: set[str] = set()
        self._batching = False
        self._known_ids: set[str] = set()  # of the batch being accepted, already in the outbox

    def accept(self, item: SelectedSample) -> bool:
        """Take one sample: False when it is not taken (a duplicate, a missing or truncated
        file, no room, the outbox cannot record it)."""
        with observe.claim_span(item) as stage:
            taken = self._take(item)
            if taken and not self._batching:
                taken = self._commit() == 1
            stage.set("taken", taken)
        return taken

    def accept_batch(self, items: list[SelectedSample]) -> int:
        """Take several samples with one durable commit; returns how many were recorded."""
        self._batching = True
        self._known_ids = self.core.db.existing_ids([item.sample_id for item in items])
        try:
            for item in items:
                self.accept(item)
        finally:
            self._batching = False
            self._known_ids = set()
            recorded = self._commit()
        return recorded

    # -- one sample ------------------------------------------------------------------------
    def _is_duplicate(self, sample_id: str) -> bool:
        if sample_id in self._pending_ids:
            return True
        if self._batching:
            return sample_id in self._known_ids
        return self.core.db.get(sample_id) is not None

    def _take(self, item: SelectedSample) -> bool:
        if self._is_duplicate(item.sample_id):
            self.core.count("duplicates")
            if item.sample_id not in self._pending_ids:
                self._release_raw(item)  # recorded by an earlier life that died before releasing it
            return False
        try:
            pending = self._prepare(item)
        except SampleRefused as refused:
            self.core.reject(item.sample_id, str(refused), refused.category)
            return False
        if pending is None:  # no room: the budget counted it
            return False
        self._pending.append(pending)
        self._pending_ids.add(item.sample_id)
        return True

    def _prepare(self, item: SelectedSample) -> _Pending | None:
        source = _open(item, self.core.paths.samples)
        with source.stream:
            frame = item.prediction.frame
            if source.path is not None and frame.bytes is not None and source.size != frame.bytes:
                raise SampleRefused(
                    f"sample file {frame.file_ref!r} has {source.size} bytes, capture wrote {frame.bytes} "
                    "(truncated?)",
                    "truncated",
                )
            key = self.core.public_key
            now = self.core.now()
            info = {"selected": item.to_wire(), "strategy": item.strategy, "traceparent": item.traceparent}
            sealed: tuple[dict[str, Any], bytes | None, SealResult] | None = None
            if key is not None and source.size <= IN_DATABASE_BYTES:
                # sealed in memory (nothing is written before the commit), so the budget is
                # given the envelope's own size instead of working out the header a second time
                sealed = self._seal(item, source, key, info)
                needed = sealed[2].ciphertext_bytes
            else:
                needed = self._budgeted(source, item, key)
            held_pending = sum(p.row["size"] for p in self._pending)
            room = self.budget.make_room(
                needed,
                item.priority,
                now,
                item.sample_id,
                pending=held_pending,
                reuse_held=self._batching,
            )
            if not room:
                return None
            if sealed is not None:
                columns, data, result = sealed
            elif key is not None:
                columns, data, result = self._seal(item, source, key, info)
            else:
                columns, data, result = self._claim(item, source, info), None, None
            if key is not None:
                self.core.count("claimed_by_seal")
        name = self._blob_name(item, source.suffix)
        row = {
            "id": item.sample_id,
            "kind": "sample",
            "state": QUEUED,
            "priority": item.priority,
            "created_at": now,
            "updated_at": now,
            "blob_name": name.name,
            "sidecar_name": name.sidecar,
            "content_type": source.content_type,
            **columns,
        }
        return _Pending(row=row, data=data, result=result, raw_path=source.raw_path)

    def _release_raw(self, item: SelectedSample) -> None:
        frame = item.prediction.frame
        if frame.raw is None or frame.file_ref is None:
            return
        self._mark_claimed(self.core.paths.samples / frame.file_ref)

    def _mark_claimed(self, path: Path) -> None:
        """Recorded: rename the raw frame to its claimed name, for capture's janitor to release."""
        try:
            path.rename(rawframe.claimed_path(path))
            self.core.count("raw_claimed")
        except FileNotFoundError:
            pass  # claimed already (a redelivery), or gone
        except OSError:
            log.warning("cannot mark raw frame %s claimed", path, exc_info=True)

    def _budgeted(self, source: _Source, item: SelectedSample, key: PublicKey | None) -> int:
        """What the sample will hold on disk once sealed (the envelope adds a header and a tag
        per chunk); the plaintext size while no public key is known yet."""
        if key is None:
            return source.size
        context = EnvelopeContext(
            sample_id=item.sample_id, device_id=self.core.device_id, content_type=source.content_type
        )
        chunk = self.core.config.encryption.chunk_size
        return sealed_size(source.size, public_key=key, context=context, chunk_size=chunk)

    def _seal(
        self, item: SelectedSample, source: _Source, key: PublicKey, info: dict[str, Any]
    ) -> tuple[dict[str, Any], bytes | None, SealResult]:
        """The sealed copy is the claim: sealed from the open source into the outbox."""
        try:
            with observe.encrypt_span():
                sealed = self.sealer.seal_stream(
                    source.stream,
                    size=source.size,
                    entry_id=item.sample_id,
                    content_type=source.content_type,
                    key=key,
                )
        except OSError as exc:
            raise _refusal(f"cannot seal {_describe(item)}", exc) from exc
        return self.sealer.fields(sealed, info), sealed.data, sealed.result

    def _claim(self, item: SelectedSample, source: _Source, info: dict[str, Any]) -> dict[str, Any]:
        """No key yet: keep the plaintext in ``outbox/claims`` until one arrives."""
        core = self.core
        target = core.paths.claims / f"{item.sample_id}{source.suffix}"
        try:
            if source.path is None:
                write_durably(target, source.stream.read(), durable=core.durable)
                if core.durable:
                    fsync_folder(target.parent)
            else:
                how = claim_file(source.path, target, durable=core.durable)
                core.count(f"claimed_by_{how}")
        except FileNotFoundError as exc:
            reason = f"sample file {_describe(item)} is missing from the volume"
            raise SampleRefused(reason, "missing") from exc
        except OSError as exc:
            raise _refusal(f"cannot claim {_describe(item)}", exc) from exc
        return {"plain_path": str(target), "size": source.size, "info": info}

    def _blob_name(self, item: SelectedSample, suffix: str) -> SampleBlobName:
        return sample_blob_name(
            model=item.prediction.model_name,
            version=item.prediction.model_version,
            captured_at=item.prediction.frame.captured_at,
            device_id=self.core.device_id,
            sample_id=item.sample_id,
            suffix=suffix,
        )

    # -- the batch's commit ----------------------------------------------------------------
    def _commit(self) -> int:
        """Record every pending sample in one durable commit; returns how many. When the
        database cannot record them, none of them is accepted and each is refused."""
        core = self.core
        pending, self._pending, self._pending_ids = self._pending, [], set()
        self.budget.forget_held()
        if not pending:
            return 0
        size = sum(len(accept.data or b"") for accept in pending)
        try:
            with core.db.transaction(durable=True, size=size) as conn:
                core.db.store_sealed_all(conn, [(a.row["id"], a.data) for a in pending if a.data is not None])
                core.db.insert_all(conn, [accept.row for accept in pending])
        except (sqlite3.OperationalError, OSError) as exc:
            reason, category = recording_failure(exc)
            recorded = _recorded(core, [accept.row["id"] for accept in pending])
            for accept in pending:
                if accept.row["id"] in recorded:  # committed, the log's sync failed: it stays
                    log.error("sample %s recorded, maybe not on disk: %s", accept.row["id"], exc)
                    continue
                core.sealed_cache.pop(accept.row["id"])
                for column in ("sealed_path", "plain_path"):
                    path = accept.row.get(column)
                    if path not in (None, IN_DATABASE):
                        Path(path).unlink(missing_ok=True)
                core.reject(accept.row["id"], reason, category)
            return 0
        for accept in pending:
            if accept.raw_path is not None:
                self._mark_claimed(accept.raw_path)
            core.count("accepted")
            if accept.result is None:
                core.count("waiting_for_key")
                continue
            if accept.data is not None:
                core.sealed_cache.put(accept.row["id"], accept.data)
            core.count("sealed")
            self.sealer.check_digest(accept.row["id"], accept.row["info"], accept.result)
        core.wake.set()
        return len(pending)


def _open(item: SelectedSample, samples_dir: Path) -> _Source:
    """The sample's content, open. Raises ``SampleRefused`` (missing, unreadable)."""
    frame = item.prediction.frame
    if frame.file_ref is None:
        body = {"sample_id": item.sample_id, "vector": frame.vector, "attributes": frame.attributes}
        data = json.dumps(body, separators=(",", ":")).encode("utf-8")
        return _Source(io.BytesIO(data), len(data), "application/json", ".json", None)
    path = samples_dir / frame.file_ref
    if frame.raw is not None:
        try:
            data = encode_raw_frame(
                path, raw=frame.raw, content_type=frame.content_type, display=frame.file_ref
            )
            suffix = suffix_for(frame.content_type)
        except RawEncodeError as exc:
            raise SampleRefused(str(exc), exc.category) from exc
        assert frame.content_type is not None
        return _Source(io.BytesIO(data), len(data), frame.content_type, suffix, None, raw_path=path)
    try:
        fin = open(path, "rb")  # noqa: SIM115 - the caller closes it
    except FileNotFoundError as exc:
        raise SampleRefused(f"sample file {frame.file_ref!r} is missing from the volume", "missing") from exc
    except OSError as exc:
        raise SampleRefused(f"cannot open {frame.file_ref!r}: {exc.strerror or exc}", "io") from exc
    try:
        size = os.fstat(fin.fileno()).st_size
    except OSError as exc:
        fin.close()
        raise SampleRefused(f"cannot open {frame.file_ref!r}: {exc.strerror or exc}", "io") from exc
    content_type = frame.content_type or mimetypes.guess_type(frame.file_ref)[0] or "application/octet-stream"
    return _Source(fin, size, content_type, path.suffix, path)


def _recorded(core: Core, ids: list[str]) -> set[str]:
    """Those of ``ids`` the outbox holds (none when it cannot be read either)."""
    try:
        return core.db.existing_ids(ids)
    except (sqlite3.Error, OSError):
        return set()


def _describe(item: SelectedSample) -> str:
    ref = item.prediction.frame.file_ref
    return repr(ref) if ref is not None else f"the vector of {item.sample_id}"


def _refusal(what: str, exc: OSError) -> SampleRefused:
    category = "disk_full" if exc.errno == errno.ENOSPC else "io"
    return SampleRefused(f"{what}: {exc.strerror or exc}", category)


def recording_failure(exc: Exception) -> tuple[str, str]:
    """(reason, category) for a failure to record samples in the outbox's database."""
    full = (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "full" in str(exc)
    if full:
        return f"the outbox disk is full, the sample cannot be recorded ({exc})", "disk_full"
    return f"the outbox cannot record the sample: {exc}", "io"
