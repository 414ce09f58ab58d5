"""Which blobs of the data container the cloud takes for samples, by the shared naming rules."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from edgeloop_cloud.samples import SampleRef, find_samples, parse_sample_name

from edgeloop.blobstore import BlobInfo, MemoryContainer, sample_blob_name


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
