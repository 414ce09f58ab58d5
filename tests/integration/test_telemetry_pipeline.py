"""One sample through the four modules under the dev hub, with telemetry on: every stage's span
reaches an OTLP/HTTP receiver in one connected trace, and every module's /metrics parses as
Prometheus text."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from edgeloop_capture.testing import write_images
from prometheus_client.parser import text_string_to_metric_families

from edgeloop.blobstore import AzureContainer
from edgeloop.devhub.testing import HubProcess, ModuleProcess
from edgeloop.devtools.azurite import Azurite
from edgeloop.telemetry import names
from edgeloop.telemetry.dev import scrape
from tests import model_factory as mf
from tests.conftest import REPO_ROOT, subprocess_env
from tests.integration.conftest import next_loopback_address
from tests.integration.modules.manifests import manifest
from tests.integration.otlp_receiver import OtlpReceiver, ReceivedSpan
from tests.support import wait_for
from tests.unit.test_telemetry import free_port
from tests.unit.uploader_support import public_pem

pytestmark = pytest.mark.integration

MODULES = ("capture", "inference", "filter", "uploader")
SELECT_ALL = {
    "version": "telemetry-it",
    "strategies": [{"name": "all", "rules": [{"type": "every_nth", "n": 1}]}],
}


def _route(source: str, output: str, target: str) -> str:
    sink = f'BrokeredEndpoint("/modules/{target}/inputs/{output}")'
    return f"FROM /messages/modules/{source}/outputs/{output} INTO {sink}"


@dataclass
class Pipeline:
    hub: HubProcess
    receiver: OtlpReceiver
    metrics_ports: dict[str, int]
    processes: dict[str, ModuleProcess]
    azurite: Azurite

    def logs(self) -> str:
        return "\n".join(f"--- {name}\n{proc.log()[-2000:]}" for name, proc in self.processes.items())


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pipeline]:
    """The four modules as processes under one dev hub, exporting to a receiver in the test;
    one image dropped into capture's folder source."""
    root = tmp_path_factory.mktemp("pipeline")
    volume, models = root / "samples", root / "models"
    mf.write_signed_initial(models, mf.digits_model())
    receiver = OtlpReceiver()
    endpoint = receiver.start_http()
    azurite = Azurite(root / "azurite")
    azurite.start()
    doc = manifest(
        list(MODULES),
        {
            "frames": _route("capture", "frames", "inference"),
            "predictions": _route("inference", "predictions", "filter"),
            "selected": _route("filter", "selected", "uploader"),
            "uploaded": "FROM /messages/modules/uploader/outputs/uploaded INTO $upstream",
        },
        desired={
            "capture": {
                "sources": [
                    {"id": "drop", "kind": "folder", "path": "input/drop", "poll_s": 0.1, "settle_s": 0}
                ]
            },
            "inference": {"batching": {"max_batch": 4, "max_wait_ms": 20}, "public_key": mf.signing_public()},
            "filter": {"policy": SELECT_ALL},
            "uploader": {"encryption": {"public_key_pem": public_pem(0)}},
        },
    )
    hub = HubProcess(
        address=next_loopback_address(), manifest=doc, state_dir=root / "hub", env=subprocess_env()
    ).start()
    ports = {name: free_port() for name in MODULES}
    common = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "200",
        "OTEL_METRIC_EXPORT_INTERVAL": "1000",
        "EDGELOOP_METRICS_HOST": "127.0.0.1",
        "EDGELOOP_SAMPLES_DIR": str(volume),
        "EDGELOOP_MODELS_DIR": str(models),
        "EDGELOOP_STATE_DIR": str(root / "filter-state"),
        "EDGELOOP_OUTBOX_DIR": str(root / "outbox"),
        "EDGELOOP_STORAGE_CONNECTION_STRING": azurite.connection_string,
    }
    processes: dict[str, ModuleProcess] = {}
    try:
        for name in MODULES:
            env = {**hub.module_env(name), **common, "EDGELOOP_METRICS_PORT": str(ports[name])}
            processes[name] = ModuleProcess.python_module(
                f"edgeloop_{name}",
                env=subprocess_env(env),
                log_path=root / "logs" / f"{name}.log",
                cwd=REPO_ROOT,
            ).start()
        for name in MODULES:
            hub.wait_connected(name, inputs=name != "capture", timeout=60)
        write_images(volume / "input" / "drop", 1)
        yield Pipeline(hub, receiver, ports, processes, azurite)
    finally:
        for proc in processes.values():
            proc.stop()
        hub.close()
        azurite.stop()
        receiver.stop()


