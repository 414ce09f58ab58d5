"""The uploaded samples in the data container: find them, decrypt them, decode them.

The uploader names each sealed sample blob
``<model>/<version>/<yyyy>/<mm>/<dd>/<device>/<sample_id>[.ext].elenv`` and writes its facts in the
same request: blob metadata (strategy, label, hashes, key id...) and blob index tags (strategy,
model, model version, device, label state) that ``find_samples_by_tags`` queries. Blobs of
devices that still write a JSON sidecar beside the sample (``<sample_id>.json``, opt-in) read the
same way: the sidecar is skipped, the metadata is on the sample blob in both eras. Prediction
logs live under ``predictions/``. Metadata ``strategy = "audit"`` marks the random audit
share, used only to evaluate models, never to train them. Decryption goes through the
``SampleOpener`` port so that the envelope format stays in one place.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Protocol

import numpy as np

from edgeloop import telemetry
from edgeloop.blobstore import BlobContainer, BlobInfo, parse_sample_blob_name, tags_query
from edgeloop.telemetry import names
from edgeloop_cloud.errors import SampleError

log = logging.getLogger(__name__)

_DAY = re.compile(r"\d{4}/\d{2}/\d{2}")
_NOT_SAMPLES = ("predictions/", "labels/", "labelling/", "summaries/")
#: Blob metadata keys the uploader sets (Azure lower-cases metadata names).
META_PLAINTEXT_SHA256 = "plaintext_sha256"
META_KEY_ID = "key_id"
META_STRATEGY = "strategy"
#: The label the device's model predicted for the sample.
META_PREDICTED = "label"
#: The strategy name of the filter's random audit share: evaluation only, never training.
AUDIT_STRATEGY = "audit"
#: Blob index tags whose values are also metadata items of the same name.
_TAGS_IN_METADATA = (META_STRATEGY, "model", "model_version")


class SampleOpener(Protocol):
    """Turns an uploaded (encrypted) sample blob back into the sample file's bytes."""

    def open(self, blob: bytes, ref: SampleRef) -> bytes:
        """The plaintext of ``ref``'s blob (its metadata as stored, names lower-cased).

        Raises SampleError when it cannot be decrypted or belongs to another sample.
        """
        ...


@dataclass(frozen=True)
class SampleRef:
    """One uploaded sample, as found in the data container."""

    sample_id: str
    blob_name: str
    model: str
    model_version: str
    device: str
    day: str
    metadata: dict[str, str] = field(default_factory=dict)
    #: Blob index tags, for a sample found by them (the ones the query named).
    tags: dict[str, str] = field(default_factory=dict)

    @property
    def is_audit(self) -> bool:
        """Whether the device drew this sample at random for evaluation (the audit share)."""
        return self.metadata.get(META_STRATEGY) == AUDIT_STRATEGY

    def describe(self) -> dict[str, str]:
        """What a labelling queue entry shows about the sample."""
        hints = {k: v for k, v in self.metadata.items() if k in (META_STRATEGY, "label", "confidence")}
        return {
            "sample_id": self.sample_id,
            "blob": self.blob_name,
            "device": self.device,
            "model_version": self.model_version,
            "day": self.day,
            **hints,
        }


def parse_sample_name(info: BlobInfo) -> SampleRef | None:
    """The sample a blob holds, or None for sidecars, labels and anything else."""
    if info.name.startswith(_NOT_SAMPLES) or "" in info.name.split("/"):
        return None
    try:
        parts = parse_sample_blob_name(info.name)
    except ValueError:
        return None
    if not _DAY.fullmatch(parts.day):
        return None
    return SampleRef(
        sample_id=parts.sample_id,
        blob_name=info.name,
        model=parts.model,
        model_version=parts.version,
        device=parts.device_id,
        day=parts.day.replace("/", "-"),
        metadata={k.lower(): v for k, v in info.metadata.items()},
    )


def find_samples(container: BlobContainer, *, prefix: str = "") -> Iterator[SampleRef]:
    """Every sample blob whose name starts with ``prefix``, in name order."""
    for info in container.list(prefix):
        ref = parse_sample_name(info)
        if ref is not None:
            yield ref


