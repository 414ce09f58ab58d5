"""The inference module as a process under the dev hub, with the real SDK: frames in from a
probe module, predictions out to $upstream, a model swap through the twin, methods."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from edgeloop import signing
from tests import model_factory as mf
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import PROBE, manifest
from tests.support import body_items, wait_for

pytestmark = pytest.mark.integration


def predictions(hub: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in _all_upstream(hub):
        if message["module"] != "inference":
            continue
        out.extend(body_items(message["body"]))
    return out


def _all_upstream(hub: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after = 0
    while True:
        page = hub.upstream(after)
        if not page:
            return rows
        rows.extend(page)
        after = page[-1]["id"]


def test_inference_scores_frames_and_swaps_models_under_the_dev_hub(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given: a feeder sending one-feature vector frames, an initial model on the volume
    private, public = signing.generate_keypair()
    models = tmp_path / "models"
    mf.write_signed_initial(models, mf.vector_model(features=1, seed=0), private)
    v2 = mf.signed(mf.vector_model(features=1, seed=1), private)
    spec = v2.spec(v2.write(tmp_path / "published" / "v2.onnx").as_uri(), name="sensor", version="2")
    doc = manifest(
        ["feeder", "inference"],
        {
            "frames": "FROM /messages/modules/feeder/outputs/frames "
            'INTO BrokeredEndpoint("/modules/inference/inputs/frames")',
            "predictions": "FROM /messages/modules/inference/outputs/predictions INTO $upstream",
        },
        desired={
            "inference": {"public_key": public.decode(), "batching": {"max_batch": 8, "max_wait_ms": 20}}
        },
        env={
            "inference": {
                "EDGELOOP_MODELS_DIR": str(models),
                "EDGELOOP_SAMPLES_DIR": str(tmp_path / "samples"),
            }
        },
    )
    hub = dev_hub(doc)
    inference = module_process(hub, "inference")
    module_process(hub, "feeder", package=PROBE, env={"PROBE_SOURCE": "feeder"})
    hub.wait_connected("inference", inputs=True, timeout=60)
    hub.wait_connected("feeder")
    hub.wait_reported("inference", lambda r: r.get("model", {}).get("status") == "loaded", timeout=60)

    # when: 300 frames stream in while the twin names model version 2
    assert (
        hub.invoke("feeder", "send", {"count": 300, "output": "frames", "interval": 0.005})["status"] == 200
    )
    wait_for(lambda: len(predictions(hub)) >= 30, timeout=60, what="first predictions")
    hub.patch_desired("inference", {"model": spec})
    reported = hub.wait_reported("inference", lambda r: r.get("model", {}).get("version") == "2", timeout=60)
    got = wait_for(lambda: len(p := predictions(hub)) >= 300 and p, timeout=60, what="300 predictions")

    # then: every frame scored exactly once, by the initial model then by version 2
    counts = Counter(p["sample_id"] for p in got)
    assert len(counts) == 300
    assert max(counts.values()) == 1
    assert {p["status"] for p in got} == {"ok"}
    by_seq = sorted(got, key=lambda p: p["frame"]["seq"])
    versions = [p["model_version"] for p in by_seq]
    assert versions[0] != "2"
    assert versions[-1] == "2"
    switch = versions.index("2")
    assert set(versions[switch:]) == {"2"}
    assert reported["model"]["keyId"] == signing.key_id(public)
    assert reported["model"]["previous"]["sha256"] != v2.sha256

    # and: a tampered model is refused by loadModel, rollback returns to the initial model
    tampered = dict(spec, version="3", signature=signing.sign(signing.generate_private_key(), v2.data))
    refused = hub.invoke("inference", "loadModel", tampered, timeout=30)
    assert refused["status"] == 400
    assert "bad signature" in refused["payload"]["error"]
    rolled = hub.invoke("inference", "rollback", {}, timeout=30)
    assert rolled["status"] == 200
    assert rolled["payload"]["version"] != "2"
    stats = hub.invoke("inference", "getStats", {})["payload"]["module"]
    assert stats["scored"] == 300
    assert stats["latencyMs"]["run"]["count"] >= 1

    # and: SIGTERM stops it cleanly
    assert inference.stop() == 0, inference.log()[-3000:]
    assert json.dumps(hub.twin("inference")["properties"]["reported"]["runtime"]["status"]) == '"stopped"'


def test_inference_runs_with_the_solution_manifest_and_its_twin_defaults(
    dev_hub: HubFactory, module_process: ModuleFactory, repo_root: Path
) -> None:
    # given: the real deployment manifest; the /models volume holds an initial model
    hub = dev_hub(repo_root / "deployment.template.json")
    env = hub.module_env("inference")
    mf.write_signed_initial(Path(env["EDGELOOP_MODELS_DIR"]), mf.digits_model())
    hub.patch_desired("inference", {"public_key": mf.signing_public()})
    # when
    module_process(hub, "inference")
    hub.wait_connected("inference", inputs=True, timeout=60)
    reported = hub.wait_reported(
        "inference", lambda r: r.get("model", {}).get("status") == "loaded", timeout=60
    )
    # then: the manifest's twin defaults were accepted, the initial model serves
    assert reported.get("configError") is None
    assert reported["config"]["batching"]["max_batch"] == 8
    assert reported["model"]["name"] == "digits"
    answer = hub.invoke("inference", "getModel", {})
    assert answer["status"] == 200
    assert answer["payload"]["classes"] == 10
