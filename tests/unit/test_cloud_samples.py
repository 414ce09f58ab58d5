"""Which blobs of the data container the cloud takes for samples, by the shared naming rules,
listing or querying index tags, for blobs of the sidecar era and of one request per sample."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from edgeloop_cloud.opener import EnvelopeOpener
from edgeloop_cloud.samples import (
    SampleRef,
    fetch_plaintext,
    find_samples,
    find_samples_by_tags,
    parse_sample_name,
)

from edgeloop import envelope
from edgeloop.blobstore import BlobInfo, MemoryContainer, sample_blob_name
from edgeloop.envelope import PublicKey
from tests.unit.uploader_support import Harness, key_id, keyring, public_pem, selected


def _info(name: str, metadata: dict[str, str] | None = None) -> BlobInfo:
    return BlobInfo(name, 1, '"0x1"', datetime(2026, 1, 5, tzinfo=UTC), metadata or {})


def test_a_sample_named_by_the_uploader_parses_back() -> None:
    # given
    name = sample_blob_name(
        model="digits",
        version="3",
        captured_at=datetime(2026, 1, 5, 12, tzinfo=UTC),
        device_id="cam-1",
        sample_id="01HX",
        suffix=".png",
    ).name
    # when
    ref = parse_sample_name(_info(name, {"Strategy": "uncertainty"}))
    # then
    assert ref == SampleRef(
        sample_id="01HX",
        blob_name="digits/3/2026/01/05/cam-1/01HX.png.elenv",
        model="digits",
        model_version="3",
        device="cam-1",
        day="2026-01-05",
        metadata={"strategy": "uncertainty"},
    )


@pytest.mark.parametrize(
    "name",
    [
        "digits/3/2026/01/05/cam-1/01HX.json",
        "predictions/cam-1/2026/01/05/12/b1.jsonl.gz.elenv",
        "labels/2026/01/05/x/y/z.elenv",
        "digits/3/2026/1/05/cam-1/01HX.png.elenv",
        "digits/3/yyyy/01/05/cam-1/01HX.png.elenv",
        "digits//2026/01/05/cam-1/01HX.png.elenv",
        "digits/3/2026/01/05/cam-1/extra/01HX.png.elenv",
    ],
)
def test_other_blobs_are_not_samples(name: str) -> None:
    assert parse_sample_name(_info(name)) is None


def test_find_samples_skips_sidecars_and_logs() -> None:
    # given
    data = MemoryContainer("data")
    for name in (
        "digits/3/2026/01/05/cam-1/01A.png.elenv",
        "digits/3/2026/01/05/cam-1/01A.json",
        "predictions/cam-1/2026/01/05/12/b1.jsonl.gz.elenv",
    ):
        data.write(name, b"x")
    # when / then
    assert [ref.sample_id for ref in find_samples(data)] == ["01A"]


def _both_eras(tmp_path: Path) -> tuple[Harness, dict[str, bytes]]:
    """A data container holding a sample of each era: one the uploader wrote as it does now
    (metadata and index tags, one request) and one of the sidecar era (metadata, a JSON
    sidecar beside it, no tags), as an older device wrote it."""
    h = Harness(tmp_path)
    now = b"pixels of now" * 50
    h.uploader.accept_selected(selected(h.samples, "01NEW", now))
    h.pump()
    older = b"pixels of then" * 50
    context = envelope.EnvelopeContext(sample_id="01OLD", device_id="dev-0", content_type="image/jpeg")
    sealed = envelope.seal_bytes(older, public_key=PublicKey.from_pem(public_pem(0)), context=context)
    old_name = "digits/3/2025/12/01/dev-0/01OLD.jpg.elenv"
    metadata = {
        "sample_id": "01OLD",
        "device_id": "dev-0",
        "key_id": key_id(0),
        "content_type": "image/jpeg",
        "plaintext_sha256": hashlib.sha256(older).hexdigest(),
        "blob_sha256": hashlib.sha256(sealed).hexdigest(),
        "strategy": "audit",
    }
    h.store.write(old_name, sealed, metadata=metadata, if_none_match="*")
    h.store.write(old_name.removesuffix(".jpg.elenv") + ".json", b'{"schema": "edgeloop.sample-sidecar/1"}')
    return h, {"01NEW": now, "01OLD": older}


def test_samples_of_both_eras_are_found_by_listing_and_open(tmp_path: Path) -> None:
    # given
    h, originals = _both_eras(tmp_path)
    opener = EnvelopeOpener(keyring(0))
    # when
    refs = {ref.sample_id: ref for ref in find_samples(h.store)}
    # then: the sidecar is skipped; each sample reads its strategy from metadata and opens
    assert sorted(refs) == ["01NEW", "01OLD"]
    assert refs["01OLD"].metadata["strategy"] == "audit"
    assert refs["01NEW"].metadata["strategy"] == "uncertainty"
    for sample_id, ref in refs.items():
        assert fetch_plaintext(h.store, ref, opener) == originals[sample_id]


def test_samples_uploaded_with_tags_are_found_by_them(tmp_path: Path) -> None:
    # given
    h, originals = _both_eras(tmp_path)
    # when
    found = list(find_samples_by_tags(h.store, {"strategy": "uncertainty", "model": "digits"}))
    # then: only the tagged sample (sidecar-era blobs have no tags: listing finds those)
    assert [ref.sample_id for ref in found] == ["01NEW"]
    ref = found[0]
    assert ref.tags == {"strategy": "uncertainty", "model": "digits"}
    assert ref.metadata == {"strategy": "uncertainty", "model": "digits"}
    assert (ref.model, ref.model_version, ref.device) == ("digits", "3", "dev-1")
    assert fetch_plaintext(h.store, ref, EnvelopeOpener(keyring(0))) == originals["01NEW"]
    assert list(find_samples_by_tags(h.store, {"label_state": "labelled"})) == []
    with pytest.raises(ValueError, match="tag"):
        list(find_samples_by_tags(h.store, {"strategy": "it's"}))