def find_samples_by_tags(container: BlobContainer, tags: Mapping[str, str]) -> Iterator[SampleRef]:
    """Every sample blob whose index tags hold all of ``tags`` (e.g. ``{"strategy": "audit"}``),
    in name order, without listing the container. The tags found are in ``ref.tags``, and those
    that are also metadata items (strategy, model, model_version) in ``ref.metadata`` too, so a
    ref reads the same way however it was found. Blobs uploaded before tags (the sidecar era)
    have none: ``find_samples`` finds them.

    Raises:
        ValueError: a tag name or value that blob index tags cannot hold.
        BlobStoreError: the query failed.
    """
    found = sorted(container.find_by_tags(tags_query(tags)), key=lambda blob: blob.name)
    for blob in found:
        info = BlobInfo(blob.name, 0, "", datetime.min.replace(tzinfo=UTC))
        ref = parse_sample_name(info)
        if ref is not None:
            metadata = {k: v for k, v in blob.tags.items() if k in _TAGS_IN_METADATA}
            yield replace(ref, metadata=metadata, tags=dict(blob.tags))


def fetch_plaintext(container: BlobContainer, ref: SampleRef, opener: SampleOpener) -> bytes:
    """Download, decrypt and check one sample against the plaintext hash the uploader recorded.

    Raises:
        SampleError: undecryptable, tampered (hash mismatch) or unreadable.
    """
    try:
        blob, info = container.read(ref.blob_name)
    except Exception as exc:
        raise SampleError(f"sample {ref.sample_id}: cannot read {ref.blob_name}: {exc}") from exc
    metadata = {k.lower(): v for k, v in info.metadata.items()}
    # The uploader's upload span travels in the metadata: the sample's trace goes on here.
    attributes = {names.ATTR_SAMPLE_ID: ref.sample_id, names.ATTR_BLOB: ref.blob_name}
    with telemetry.stage_span(names.SPAN_DECRYPT, metadata.get("traceparent"), attributes):
        plaintext = opener.open(blob, replace(ref, metadata=metadata))
        expected = metadata.get(META_PLAINTEXT_SHA256)
        if expected and hashlib.sha256(plaintext).hexdigest() != expected.lower():
            raise SampleError(f"sample {ref.sample_id}: plaintext sha256 does not match the blob metadata")
    return plaintext


def decode_sample(data: bytes, *, sample_id: str = "") -> np.ndarray:
    """A sample's array: a sensor vector (the uploader's JSON document ``{"vector": [...]}``,
    float32, one axis) or an image (``decode_image``).

    Raises:
        SampleError: neither a vector document nor an image.
    """
    if data.lstrip()[:1] == b"{":
        return decode_vector(data, sample_id=sample_id)
    return decode_image(data, sample_id=sample_id)


def decode_vector(data: bytes, *, sample_id: str = "") -> np.ndarray:
    """The float32 values of a vector sample document (``{"vector": [...], ...}``).

    Raises:
        SampleError: not JSON, no ``vector`` list of numbers, or values that are not finite.
    """
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, ValueError) as exc:
        raise SampleError(f"sample {sample_id}: not a JSON vector document: {exc}") from exc
    values = doc.get("vector") if isinstance(doc, dict) else None
    if not isinstance(values, list) or not values:
        raise SampleError(f"sample {sample_id}: the JSON document has no non-empty 'vector' list")
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
        raise SampleError(f"sample {sample_id}: 'vector' holds values that are not numbers")
    vector = np.asarray(values, dtype=np.float32)
    if not np.all(np.isfinite(vector)):
        raise SampleError(f"sample {sample_id}: 'vector' holds NaN or infinite values")
    return vector


def decode_image(data: bytes, *, sample_id: str = "") -> np.ndarray:
    """An image array from JPEG/PNG bytes (via OpenCV) or a ``.npy`` array.

    Raises:
        SampleError: the bytes are not an image.
    """
    if data[:6] == b"\x93NUMPY":
        try:
            return np.asarray(np.load(io.BytesIO(data), allow_pickle=False))
        except ValueError as exc:
            raise SampleError(f"sample {sample_id}: bad .npy payload: {exc}") from exc
    import cv2

    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise SampleError(f"sample {sample_id}: not a decodable image ({len(data)} bytes)")
    return np.asarray(image)
