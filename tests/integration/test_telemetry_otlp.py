"""Telemetry over real OTLP: processes set up from OTEL_* variables export to a receiver in
the test (HTTP/protobuf and gRPC), and their spans join into one trace by traceparent."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import subprocess_env
from tests.integration.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration

# One stage of a sample in its own process, as a module would run it: set up from the
# environment, one stage span continuing argv[2] (if any), print the outgoing traceparent.
STAGE = """
import sys
from edgeloop import telemetry
telemetry.setup_from_env(sys.argv[1], module_id=sys.argv[1], device_id="dev-1")
incoming = sys.argv[2] if len(sys.argv) > 2 else None
with telemetry.stage_span(sys.argv[1], incoming, {"sample_id": "s1", "file_ref": "cam/s1.jpg"}) as stage:
    telemetry.metrics.counter("edgeloop.test.stage").add(1)
print(stage.traceparent)
telemetry.shutdown()
"""


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    otlp = OtlpReceiver()
    yield otlp
    otlp.stop()


def run_stage(name: str, incoming: str | None, env: dict[str, str]) -> str:
    args = [sys.executable, "-c", STAGE, name] + ([incoming] if incoming else [])
    env = subprocess_env(env)
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_stages_in_separate_processes_form_one_trace(receiver: OtlpReceiver, protocol: str) -> None:
    # given
    endpoint = receiver.start_grpc() if protocol == "grpc" else receiver.start_http()
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
        "EDGELOOP_METRICS_PORT": "0",
    }

    # when
    traceparent = None
    for stage in ("capture", "infer", "select"):
        traceparent = run_stage(stage, traceparent, env)

    # then
    assert receiver.wait_for(lambda r: len(r.spans) >= 3)
    spans = {span.name: span for span in receiver.spans}
    assert {span.service for span in spans.values()} == {"capture", "infer", "select"}
    assert len({span.trace_id for span in spans.values()}) == 1
    assert spans["capture"].parent_span_id == ""
    assert spans["infer"].parent_span_id == spans["capture"].span_id
    assert spans["select"].parent_span_id == spans["infer"].span_id
    assert spans["infer"].attributes["file_ref"] == "cam/s1.jpg"
    assert spans["select"].is_named_by(traceparent)
    assert receiver.wait_for(lambda r: "edgeloop.test.stage" in r.metric_names("select"))


def test_disabled_sdk_exports_nothing_and_passes_the_trace_on(receiver: OtlpReceiver) -> None:
    # given
    endpoint = receiver.start_http()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "EDGELOOP_METRICS_PORT": "0"}
    first = run_stage("capture", None, env)

    # when
    passed = run_stage("infer", first, {**env, "OTEL_SDK_DISABLED": "true"})
    run_stage("select", passed, env)

    # then
    assert passed == first
    assert receiver.wait_for(lambda r: len(r.spans) >= 2)
    spans = {span.name: span for span in receiver.spans}
    assert set(spans) == {"capture", "select"}
    assert spans["select"].parent_span_id == spans["capture"].span_id


def test_an_unreachable_collector_does_not_fail_the_process() -> None:
    # given: nothing listens there
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "1",
        "EDGELOOP_METRICS_PORT": "0",
    }

    # when
    traceparent = run_stage("capture", None, env)

    # then
    assert traceparent.startswith("00-")
