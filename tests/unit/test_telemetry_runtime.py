"""The runtime's telemetry: set up by ``run_module`` from the environment, the runtime's
counters as metrics on ``/metrics``, and shut down when the module stops."""

from __future__ import annotations

import os
import signal
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeloop import telemetry
from edgeloop.runtime import ModuleContext, run_module
from edgeloop.runtime.fake import FakeHubClient
from edgeloop.telemetry.names import M_MODULE_CONFIG_VERSION, M_MODULE_EVENTS, M_MODULE_PAUSED
from edgeloop.telemetry.runtime_metrics import forget_runtime, observe_runtime
from tests.unit.test_runtime import EchoConfig, EchoModule, Running, frame, wait_for
from tests.unit.test_telemetry import Recorder, free_port


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    telemetry.setup(recorder.telemetry)
    yield recorder
    telemetry.shutdown()
    forget_runtime()


def test_runtime_counters_and_state_are_metrics(rec: Recorder) -> None:
    # given
    with Running({"threshold": 0.7}) as running:
        observe_runtime(running.runtime)

        # when
        running.hub.push_input("in", [frame(1), frame(2)])
        wait_for(lambda: len(running.hub.sent) == 1)
        running.hub.call_method("pause")

        # then
        events = {a["event"]: p.value for a, p in rec.points(M_MODULE_EVENTS)}
        assert events["messages_in"] == 1
        assert events["items_out"] == 2
        assert events["method_calls"] == 1
        assert [p.value for _, p in rec.points(M_MODULE_PAUSED)] == [1]
        assert [p.value for _, p in rec.points(M_MODULE_CONFIG_VERSION)] == [1]


class ScrapingModule(EchoModule):
    """Scrapes its own /metrics once started, then asks to be stopped as edgeAgent would."""

    def __init__(self, url: str) -> None:
        super().__init__()
        self.url = url
        self.scrape = ""
        self.tracing_on = False

    def start(self, ctx: ModuleContext[EchoConfig]) -> None:
        super().start(ctx)
        self.tracing_on = telemetry.current().enabled
        with urllib.request.urlopen(self.url, timeout=10) as response:
            self.scrape = response.read().decode()
        os.kill(os.getpid(), signal.SIGTERM)


def test_run_module_sets_telemetry_up_from_the_environment_and_shuts_it_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # given
    port = free_port()
    monkeypatch.setenv("EDGELOOP_METRICS_PORT", str(port))
    monkeypatch.setenv("EDGELOOP_METRICS_HOST", "127.0.0.1")
    monkeypatch.setenv("IOTEDGE_MODULEID", "echo1")
    module = ScrapingModule(f"http://127.0.0.1:{port}/metrics")
    previous = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    # when
    try:
        code = run_module(module, client=FakeHubClient())
    finally:
        signal.signal(signal.SIGTERM, previous[0])
        signal.signal(signal.SIGINT, previous[1])

    # then
    assert code == 0
    assert module.tracing_on
    families = {family.name: family for family in text_string_to_metric_families(module.scrape)}
    assert families["target_info"].samples[0].labels["service_name"] == "echo1"
    events = {s.labels["event"]: s.value for s in families["edgeloop_module_events"].samples}
    assert events["messages_in"] == 0
    assert families["edgeloop_module_paused"].samples[0].value == 0
    assert not telemetry.current().enabled
