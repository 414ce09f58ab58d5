"""What the uploader writes to Blob Storage for an entry: the envelope with its metadata and
index tags in one request, the opt-in JSON sidecar, and the create-only write that makes every
retry safe."""

from __future__ import annotations

import hashlib
import json
import logging
import re
from typing import Any

from edgeloop.blobstore import ANY, BlobAuthError, BlobContainer, BlobExistsError, tag_value
from edgeloop.envelope import VERSION as ENVELOPE_VERSION
from edgeloop_uploader.outbox import Entry

log = logging.getLogger(__name__)

SEALED_CONTENT_TYPE = "application/vnd.edgeloop.envelope"
SIDECAR_SCHEMA = "edgeloop.sample-sidecar/1"
#: The label state tag of a sample as uploaded; labelling may set it to ``labelled`` later.
UNLABELLED = "unlabelled"
_NOT_PRINTABLE_ASCII = re.compile(r"[^\x20-\x7e]")


class ConflictError(Exception):
    """A different blob already sits at the entry's deterministic name."""


def _ascii(value: Any) -> str:
    """Blob metadata values must be printable ASCII."""
    return _NOT_PRINTABLE_ASCII.sub("_", str(value))[:1024]


def envelope_metadata(entry: Entry) -> dict[str, str]:
    """The sample's facts as blob metadata, so the cloud reads them without a sidecar or the key:
    the plaintext's content type and hash, the envelope's hash (what a retry compares), the
    selection (strategy, reason, tags, when) and the model's answer (label, confidence).

    Facts the blob carries elsewhere are not repeated: the sample id, device, model and version
    are in the blob name (and the index tags), the key id and envelope version in the envelope's
    header, the kind in the name (``predictions/``), the plaintext size in the envelope's size. The
    header also names the sample, device and content type; the cloud checks it against the name
    and the ``content_type`` here. Every metadata item is one more header that the storage parses
    and the SDK sorts and signs on each request. The full prediction is in the
    prediction log."""
    selected = entry.info.get("selected") or {}
    prediction = selected.get("prediction") or {}
    selection_tags = selected.get("tags") or []
    fields = {
        "content_type": entry.content_type,
        "plaintext_sha256": entry.plaintext_sha256,
        "blob_sha256": entry.ciphertext_sha256,
        "strategy": entry.info.get("strategy"),
        "label": prediction.get("label"),
        "confidence": prediction.get("confidence"),
        "reason": selected.get("reason"),
        "selection_tags": ",".join(str(t) for t in selection_tags) if selection_tags else None,
        "selected_at": selected.get("selected_at"),
        "traceparent": entry.info.get("traceparent"),
    }
    return {k: _ascii(v) for k, v in fields.items() if v is not None}


def envelope_tags(entry: Entry, device_id: str) -> dict[str, str]:
    """A sample's blob index tags (``edgeloop.blobstore.SAMPLE_TAGS``), for ``find_blobs_by_tags``;
    none for prediction-log batches."""
    if entry.kind != "sample":
        return {}
    prediction = (entry.info.get("selected") or {}).get("prediction") or {}
    fields = {
        "strategy": entry.info.get("strategy"),
        "model": prediction.get("model_name"),
        "model_version": prediction.get("model_version"),
        "device": entry.info.get("device_id", device_id),
        "label_state": UNLABELLED,
    }
    return {k: tag_value(v) for k, v in fields.items() if v is not None}


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
    store: BlobContainer,
    name: str,
    data: bytes,
    metadata: dict[str, str],
    content_type: str,
    tags: dict[str, str] | None = None,
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
            name,
            data,
            length=len(data),
            metadata=metadata,
            content_type=content_type,
            if_none_match=ANY,
            tags=tags or None,
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
