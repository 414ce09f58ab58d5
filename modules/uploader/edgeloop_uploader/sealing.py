"""Sealing outbox entries into envelopes (AES-256-GCM, the data key wrapped by the cloud's key).

Small envelopes are kept in the outbox database and, for their upload, in memory; larger ones
are written to ``outbox/sealed/<id>.elenv``. Entries claimed before a key was known are sealed
when it arrives (``seal_pending``).
"""

from __future__ import annotations

import io
import logging
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from edgeloop.envelope import EnvelopeContext, PublicKey, SealResult, seal
from edgeloop_uploader import observe
from edgeloop_uploader.claim import write_durably
from edgeloop_uploader.core import Core
from edgeloop_uploader.outbox import IN_DATABASE, QUEUED, Entry

log = logging.getLogger(__name__)

#: Envelopes up to this size are kept in the outbox database (one commit, no file to create);
#: larger ones go to a file in ``outbox/sealed`` (SQLite would write them twice: WAL, then table).
IN_DATABASE_BYTES = 256 * 1024
#: Up to this size sealing happens in memory and the envelope is kept for the upload (bounded cache).
IN_MEMORY_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Sealed:
    """Where an envelope went (a file, or ``IN_DATABASE`` with its ``data``) and its facts."""

    path: str
    result: SealResult
    data: bytes | None


class Sealer:
    """Turns claimed plaintext into envelopes; one entry at a time per uploader."""

    def __init__(self, core: Core) -> None:
        self.core = core
        self._lock = threading.Lock()

    def seal_stream(
        self, fin: BinaryIO, *, size: int, entry_id: str, content_type: str, key: PublicKey
    ) -> Sealed:
        """Seal ``fin`` (``size`` bytes): small samples in memory (their bytes returned, for the
        database and the upload cache), large ones streamed to ``outbox/sealed/<id>.elenv``."""
        core = self.core
        context = EnvelopeContext(sample_id=entry_id, device_id=core.device_id, content_type=content_type)
        chunk_size = core.config.encryption.chunk_size
        if size <= IN_MEMORY_BYTES:
            buffer = io.BytesIO()
            result = seal(fin, buffer, public_key=key, context=context, chunk_size=chunk_size)
            data = buffer.getvalue()
            if size <= IN_DATABASE_BYTES:
                return Sealed(IN_DATABASE, result, data)  # no file: no path made
            target = core.paths.sealed / f"{entry_id}.elenv"
            write_durably(target, data, durable=core.durable)
            core.sealed_cache.put(entry_id, data)
            return Sealed(str(target), result, None)
        target = core.paths.sealed / f"{entry_id}.elenv"
        tmp = target.with_name(f".{target.name}.tmp")
        try:
            with open(tmp, "wb") as fout:
                result = seal(fin, fout, public_key=key, context=context, chunk_size=chunk_size)
                fout.flush()
                if core.durable:
                    os.fsync(fout.fileno())
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
        return Sealed(str(target), result, None)

    def fields(self, sealed: Sealed, info: dict[str, Any]) -> dict[str, Any]:
        """The outbox columns of a sealed entry."""
        result = sealed.result
        return {
            "sealed_path": sealed.path,
            "plain_path": None,
            "size": result.ciphertext_bytes,
            "key_id": result.key_id,
            "plaintext_sha256": result.plaintext_sha256,
            "ciphertext_sha256": result.ciphertext_sha256,
            "info": {**info, "device_id": self.core.device_id, "plaintext_bytes": result.plaintext_bytes},
        }

    def check_digest(self, entry_id: str, info: dict[str, Any], result: SealResult) -> None:
        """Quarantine an entry whose content differs from what capture hashed."""
        expected = (info.get("selected") or {}).get("prediction", {}).get("frame", {}).get("sha256")
        if expected and expected != result.plaintext_sha256:
            entry = self.core.db.get(entry_id)
            if entry is not None:
                reason = f"content sha256 {result.plaintext_sha256} differs from capture's {expected}"
                self.core.quarantine(entry, reason)

    def seal_pending(self) -> int:
        """Seal entries that waited for a public key (or were cut off by a crash)."""
        if self.core.public_key is None:
            return 0
        return sum(1 for entry in self.core.db.unsealed() if self.seal_if_possible(entry.id))

    def seal_if_possible(self, entry_id: str) -> bool:
        core = self.core
        key = core.public_key
        if key is None:
            core.count("waiting_for_key")
            return False
        with self._lock:
            entry = core.db.get(entry_id)
            if entry is None or entry.sealed or entry.state != QUEUED or entry.plain_path is None:
                return False
            try:
                self._seal(entry, key)
            except FileNotFoundError:
                core.quarantine(entry, "claimed file vanished from the outbox before sealing")
                return False
            except OSError as exc:
                core.count("seal_errors")
                log.error("cannot seal %s: %s", entry_id, exc)
                return False
            return True

    def _seal(self, entry: Entry, key: PublicKey) -> None:
        core = self.core
        plain = Path(entry.plain_path or "")
        with open(plain, "rb") as fin, observe.encrypt_span(entry.info.get("traceparent")):
            size = os.fstat(fin.fileno()).st_size
            sealed = self.seal_stream(
                fin, size=size, entry_id=entry.id, content_type=entry.content_type, key=key
            )
        fields = self.fields(sealed, entry.info)
        with core.db.transaction(durable=True, size=len(sealed.data or b"")) as conn:
            core.db.store_sealed(conn, entry.id, sealed.data)
            core.db.update_in(conn, entry.id, updated_at=core.now(), **fields)
        if sealed.data is not None:
            core.sealed_cache.put(entry.id, sealed.data)
        plain.unlink(missing_ok=True)
        core.count("sealed")
        self.check_digest(entry.id, entry.info, sealed.result)
