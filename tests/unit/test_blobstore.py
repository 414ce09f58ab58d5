"""The in-memory blob store and the data container layout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from edgeloop.blobstore import (
    ANY,
    BlobAuthError,
    BlobExistsError,
    BlobNotFoundError,
    BlobUnavailableError,
    MemoryContainer,
    parse_sample_blob_name,
    prediction_log_blob_name,
    safe_segment,
    sample_blob_name,
)


def test_memory_container_creates_only_under_if_none_match_any() -> None:
    # given
    store = MemoryContainer()
    store.write("a", b"1", metadata={"k": "v"}, if_none_match=ANY)
    # when / then
    with pytest.raises(BlobExistsError):
        store.write("a", b"2", if_none_match=ANY)
    assert store.read("a")[0] == b"1"
    store.write("a", b"2")
    assert store.info("a").size == 1
    assert store.read("a")[0] == b"2"
    store.delete("a")
    with pytest.raises(BlobNotFoundError):
        store.read("a")


@pytest.mark.parametrize(
    ("flag", "error"), [("outage", BlobUnavailableError), ("auth_failure", BlobAuthError)]
)
def test_memory_store_simulates_failures(flag: str, error: type[Exception]) -> None:
    store = MemoryContainer()
    setattr(store, flag, True)
    with pytest.raises(error):
        store.write("a", b"1", if_none_match=ANY)
    assert store.blobs == {}


def test_sample_names_are_deterministic_and_parse_back() -> None:
    # given
    when = datetime(2026, 3, 4, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    # when
    name = sample_blob_name(
        model="digits", version="3", captured_at=when, device_id="cam 1", sample_id="01HX", suffix=".jpg"
    )
    # then: the day is the UTC day, unsafe characters are replaced
    assert name.name == "digits/3/2026/03/05/cam_1/01HX.jpg.elenv"
    assert name.sidecar == "digits/3/2026/03/05/cam_1/01HX.json"
    assert parse_sample_blob_name(name.name) == name


@pytest.mark.parametrize("bad", ["a/b.elenv", "m/v/2026/01/01/dev/x.jpg", ""])
def test_parse_refuses_other_names(bad: str) -> None:
    with pytest.raises(ValueError, match="not a sealed sample"):
        parse_sample_blob_name(bad)


@pytest.mark.parametrize(
    ("raw", "safe"), [(None, "unknown"), ("..", "unknown"), ("a/b", "a_b"), ("v1.2", "v1.2")]
)
def test_safe_segment(raw: str | None, safe: str) -> None:
    assert safe_segment(raw) == safe


def test_prediction_log_names_are_per_device_and_hour() -> None:
    hour = datetime(2026, 1, 5, 7, tzinfo=UTC)
    assert (
        prediction_log_blob_name(device_id="dev", hour=hour, batch_id="b1")
        == "predictions/dev/2026/01/05/07/b1.jsonl.gz.elenv"
    )
