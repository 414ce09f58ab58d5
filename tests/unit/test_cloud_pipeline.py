"""A trigger pass end to end over in-memory storage: train, gate, publish, promote, record."""

from __future__ import annotations

import hashlib
import json

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

from edgeloop import signing
from edgeloop.blobstore import BlobContainer, MemoryContainer
from edgeloop.clock import FakeClock
from edgeloop.demo.scenario import ScenarioConfig, build

KEY = signing.generate_private_key()


class XorOpener:
    """A stand-in envelope: XOR with 0x5A, refusing blobs not marked as sealed."""

    def open(self, blob: bytes, ref: SampleRef) -> bytes:
        if ref.metadata.get("sealed") != "1":
            raise SampleError("not a sealed sample")
        return bytes(b ^ 0x5A for b in blob)


def _upload(data: BlobContainer, sample_id: str, frame: np.ndarray, *, sealed: bool = True) -> None:
    ok, png = cv2.imencode(".png", frame)
    assert ok
    plain = png.tobytes()
    data.write(
        f"digits/v1/2026/01/05/dev1/{sample_id}.png.elenv",
        bytes(b ^ 0x5A for b in plain),
        metadata={"sealed": "1" if sealed else "0", "plaintext_sha256": hashlib.sha256(plain).hexdigest()},
    )
    data.write(f"digits/v1/2026/01/05/dev1/{sample_id}.json", b"{}")


def _services(clock: FakeClock, **gate: float) -> CloudServices:
    config = CloudConfig(
        trigger=TriggerPolicy(min_new_labels=20, cooldown_minutes=0),
        training=TrainingParams(scratch_steps=100, finetune_steps=40),
        gate=GateConfig(**{"floor": 0.5, "max_latency_ms": 1000.0, **gate}),
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
    # given: a first round done
    clock = FakeClock()
    svc = _services(clock, margin=0.0, class_tolerance=1.0)
    for n, (frame, _label) in enumerate(stream):
        _upload(svc.data, f"s{n:03d}", frame)
    first = "\n".join(["sample_id,label"] + [f"s{n:03d},{lbl}" for n, (_f, lbl) in enumerate(stream[:30])])
    svc.data.write("labels/a.csv", first.encode())
    assert run_trigger_once(svc).status == "promoted"
    # when: asked again with nothing new
    idle = run_trigger_once(svc)
    # then
    assert idle.status == "idle"
    assert "no newly labelled" in idle.reasons[0]
    # when: another batch of labels arrives (JSONL this time)
    more = "\n".join(
        json.dumps({"sample_id": f"s{n:03d}", "label": lbl}) for n, (_f, lbl) in enumerate(stream)
    )
    svc.data.write("labels/b.jsonl", more.encode())
    second = run_trigger_once(svc)
    # then: a second run gated against v1
    assert second.status in ("promoted", "rejected")
    assert second.version == "v2"
    card = svc.registry.card("digits", "v2")
    assert card["lineage"]["parent_version"] == "v1"
    assert card["gate"]["champion_version"] == "v1"
    assert card["gate"]["reasons"]


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
    assert decision["eval_set"]["missing"] == []