def uploaded(hub: HubProcess) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for message in hub.upstream():
        body = message["body"]
        if message["module"] == "uploader":
            items.extend(body["items"] if body["schema"] == "edgeloop.batch/1" else [body])
    return [item for item in items if item.get("strategy") != "prediction-log"]


def test_one_sample_makes_one_trace_through_every_stage(pipeline: Pipeline) -> None:
    # when: the image dropped into capture's folder is captured, scored, selected and uploaded
    notices = wait_for(
        lambda: uploaded(pipeline.hub), timeout=90, what=f"an uploaded notice\n{pipeline.logs()}"
    )
    sample_id = notices[0]["sample_id"]

    # then: its spans reach the receiver, one per stage, in one trace, each parented on the one before
    def stages() -> dict[str, ReceivedSpan]:
        received = pipeline.receiver.spans
        traces = {s.trace_id for s in received if s.attributes.get(names.ATTR_SAMPLE_ID) == sample_id}
        return {s.name: s for s in received if s.trace_id in traces}

    deadline = time.monotonic() + 60
    while not set(names.EDGE_STAGES) <= set(spans := stages()) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert set(names.EDGE_STAGES) <= set(spans), f"stages received: {sorted(spans)}"
    assert len({span.trace_id for span in spans.values()}) == 1
    assert spans["capture"].parent_span_id == ""
    assert spans["infer"].parent_span_id == spans["capture"].span_id
    assert spans["select"].parent_span_id == spans["infer"].span_id
    assert spans["claim"].parent_span_id == spans["select"].span_id
    assert spans["encrypt"].parent_span_id == spans["claim"].span_id
    assert spans["upload"].parent_span_id == spans["select"].span_id
    assert {span.name: span.service for span in spans.values()} == {
        "capture": "capture",
        "infer": "inference",
        "select": "filter",
        "claim": "uploader",
        "encrypt": "uploader",
        "upload": "uploader",
    }
    infer = spans["infer"].attributes
    assert infer[names.ATTR_MODEL_NAME] == "digits"
    assert infer[names.ATTR_FILE_REF] == spans["capture"].attributes[names.ATTR_FILE_REF]
    assert 0.0 <= infer[names.ATTR_CONFIDENCE] <= 1.0
    assert names.ATTR_MODEL_VERSION in infer
    assert spans["select"].attributes[names.ATTR_SELECTED] is True

    # and: the blob's metadata hands the trace to the cloud from the upload span
    store = AzureContainer.from_credential(pipeline.azurite.connection_string, container="data")
    metadata = store.info(notices[0]["blob_name"]).metadata
    assert spans["upload"].is_named_by(metadata["traceparent"])


def families(text: str) -> dict[str, Any]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(family: Any, suffix: str = "", **labels: str) -> float:
    """The sum of ``family``'s samples named ``<family><suffix>`` with ``labels``."""
    return sum(
        s.value
        for s in family.samples
        if s.name in (family.name + suffix, family.name + "_total" * (not suffix))
        and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_every_module_serves_prometheus_metrics(pipeline: Pipeline) -> None:
    # given: the sample has gone through
    wait_for(lambda: uploaded(pipeline.hub), timeout=90, what="an uploaded notice")

    # when
    scraped = {
        name: families(scrape(f"http://127.0.0.1:{port}/metrics"))
        for name, port in pipeline.metrics_ports.items()
    }

    # then: each parses, names its module, counts its runtime events and its own work
    for name, found in scraped.items():
        assert found["target_info"].samples[0].labels["service_name"] == name
        assert value(found["edgeloop_module_events"], event="items_out") >= 1 or name == "uploader"
        assert "edgeloop_telemetry_spans_dropped" in found
    assert value(scraped["capture"]["edgeloop_capture_samples"], source="drop") == 1
    assert value(scraped["inference"]["edgeloop_inference_samples"]) == 1
    assert value(scraped["inference"]["edgeloop_inference_latency_seconds"], "_count") >= 1
    assert value(scraped["filter"]["edgeloop_filter_selected"], strategy="all") == 1
    assert value(scraped["uploader"]["edgeloop_uploader_samples"]) >= 1
    assert value(scraped["uploader"]["edgeloop_uploader_outbox_depth"]) >= 0
