"""Bad input against the module runtime and the uploader: method payloads that are not JSON
objects, twin patches with wrong types, unknown keys, out-of-range values and oversize documents,
message bodies that are not contracts.

Each is refused with an error naming what was wrong; the module keeps running; the last good
config stays; samples accepted before and after the corpus are all uploaded, once each.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import AreaLedger
from tests.reliability.harness import UploaderInProcess
from tests.support import wait_for
from tests.unit.uploader_support import public_pem, selected

DESIRED: dict[str, Any] = {
    "encryption": {"public_key_pem": public_pem(0)},
    "retry": {"initial_backoff_s": 0.05, "max_backoff_s": 0.2, "max_attempts": 2},
}

NOT_OBJECTS: list[Any] = [[1, 2], "text", 42, 3.5, True, [{"wait_s": 1}], '{"wait_s": 1}']

#: (method, payload, what the error must name)
METHOD_CORPUS: list[tuple[str, Any, str]] = [
    *[(m, p, type(p).__name__) for m in ("getStats", "getQueue", "flush", "pause") for p in NOT_OBJECTS],
    *[("setConfig", p, "JSON object") for p in NOT_OBJECTS],
    ("getStats", {"verbose": True}, "verbose"),
    ("flush", {"wait_s": "soon"}, "wait_s"),
    ("flush", {"wait_s": -1}, "wait_s"),
    ("flush", {"wait_s": 1e9}, "wait_s"),
    ("flush", {"wait_s": float("nan")}, "wait_s"),
    ("retryQuarantined", {"sample_ids": "01A"}, "sample_ids"),
    ("retryQuarantined", {"sample_ids": [1, {"a": 2}]}, "sample_ids"),
    ("setCredentials", {"connection_string": 5}, "connection_string"),
    ("setCredentials", {"sas": "https://x/y?sig=SECRET"}, "sas"),
    ("setConfig", {"retry": {"max_attempts": "many"}}, "retry.max_attempts"),
    ("setConfig", {"nosuch": 1}, "nosuch"),
    ("setConfig", {"device_id": "d" * 40_000}, "limit"),
    ("nosuchMethod", {}, "nosuchMethod"),
]

#: (twin patch, what the reason must name)
PATCH_CORPUS: list[tuple[dict[str, Any], str]] = [
    ({"retry": {"max_attempts": "many"}}, "retry.max_attempts"),
    ({"retry": {"max_attempts": 0}}, "retry.max_attempts"),
    ({"retry": {"max_attempts": 10**12}}, "retry.max_attempts"),
    ({"retry": {"jitter": 5}}, "retry.jitter"),
    ({"retry": {"initial_backoff_s": float("inf")}}, "retry.initial_backoff_s"),
    ({"prediction_log": {"sample_rate": float("nan")}}, "prediction_log.sample_rate"),
    ({"retry": "fast"}, "retry"),
    ({"nosuch": 1}, "nosuch"),
    ({"outbox": {"workerz": 2}}, "outbox.workerz"),
    ({"outbox": {"durability": "maybe"}}, "outbox.durability"),
    ({"outbox": {"max_bytes": -5}}, "outbox.max_bytes"),
    ({"storage": {"container": "Not_A_Container!"}}, "storage.container"),
    ({"storage": {"connection_string": ["a"]}}, "storage.connection_string"),
    (
        {"storage": {"connection_string": "AccountKey=K1", "container_sas_url": "https://a?sig=K2"}},
        "not both",
    ),
    (
        {"encryption": {"public_key_pem": "-----BEGIN PUBLIC KEY-----\nx\n"}},
        "encryption.public_key_pem",
    ),
    ({"encryption": {"chunk_size": 1}}, "encryption.chunk_size"),
    ({"device_id": "d" * 40_000}, "limit"),
    ({"prediction_log": {"max_batch": {"deep": [1] * 5000}}}, "prediction_log.max_batch"),
]

#: Message bodies on the ``selected`` input that are not contracts.
BODY_CORPUS: list[bytes] = [
    b"",
    b"\xff\xfe\x00garbage",
    b"not json",
    b"[]",
    b"null",
    b"42",
    b'"a string"',
    b"{}",
    b'{"schema": "edgeloop.selected/1"}',
    b'{"schema": "edgeloop.nosuch/1", "sample_id": "x"}',
    b'{"schema": "edgeloop.batch/1", "item_schema": "edgeloop.selected/1", "items": [1, 2]}',
    b'{"schema": "edgeloop.batch/1", "items": "x"}',
    b"[" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    b'{"schema": "edgeloop.selected/1", "pad": "' + b"x" * 300_000 + b'"}',
    b'{"schema": "edgeloop.selected/1", "sample_id": NaN}',
]


@pytest.fixture
def uploader(tmp_path: Path) -> Iterator[UploaderInProcess]:
    running = UploaderInProcess(tmp_path, DESIRED)
    running.start()
    yield running
    running.stop()


def _feed(running: UploaderInProcess, prefix: str, count: int) -> list[str]:
    ids = [f"{prefix}{i:03d}" for i in range(count)]
    running.hub.push_input("selected", [selected(running.samples, sid) for sid in ids])
    return ids


def _all_uploaded_once(running: UploaderInProcess, expected: list[str], ledger: AreaLedger) -> None:
    wait_for(
        lambda: set(running.uploaded_ids()) >= set(expected), 20.0, what="every accepted sample uploaded"
    )
    uploaded = running.uploaded_ids()
    lost = len(set(expected) - set(uploaded))
    ledger.record(lost=lost)
    assert lost == 0
    assert sorted(uploaded) == sorted(set(uploaded)), "a sample was announced twice"
    sealed_puts = [name for name in running.store.puts if name.endswith(".elenv")]
    assert len(sealed_puts) == len(set(sealed_puts)) == len(expected), "a sample was uploaded twice"


def test_bad_method_payloads_get_400_naming_the_problem(
    uploader: UploaderInProcess, ledger: AreaLedger
) -> None:
    # given: samples accepted before the corpus
    accepted = _feed(uploader, "01BEFORE", 5)
    before = uploader.hub.call_method("getConfig").payload
    answers = []
    # when
    for method, payload, names in METHOD_CORPUS:
        response = uploader.hub.call_method(method, payload)
        answers.append((method, payload, names, response))
    ledger.record(inputs=len(METHOD_CORPUS))
    # then: every one refused with a reason that names what was wrong
    for method, payload, names, response in answers:
        shown = json.dumps(response.payload)
        expected_status = 404 if method == "nosuchMethod" else 400
        assert response.status == expected_status, (method, payload, response)
        assert names in shown, f"{method}({payload!r:.60}) answered {shown:.200}"
        assert "SECRET" not in shown
    # and: still running, not paused, the config unchanged, nothing accepted lost
    assert uploader.alive
    assert uploader.hub.call_method("getStats").status == 200
    assert uploader.runtime.paused is False
    after = uploader.hub.call_method("getConfig").payload
    assert (after["config"], after["configVersion"]) == (before["config"], before["configVersion"])
    accepted += _feed(uploader, "01AFTER", 5)
    _all_uploaded_once(uploader, accepted, ledger)


def _rejection(running: UploaderInProcess, version: int) -> dict[str, Any] | None:
    error: dict[str, Any] | None = running.reported().get("configError")
    return error if error is not None and error["version"] == version else None


def test_bad_twin_patches_are_rejected_with_the_reason_and_the_last_good_config_stays(
    uploader: UploaderInProcess, ledger: AreaLedger
) -> None:
    # given
    accepted = _feed(uploader, "01BEFORE", 5)
    wait_for(lambda: uploader.reported().get("configVersion") == 1, 20.0, what="the first config reported")
    good = uploader.reported()["config"]
    # when / then: one bad patch at a time
    for patch, names in PATCH_CORPUS:
        uploader.hub.patch_desired(patch)
        version = uploader.hub.desired["$version"]
        error = wait_for(partial(_rejection, uploader, version), 20.0, what=f"the rejection of {patch!r:.60}")
        assert names in error["reason"], f"{patch!r:.80} rejected with {error['reason']:.200}"
        assert uploader.reported()["config"] == good
        assert uploader.reported()["configVersion"] == 1
    ledger.record(inputs=len(PATCH_CORPUS))
    # then: a good patch is still applied, and nothing accepted was lost
    uploader.hub.patch_desired({**DESIRED, "retry": {**DESIRED["retry"], "max_attempts": 3}})
    wait_for(lambda: uploader.reported()["config"]["retry"]["max_attempts"] == 3, 20.0, what="a good patch")
    assert uploader.reported().get("configError") is None
    accepted += _feed(uploader, "01AFTER", 5)
    _all_uploaded_once(uploader, accepted, ledger)


def test_bodies_that_are_not_contracts_are_dropped_and_counted(
    uploader: UploaderInProcess, ledger: AreaLedger
) -> None:
    # given
    accepted = _feed(uploader, "01BEFORE", 5)
    # when
    for body in BODY_CORPUS:
        uploader.hub.push_raw_input("selected", body)
    ledger.record(inputs=len(BODY_CORPUS))
    # then
    wait_for(
        lambda: uploader.runtime.counters["messages_rejected"] == len(BODY_CORPUS),
        20.0,
        what="every body rejected",
    )
    assert uploader.alive
    assert uploader.runtime.counters["handle_input_errors"] == 0
    accepted += _feed(uploader, "01AFTER", 5)
    _all_uploaded_once(uploader, accepted, ledger)


@pytest.mark.parametrize(
    ("file_ref", "names"),
    [("../../etc/passwd", "file_ref"), ("/etc/passwd", "file_ref"), ("frames/a b.jpg", "file_ref")],
)
def test_sample_paths_outside_the_volume_never_pass_the_contract(
    uploader: UploaderInProcess, file_ref: str, names: str, ledger: AreaLedger
) -> None:
    # given: a selected sample naming a file outside the sample volume
    wire = selected(uploader.samples, "01ESCAPE").to_wire()
    wire["prediction"]["frame"]["file_ref"] = file_ref
    ledger.record(inputs=1)
    # when
    uploader.hub.push_raw_input("selected", json.dumps(wire).encode())
    # then
    wait_for(lambda: uploader.runtime.counters["messages_rejected"] == 1, 20.0, what="the body rejected")
    assert uploader.uploaded_ids() == []
    assert uploader.alive


@pytest.mark.parametrize(
    ("damage", "category", "names"),
    [
        ("missing", "missing", "missing"),
        ("truncated", "truncated", "bytes"),
        ("zero-byte", "truncated", "0 bytes"),
    ],
)
def test_a_sample_whose_file_is_missing_or_cut_is_rejected_with_the_reason_and_the_rest_flow(
    uploader: UploaderInProcess, damage: str, category: str, names: str, ledger: AreaLedger
) -> None:
    # given: one damaged sample between good ones
    bad = selected(uploader.samples, "01BAD", write=damage != "missing")
    path = uploader.samples / "frames" / "01BAD.jpg"
    if damage == "truncated":
        path.write_bytes(path.read_bytes()[:10])
    elif damage == "zero-byte":
        path.write_bytes(b"")
    accepted = _feed(uploader, "01A", 3)
    uploader.hub.push_input("selected", [bad])
    accepted += _feed(uploader, "01B", 3)
    ledger.record(inputs=1)
    # then
    _all_uploaded_once(uploader, accepted, ledger)
    assert "01BAD" not in uploader.uploaded_ids()
    stats = uploader.hub.call_method("getStats").payload["module"]
    assert stats["counters"][f"rejected_{category}"] == 1
    (rejection,) = [r for r in stats["recent_rejections"] if r["sample_id"] == "01BAD"]
    assert names in rejection["reason"]
