"""The in-memory blob container (conditional writes, leases, outages) and the data container layout."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from edgeloop.blobstore import (
    ANY,
    BlobAuthError,
    BlobExistsError,
    BlobNotFoundError,
    BlobStoreError,
    BlobUnavailableError,
    LeaseHeldError,
    MemoryContainer,
    PreconditionFailedError,
    parse_sample_blob_name,
    prediction_log_blob_name,
    safe_segment,
    sample_blob_name,
    tag_value,
    tags_query,
)
from edgeloop.clock import FakeClock


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


def test_memory_container_replaces_only_the_version_named_by_if_match() -> None:
    # given
    store = MemoryContainer("models")
    first = store.write("alias", b"v1")
    second = store.write("alias", b"v2", if_match=first)
    # when / then: the stale ETag loses, a create-only write is a precondition failure too
    with pytest.raises(PreconditionFailedError):
        store.write("alias", b"v3", if_match=first)
    with pytest.raises(PreconditionFailedError):
        store.write("alias", b"v3", if_none_match=ANY)
    assert second != first
    assert store.read("alias") == (b"v2", store.info("alias"))
    assert store.info("alias").etag == second


def test_memory_container_leases_block_other_writers_until_released_or_expired() -> None:
    # given
    clock = FakeClock()
    store = MemoryContainer("runs", clock=clock)
    lease = store.acquire_lease("lock", duration_s=15)
    # when / then: the blob was created empty; only the holder writes
    assert store.read("lock")[0] == b""
    with pytest.raises(LeaseHeldError):
        store.write("lock", b"x")
    with pytest.raises(LeaseHeldError):
        store.acquire_lease("lock", duration_s=15)
    store.write("lock", b"mine", lease_id=lease)
    clock.advance(10)
    store.renew_lease("lock", lease)
    clock.advance(10)
    with pytest.raises(LeaseHeldError):
        store.write("lock", b"x")
    clock.advance(6)
    with pytest.raises(LeaseHeldError):
        store.renew_lease("lock", lease)
    again = store.acquire_lease("lock", duration_s=-1)
    store.release_lease("lock", again)
    store.write("lock", b"free")
    assert store.read("lock")[0] == b"free"


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.write("a", b"1"),
        lambda s: s.read("a"),
        lambda s: s.info("a"),
        lambda s: s.exists("a"),
        lambda s: list(s.list("")),
        lambda s: s.delete("a"),
        lambda s: s.acquire_lease("a", duration_s=15),
        lambda s: s.ensure_container(),
    ],
)
def test_memory_outage_fails_every_remote_operation(
    call: Callable[[MemoryContainer], object],
) -> None:
    # given
    store = MemoryContainer()
    store.write("a", b"1")
    store.outage = True
    # when / then
    with pytest.raises(BlobUnavailableError):
        call(store)
    store.outage = False
    assert store.read("a")[0] == b"1"


def test_memory_read_url_is_read_only_and_expires() -> None:
    # given
    store = MemoryContainer("models", clock=FakeClock(datetime(2026, 1, 5, 12, 0, tzinfo=UTC)))
    # when / then
    assert store.read_url("d/v1/model.onnx", expires_in=timedelta(hours=2)) == (
        "memory://models/d/v1/model.onnx?sp=r&se=2026-01-05T14:00:00Z"
    )


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


def test_memory_container_finds_blobs_by_their_index_tags() -> None:
    # given: two tagged blobs and one written without tags
    store = MemoryContainer()
    store.write("a/1", b"1", tags={"strategy": "audit", "model": "digits"}, if_none_match=ANY)
    store.write("a/2", b"2", tags={"strategy": "margin", "model": "digits"}, if_none_match=ANY)
    store.write("a/3", b"3", metadata={"strategy": "audit"})
    # when
    audit = list(store.find_by_tags(tags_query({"strategy": "audit"})))
    digits = list(store.find_by_tags(tags_query({"model": "digits", "strategy": "margin"})))
    # then: only the tags the query named come back, as Azure answers
    assert [(b.name, b.tags) for b in audit] == [("a/1", {"strategy": "audit"})]
    assert [b.name for b in digits] == ["a/2"]


def test_tags_queries_quote_values_and_refuse_what_tags_cannot_hold() -> None:
    assert tags_query({"strategy": "audit", "model": "digits"}) == (
        "\"strategy\" = 'audit' AND \"model\" = 'digits'"
    )
    assert tag_value("it's (v2)") == "it_s _v2_"
    for bad in ({}, {"strategy": "o'brien"}, {"bad key!": "x"}):
        with pytest.raises(ValueError, match="tag"):
            tags_query(bad)


def test_memory_container_refuses_tags_azure_refuses() -> None:
    store = MemoryContainer()
    with pytest.raises(BlobStoreError, match="at most 10"):
        store.write("a", b"1", tags={f"k{i}": "v" for i in range(11)})
    with pytest.raises(BlobStoreError, match="refuse"):
        store.write("a", b"1", tags={"k": "semi;colon"})
    with pytest.raises(BlobStoreError, match="only"):
        list(store.find_by_tags("strategy > 'a'"))
