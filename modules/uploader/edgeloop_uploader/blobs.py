"""What the uploader writes to Blob Storage for an entry: the envelope with its metadata, the
JSON sidecar, and the create-only write that makes every retry safe."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from edgeloop.blobstore import ANY, BlobAuthError, BlobContainer, BlobExistsError
from edgeloop.envelope import VERSION as ENVELOPE_VERSION
from edgeloop_uploader.outbox import Entry

log = logging.getLogger(__name__)

SEALED_CONTENT_TYPE = "application/vnd.edgeloop.envelope"
SIDECAR_SCHEMA = "edgeloop.sample-sidecar/1"
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


class ConflictError(Exception):
    """A different blob already sits at the entry's deterministic name."""


def _ascii(value: Any) -> str:
    """Blob metadata values must be printable ASCII."""
    return _NOT_PRINTABLE_ASCII.sub("_", str(value))[:1024]


def envelope_metadata(entry: Entry, device_id: str) -> dict[str, str]:
    """The key fields as blob metadata, so the cloud can read them without the sidecar or the key."""
    selected = entry.info.get("selected") or {}
    prediction = selected.get("prediction") or {}
    fields = {
        "sample_id": entry.id,
        "kind": entry.kind,
        "device_id": entry.info.get("device_id", device_id),
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


def sidecar_bytes(entry: Entry, device_id: str) -> bytes:
    """The sidecar JSON; the same bytes on every try (keys sorted), so retries can compare."""
    selected = entry.info.get("selected") or {}
    doc = {
        "schema": SIDECAR_SCHEMA,
        "sample_id": entry.id,
        "device_id": entry.info.get("device_id", device_id),
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


def sidecar_metadata(sidecar: bytes) -> dict[str, str]:
    """Only what a retry compares (``put_once``): the rest is in the sidecar itself, and every
    metadata item costs the storage and the client work on each write."""
    return {"blob_sha256": hashlib.sha256(sidecar).hexdigest()}


def put_once(
    store: BlobContainer, name: str, data: bytes, metadata: dict[str, str], content_type: str
) -> str:
    """Create-only write. Returns ``"written"``, or ``"already_present"`` when an identical blob
    (an earlier try, cut off before it was recorded) is there, or ``"already_present_unverified"``
    when the credential cannot read it back (a create-only SAS): the deterministic name is then
    taken to be this entry's own earlier try.

    Raises:
        ConflictError: a different blob is at ``name``; it is never overwritten.
        BlobStoreError: the write failed.
    """
    try:
        store.write(
            name, data, length=len(data), metadata=metadata, content_type=content_type, if_none_match=ANY
        )
        return "written"
    except BlobExistsError:
        pass
    try:
        existing = store.info(name)
    except BlobAuthError:
        log.info("%s already exists (credential cannot read it back); taken as an earlier try", name)
        return "already_present_unverified"
    if existing.metadata.get("blob_sha256") == metadata["blob_sha256"] and existing.size == len(data):
        return "already_present"
    raise ConflictError(f"a different blob already exists at {name!r}; not overwritten")
