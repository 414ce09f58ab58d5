"""A trigger pass end to end over in-memory storage: train, gate, publish, promote, record."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import cv2
import numpy as np
import pytest
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.errors import SampleError
from edgeloop_cloud.gate import GateConfig
from edgeloop_cloud.pipeline import CloudServices, gate_version, run_trigger_once
from edgeloop_cloud.samples import SampleRef
from edgeloop_cloud.training import TrainingParams
from edgeloop_cloud.trigger import TriggerPolicy
from edgeloop_demo.scenario import ScenarioConfig, build

from edgeloop import signing
from edgeloop.blobstore import BlobContainer, MemoryContainer
from edgeloop.clock import FakeClock
from tests.cloud_support import base_data_config

KEY = signing.generate_private_key()


class XorOpener:
    """A stand-in envelope: XOR with 0x5A, refusing blobs not marked as sealed."""

    def open(self, blob: bytes, ref: SampleRef) -> bytes:
        if ref.metadata.get("sealed") != "1":
            raise SampleError("not a sealed sample")
        return bytes(b ^ 0x5A for b in blob)


def _upload(
    data: BlobContainer,
    sample_id: str,
    frame: np.ndarray,
    *,
    sealed: bool = True,
    audit: bool = False,
    predicted: str | None = None,
    version: str = "v1",
    device: str = "dev1",
) -> None:
    ok, png = cv2.imencode(".png", frame)
    assert ok
    plain = png.tobytes()
    metadata = {
        "sealed": "1" if sealed else "0",
        "plaintext_sha256": hashlib.sha256(plain).hexdigest(),
        "strategy": "audit" if audit else "margin",
    }
    if predicted is not None:
        metadata["label"] = predicted
    data.write(
        f"digits/{version}/2026/01/05/{device}/{sample_id}.png.elenv",
        bytes(b ^ 0x5A for b in plain),
        metadata=metadata,
    )
    data.write(f"digits/{version}/2026/01/05/{device}/{sample_id}.json", b"{}")


def _write_labels(data: BlobContainer, blob: str, rows: list[tuple[str, str]]) -> None:
    data.write(blob, "\n".join(json.dumps({"sample_id": s, "label": lbl}) for s, lbl in rows).encode())


def _services(clock: FakeClock, **gate: float) -> CloudServices:
    config = CloudConfig(
        trigger=TriggerPolicy(min_new_labels=20, cooldown_minutes=0, retry_after_labels=5),
        training=TrainingParams(scratch_steps=100, finetune_steps=40, base_data=base_data_config()),
        gate=GateConfig(**{"floor": 0.5, "max_latency_ms": 1000.0, "min_audit_items": 10, **gate}),
    )
    return CloudServices(
        data=MemoryContainer("data", clock=clock),
        models=MemoryContainer("models", clock=clock),
        runs=MemoryContainer("runs", clock=clock),
        opener=XorOpener(),
        signing_key=KEY,
        config=config,
        clock=clock,
    )


@pytest.fixture(scope="module")
def stream() -> list[tuple[np.ndarray, str]]:
    scenario = build(ScenarioConfig(seed=7))
    drifted = [i for i in range(len(scenario.stream)) if scenario.stream.drifted[i]]
    return [(scenario.stream.frames[i], str(int(scenario.stream.labels[i]))) for i in drifted[:80]]


def test_a_pass_trains_gates_promotes_and_records(stream: list[tuple[np.ndarray, str]]) -> None:
    # given: 40 labelled samples, one tampered, one unsealed, labels for an unknown id, 5 unlabelled
    clock = FakeClock()
    svc = _services(clock)
    rows = ["sample_id,label"]
    for n, (frame, label) in enumerate(stream[:45]):
        _upload(svc.data, f"s{n:03d}", frame, sealed=n != 1)
        if n < 40:
            rows.append(f"s{n:03d},{label}")
    rows.append("ghost,3")
    svc.data.write("labels/batch-1.csv", "\n".join(rows).encode())
    blob = "digits/v1/2026/01/05/dev1/s000.png.elenv"
    svc.data.write(blob, svc.data.read(blob)[0][:-1] + b"\x00", metadata=svc.data.read(blob)[1].metadata)
    # when
    outcome = run_trigger_once(svc)
    # then
    assert outcome.status == "promoted", outcome.as_dict()
    assert outcome.version == "v1"
    champion = svc.registry.champion("digits")
    assert champion is not None
    assert champion.version == "v1"
    model = svc.registry.read_model("digits", "v1")
    signing.verify(signing.public_key_pem(KEY), model, champion.signature)
    card = svc.registry.card("digits", "v1")
    assert card["gate"]["decision"] == "promote"
    assert set(card["metrics"]["per_class"]) == {str(d) for d in range(10)}
    skipped = {s["sample_id"]: s["reason"] for s in card["training_manifest"]["skipped_samples"]}
    assert set(skipped) == {"s000", "s001"}
    assert "sha256" in skipped["s000"]
    record = svc.ledger.record(outcome.run_id or "")
    assert record is not None
    assert record["status"] == "promoted"
    assert record["unknown_label_ids"] == ["ghost"]
    queue = svc.data.read("labelling/queue.jsonl")[0].decode().splitlines()
    assert sorted(json.loads(q)["sample_id"] for q in queue) == [f"s{n:03d}" for n in range(40, 45)]


def test_nothing_new_means_no_run_and_new_labels_start_a_round(stream: list[tuple[np.ndarray, str]]) -> None:
    # given: a first round done; the last 20 samples are the devices' audit share
    clock = FakeClock()
    svc = _services(clock, margin=0.0, class_tolerance=1.0)
    for n, (frame, label) in enumerate(stream):
        _upload(svc.data, f"s{n:03d}", frame, audit=n >= 60, predicted=label if n % 2 else "x")
    _write_labels(svc.data, "labels/a.jsonl", [(f"s{n:03d}", lbl) for n, (_f, lbl) in enumerate(stream[:30])])
    assert run_trigger_once(svc).status == "promoted"
    # when: asked again with nothing new
    idle = run_trigger_once(svc)
    # then
    assert idle.status == "idle"
    assert "no newly labelled" in idle.reasons[0]
    # when: another batch of labels arrives, the audit share's among them
    _write_labels(svc.data, "labels/b.jsonl", [(f"s{n:03d}", lbl) for n, (_f, lbl) in enumerate(stream)])
    reads: list[str] = []
    read = svc.models.read

    def counted_read(name: str) -> tuple[bytes, Any]:
        reads.append(name)
        return read(name)

    svc.models.read = counted_read  # type: ignore[method-assign, assignment]
    second = run_trigger_once(svc)
    # then: a second run trained on every non-audit label and gated against v1 on the audit share,
    # reading v1's model once for both (training starts from it, the gate scores it)
    assert reads.count("digits/v1/model.onnx") == 1, reads
    assert second.status in ("promoted", "rejected", "waiting")
    assert second.version == "v2"
    assert second.counts == {"train": 60, "audit": 20, "skipped": 0}
    card = svc.registry.card("digits", "v2")
    assert card["lineage"]["parent_version"] == "v1"
    assert card["training_manifest"]["new_train_count"] == 60
    assert sorted(a["sample_id"] for a in card["training_manifest"]["audit_samples"]) == [
        f"s{n:03d}" for n in range(60, 80)
    ]
    gate = card["gate"]
    assert gate["champion_version"] == "v1"
    assert gate["eval_set"]["audit"] == 20
    assert gate["reasons"]
    audit = second.gate["audit"] if second.gate else None
    assert audit is not None
    assert audit["n"] == 20
    assert {"difference", "interval", "test", "p_value"} <= set(audit)
    # and field accuracy of v1 on dev1 from the audit share: every other prediction right
    assert second.field_accuracy == [
        {"model": "digits", "version": "v1", "device": "dev1", "n": 20, "correct": 10, "accuracy": 0.5,
         "interval": [0.2993, 0.7007], "confidence": 0.95, "unscored": 0}
    ]  # fmt: skip


def test_audit_samples_never_train(stream: list[tuple[np.ndarray, str]]) -> None:
    # given: 30 labelled samples of which 12 are audit samples
    clock = FakeClock()
    svc = _services(clock)
    svc.config = svc.config.model_copy(
        update={"trigger": TriggerPolicy(min_new_labels=10, cooldown_minutes=0)}
    )
    for n, (frame, _label) in enumerate(stream[:30]):
        _upload(svc.data, f"s{n:03d}", frame, audit=n % 5 < 2)
    _write_labels(svc.data, "labels/a.jsonl", [(f"s{n:03d}", lbl) for n, (_f, lbl) in enumerate(stream[:30])])
    # when
    outcome = run_trigger_once(svc)
    # then
    assert outcome.counts == {"train": 18, "audit": 12, "skipped": 0}
    card = svc.registry.card("digits", outcome.version or "")
    manifest = card["training_manifest"]
    assert manifest["new_train_count"] == 18
    audit_ids = {f"s{n:03d}" for n in range(30) if n % 5 < 2}
    assert {a["sample_id"] for a in manifest["audit_samples"]} == audit_ids
    trained_ids = {s["sample_id"] for s in manifest.get("samples", [])}
    assert not trained_ids & audit_ids


def test_a_gate_that_cannot_decide_waits_and_the_trigger_retries_with_more_labels(
    stream: list[tuple[np.ndarray, str]],
) -> None:
    # given: a champion, then 25 new labels of which only 4 are audit samples (10 needed)
    clock = FakeClock()
    svc = _services(clock)
    for n, (frame, _label) in enumerate(stream):
        _upload(svc.data, f"s{n:03d}", frame, audit=n >= 50)
    _write_labels(svc.data, "labels/a.jsonl", [(f"s{n:03d}", lbl) for n, (_f, lbl) in enumerate(stream[:20])])
    assert run_trigger_once(svc).status == "promoted"
    rows = [(f"s{n:03d}", stream[n][1]) for n in [*range(20, 41), 50, 51, 52, 53]]
    _write_labels(svc.data, "labels/b.jsonl", rows)
    # when
    waiting = run_trigger_once(svc)
    # then: no candidate was trained, the reason names the audit count, nothing was consumed
    assert waiting.status == "waiting"
    assert waiting.version is None
    assert "the audit set has 4 labelled items, the gate needs 10" in waiting.reasons[0]
    record = svc.ledger.record(waiting.run_id or "")
    assert record is not None
    assert record["status"] == "waiting"
    assert svc.ledger.state().waiting_at_labelled == 45
    assert svc.registry.versions("digits") == ["v1"]
    # when: 3 more labels arrive (5 needed for a retry), then 3 more
    _write_labels(svc.data, "labels/c.jsonl", [(f"s{n:03d}", stream[n][1]) for n in (54, 55, 56)])
    early = run_trigger_once(svc)
    _write_labels(svc.data, "labels/d.jsonl", [(f"s{n:03d}", stream[n][1]) for n in (57, 58, 59)])
    retried = run_trigger_once(svc)
    # then: the retry trains on the 21 waiting labels too, and judges on 10 audit items
    assert early.status == "idle"
    assert "waits for more labels: 3 arrived since" in early.reasons[0]
    assert retried.trigger.fire
    assert retried.run_id != waiting.run_id
    assert retried.counts == {"train": 41, "audit": 10, "skipped": 0}
    assert retried.status in ("promoted", "rejected", "waiting")
    assert retried.version == "v2"


def test_field_accuracy_per_model_version_and_device_without_a_run(
    stream: list[tuple[np.ndarray, str]],
) -> None:
    # given: audit samples from two devices and two versions, with the device's predictions;
    # one audit sample without a prediction; margin-selected samples do not count
    clock = FakeClock()
    svc = _services(clock)
    svc.config = svc.config.model_copy(update={"trigger": TriggerPolicy(min_new_labels=500)})
    rows = []
    for n, (frame, label) in enumerate(stream[:30]):
        device, version = ("cam-a", "v1") if n < 10 else ("cam-b", "v1") if n < 20 else ("cam-b", "v2")
        predicted = label if n % 10 < 8 else "x"
        _upload(svc.data, f"s{n:03d}", frame, audit=True, predicted=predicted, version=version, device=device)
        rows.append((f"s{n:03d}", label))
    _upload(svc.data, "nolabel", stream[30][0], audit=True, device="cam-a")
    _upload(svc.data, "margin", stream[31][0], predicted="x")
    rows += [("nolabel", stream[30][1]), ("margin", stream[31][1])]
    _write_labels(svc.data, "labels/a.jsonl", rows)
    # when
    outcome = run_trigger_once(svc)
    # then
    assert outcome.status == "idle"
    got = {(f["version"], f["device"]): f for f in outcome.field_accuracy}
    assert set(got) == {("v1", "cam-a"), ("v1", "cam-b"), ("v2", "cam-b")}
    assert got[("v1", "cam-a")]["n"] == 10  # "nolabel" has no prediction: counted apart
    assert got[("v1", "cam-a")]["unscored"] == 1
    assert all(f["accuracy"] == 0.8 for f in got.values())
    lo, hi = got[("v2", "cam-b")]["interval"]
    assert lo < 0.8 < hi
    assert outcome.as_dict()["field_accuracy"] == outcome.field_accuracy


def test_bad_labels_are_listed_and_the_run_goes_on(stream: list[tuple[np.ndarray, str]]) -> None:
    # given: 25 samples; one file labels s000 twice alike, s001 twice differently and a ghost;
    # a later file corrects s002
    clock = FakeClock()
    svc = _services(clock)
    for n, (frame, _label) in enumerate(stream[:25]):
        _upload(svc.data, f"s{n:03d}", frame)
    rows = [(f"s{n:03d}", lbl) for n, (_f, lbl) in enumerate(stream[:25])]
    rows += [("s000", stream[0][1]), ("s001", "x" if stream[1][1] != "x" else "y"), ("ghost", "3")]
    _write_labels(svc.data, "labels/a.jsonl", rows)
    _write_labels(svc.data, "labels/b.jsonl", [("s002", "7" if stream[2][1] != "7" else "1")])
    # when
    outcome = run_trigger_once(svc)
    # then: the run went on without s001, and the record says why
    assert outcome.status == "promoted", outcome.as_dict()
    assert outcome.counts["train"] == 24
    record = svc.ledger.record(outcome.run_id or "")
    assert record is not None
    problems = record["label_problems"]
    assert any("s000" in p and "labelled 2 times" in p for p in problems)
    assert any("conflicting labels for sample 's001'" in p for p in problems)
    assert any("unknown sample 'ghost'" in p for p in problems)
    assert any("'s002' relabelled" in c for c in record["label_corrections"])


def test_a_first_model_below_the_floor_is_published_but_not_promoted(
    stream: list[tuple[np.ndarray, str]],
) -> None:
    # given
    clock = FakeClock()
    svc = _services(clock, floor=0.99)
    for n, (frame, label) in enumerate(stream[:25]):
        _upload(svc.data, f"s{n:03d}", frame)
        svc.data.write(
            f"labels/{n:03d}.jsonl", json.dumps({"sample_id": f"s{n:03d}", "label": label}).encode()
        )
    # when
    outcome = run_trigger_once(svc)
    # then
    assert outcome.status == "rejected"
    assert svc.registry.champion("digits") is None
    decision = json.loads(svc.models.read("digits/v1/decision.json")[0])
    assert decision["outcome"] == "rejected"
    assert any("floor 0.9900" in r for r in decision["reasons"])
    record = svc.ledger.record(outcome.run_id or "")
    assert record is not None
    assert record["status"] == "rejected"


def test_drift_reported_by_devices_starts_a_run_with_few_labels(stream: list[tuple[np.ndarray, str]]) -> None:
    # given: 12 labels (below min_new_labels=50) and a routed device summary reporting drift
    clock = FakeClock()
    svc = _services(clock)
    svc.config = svc.config.model_copy(
        update={"trigger": TriggerPolicy(min_new_labels=50, min_new_labels_on_drift=10, drift_threshold=0.2)}
    )
    for n, (frame, label) in enumerate(stream[:12]):
        _upload(svc.data, f"s{n:03d}", frame)
        svc.data.write(
            f"labels/{n:03d}.jsonl", json.dumps({"sample_id": f"s{n:03d}", "label": label}).encode()
        )
    quiet = run_trigger_once(svc)
    summary = {"schema": "edgeloop.summary/1", "module": "filter", "drift": {"psi_confidence": 0.31}}
    routed = json.dumps({"EnqueuedTimeUtc": "2026-01-05T12:00:00Z", "Properties": {}, "Body": summary})
    svc.data.write("summaries/hub/00/2026/01/05/12/00.json", routed.encode())
    # when
    drifted = run_trigger_once(svc)
    # then
    assert quiet.status == "idle"
    assert drifted.trigger.fire
    assert "drift 0.310" in drifted.trigger.reasons[0]
    assert drifted.status in ("promoted", "rejected")


def test_a_rejected_version_can_be_gated_again(stream: list[tuple[np.ndarray, str]]) -> None:
    # given: v1 rejected by a strict floor
    clock = FakeClock()
    svc = _services(clock, floor=0.99)
    for n, (frame, label) in enumerate(stream[:25]):
        _upload(svc.data, f"s{n:03d}", frame)
        svc.data.write(
            f"labels/{n:03d}.jsonl", json.dumps({"sample_id": f"s{n:03d}", "label": label}).encode()
        )
    assert run_trigger_once(svc).status == "rejected"
    # when: the floor is lowered and v1 is gated again, twice
    svc.config = svc.config.model_copy(update={"gate": GateConfig(floor=0.5, max_latency_ms=1000.0)})
    again = gate_version(svc, "v1")
    twice = gate_version(svc, "v1")
    # then
    assert again.status == "promoted"
    champion = svc.registry.champion("digits")
    assert champion is not None
    assert champion.version == "v1"
    assert twice.status == "skipped"
    decision = json.loads(svc.models.read("digits/v1/decision.json")[0])
    assert decision["outcome"] == "promoted"
    assert decision["eval_set"]["skipped"] == []


def test_a_waiting_version_is_gated_again_on_the_audit_labels_of_now(
    stream: list[tuple[np.ndarray, str]],
) -> None:
    # given: v1 champion, then v2 trained and gated on 10 audit items
    clock = FakeClock()
    svc = _services(clock, min_audit_items=10)
    for n, (frame, _label) in enumerate(stream):
        _upload(svc.data, f"s{n:03d}", frame, audit=n >= 40)
    _write_labels(svc.data, "labels/a.jsonl", [(f"s{n:03d}", stream[n][1]) for n in range(20)])
    assert run_trigger_once(svc).status == "promoted"
    _write_labels(svc.data, "labels/b.jsonl", [(f"s{n:03d}", stream[n][1]) for n in range(20, 50)])
    trained = run_trigger_once(svc)
    assert trained.version == "v2"
    # when: ... and is judged again once 40 audit items are labelled, needing 30
    _write_labels(svc.data, "labels/c.jsonl", [(f"s{n:03d}", stream[n][1]) for n in range(50, 80)])
    svc.config.gate.min_audit_items = 30
    again = gate_version(svc, "v2")
    # then
    assert again.counts == {"audit": 40, "skipped": 0}
    assert again.gate is not None
    assert again.gate["audit"]["n"] == 40
    decision = json.loads(svc.models.read("digits/v2/decision.json")[0])
    assert decision["eval_set"]["audit"] == 40
    assert decision["outcome"] == again.status
