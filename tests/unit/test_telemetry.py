"""Telemetry: settings from the environment, traceparent helpers, stage spans, the metrics
facade, the Prometheus endpoint and the bounded export path, against in-memory exporters."""

from __future__ import annotations

import logging
import socket
import threading
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.parser import text_string_to_metric_families

from edgeloop import telemetry
from edgeloop.telemetry import Telemetry, TelemetryConfigError, TelemetrySettings
from edgeloop.telemetry.settings import SignalExport

TP = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class Recorder:
    """One process's telemetry with in-memory destinations, put in force for a test."""

    def __init__(self, settings: TelemetrySettings | None = None, **kwargs: Any) -> None:
        self.spans = InMemorySpanExporter()
        self.reader = InMemoryMetricReader()
        self.telemetry = Telemetry(
            settings or TelemetrySettings(service_name="test"),
            span_exporter=self.spans,
            metric_reader=self.reader,
            **kwargs,
        )

    def finished(self) -> list[ReadableSpan]:
        self.telemetry.flush()
        return list(self.spans.get_finished_spans())

    def points(self, name: str) -> list[tuple[dict[str, Any], Any]]:
        data = self.reader.get_metrics_data()
        found: list[tuple[dict[str, Any], Any]] = []
        for resource_metrics in data.resource_metrics if data else []:
            for scope in resource_metrics.scope_metrics:
                for metric in scope.metrics:
                    if metric.name == name:
                        found.extend((dict(p.attributes or {}), p) for p in metric.data.data_points)
        return found


@pytest.fixture
def rec() -> Iterator[Recorder]:
    recorder = Recorder()
    telemetry.setup(recorder.telemetry)
    yield recorder
    telemetry.shutdown()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- settings ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("env", "traces", "metrics"),
    [
        ({}, SignalExport(), SignalExport()),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4318/"},
            SignalExport("otlp", "http/protobuf", "http://jaeger:4318/v1/traces"),
            SignalExport("otlp", "http/protobuf", "http://jaeger:4318/v1/metrics"),
        ),
        (
            {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"},
            SignalExport("otlp", "grpc", "http://jaeger:4317"),
            SignalExport("otlp", "grpc", "http://jaeger:4317"),
        ),
        (
            {
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t:4318/custom",
                "OTEL_METRICS_EXPORTER": "none",
                "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318",
            },
            SignalExport("otlp", "http/protobuf", "http://t:4318/custom"),
            SignalExport("none", "http/protobuf", None),
        ),
        (
            {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc"},
            SignalExport("otlp", "grpc", "http://localhost:4317"),
            SignalExport(),
        ),
        ({"OTEL_TRACES_EXPORTER": "console"}, SignalExport("console"), SignalExport()),
    ],
)
def test_settings_choose_exporters_like_the_specification(
    env: dict[str, str], traces: SignalExport, metrics: SignalExport
) -> None:
    # when
    settings = TelemetrySettings.from_env(env)

    # then
    assert settings.traces == traces
    assert settings.metrics == metrics


@pytest.mark.parametrize(
    ("env", "enabled", "service", "port"),
    [
        ({}, True, "capture", 9600),
        ({"OTEL_SDK_DISABLED": "TRUE"}, False, "capture", 9600),
        ({"OTEL_SDK_DISABLED": "yes"}, True, "capture", 9600),
        ({"OTEL_SERVICE_NAME": "cam-a", "EDGELOOP_METRICS_PORT": "0"}, True, "cam-a", 0),
        (
            {"OTEL_RESOURCE_ATTRIBUTES": "service.name=r, site=plant-3", "EDGELOOP_METRICS_PORT": "9611"},
            True,
            "r",
            9611,
        ),
    ],
)
def test_settings_read_switches_names_and_ports(
    env: dict[str, str], enabled: bool, service: str, port: int
) -> None:
    # when
    settings = TelemetrySettings.from_env(env, default_service_name="capture")

    # then
    assert (settings.enabled, settings.service_name, settings.metrics_port) == (enabled, service, port)


@pytest.mark.parametrize(
    ("env", "host"), [({}, "127.0.0.1"), ({"EDGELOOP_METRICS_HOST": "0.0.0.0"}, "0.0.0.0")]
)
def test_metrics_endpoint_binds_loopback_unless_told(env: dict[str, str], host: str) -> None:
    assert TelemetrySettings.from_env(env).metrics_host == host


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}, "OTEL_EXPORTER_OTLP_PROTOCOL"),
        ({"OTEL_TRACES_EXPORTER": "jaeger"}, "OTEL_TRACES_EXPORTER"),
        ({"EDGELOOP_METRICS_PORT": "70000"}, "EDGELOOP_METRICS_PORT"),
        ({"EDGELOOP_METRICS_PORT": "http"}, "EDGELOOP_METRICS_PORT"),
        ({"OTEL_RESOURCE_ATTRIBUTES": "novalue"}, "OTEL_RESOURCE_ATTRIBUTES"),
        ({"OTEL_METRICS_EXEMPLAR_FILTER": "sometimes"}, "OTEL_METRICS_EXEMPLAR_FILTER"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    # when / then
    with pytest.raises(TelemetryConfigError, match=named):
        TelemetrySettings.from_env(env)


def test_setup_from_env_with_a_bad_variable_runs_without_export(caplog: pytest.LogCaptureFixture) -> None:
    # given
    env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:1"}

    # when
    with caplog.at_level(logging.ERROR):
        tel = telemetry.setup_from_env("capture", env=env)
    try:
        # then
        assert tel.enabled
        assert tel.settings.traces.exporter == "none"
        assert "OTEL_EXPORTER_OTLP_PROTOCOL" in caplog.text
    finally:
        telemetry.shutdown()


# -- traceparent ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
    ],
)
def test_invalid_traceparents_are_refused(value: str | None) -> None:
    # when / then
    assert telemetry.parse_traceparent(value) is None


def test_traceparent_round_trips() -> None:
    # when
    context = telemetry.parse_traceparent(TP)

    # then
    assert context is not None
    assert context.is_remote
    assert telemetry.format_traceparent(context) == TP


def test_a_later_version_may_carry_more_fields() -> None:
    # when
    context = telemetry.parse_traceparent(TP.replace("00-", "01-", 1) + "-what-comes-next")

    # then
    assert context is not None
    assert context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [({"traceparent": TP}, TP), ({"TraceParent": TP}, TP), ({"other": "x"}, None), (None, None)],
)
def test_traceparent_of_reads_properties_and_metadata(mapping: dict[str, str] | None, expected: str) -> None:
    assert telemetry.traceparent_of(mapping) == expected


# -- stage spans ------------------------------------------------------------------------------
def test_stage_span_continues_the_incoming_trace(rec: Recorder) -> None:
    # when
    with telemetry.stage_span("infer", TP, {"model_name": "digits"}) as stage:
        stage.set("confidence", 0.42)
        outgoing = stage.traceparent

    # then
    (span,) = rec.finished()
    assert span.name == "infer"
    assert span.context.trace_id == 0x0AF7651916CD43DD8448EB211C80319C
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331
    assert span.attributes == {"model_name": "digits", "confidence": 0.42}
    assert outgoing == f"00-{span.context.trace_id:032x}-{span.context.span_id:016x}-01"


def test_four_stages_chained_by_traceparent_form_one_trace(rec: Recorder) -> None:
    # given
    traceparent = None

    # when
    for name in ("capture", "infer", "select", "upload"):
        with telemetry.stage_span(name, traceparent) as stage:
            traceparent = stage.traceparent

    # then
    spans = {span.name: span for span in rec.finished()}
    assert len({span.context.trace_id for span in spans.values()}) == 1
    assert spans["capture"].parent is None
    assert spans["infer"].parent.span_id == spans["capture"].context.span_id  # type: ignore[union-attr]
    assert spans["upload"].parent.span_id == spans["select"].context.span_id  # type: ignore[union-attr]


def test_nested_stage_without_traceparent_is_a_child_of_the_open_one(rec: Recorder) -> None:
    # when
    with telemetry.stage_span("upload", TP), telemetry.stage_span("encrypt"):
        pass

    # then
    spans = {span.name: span for span in rec.finished()}
    assert spans["encrypt"].parent.span_id == spans["upload"].context.span_id  # type: ignore[union-attr]


def test_an_invalid_traceparent_starts_a_new_trace_and_is_counted(rec: Recorder) -> None:
    # when
    with telemetry.stage_span("infer", "not-a-traceparent") as stage:
        pass

    # then
    (span,) = rec.finished()
    assert span.parent is None
    assert stage.traceparent is not None
    assert rec.telemetry.stats.get("traceparent_invalid") == 1


def test_an_exception_marks_the_span_and_propagates(rec: Recorder) -> None:
    # when
    with pytest.raises(RuntimeError, match="disk full"), telemetry.stage_span("claim", TP):
        raise RuntimeError("disk full")

    # then
    (span,) = rec.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert [event.name for event in span.events] == ["exception"]


def test_fail_marks_a_dropped_sample_without_raising(rec: Recorder) -> None:
    # when
    with telemetry.stage_span("select", TP) as stage:
        stage.fail("budget exhausted")

    # then
    (span,) = rec.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "budget exhausted"


def test_record_stage_keeps_the_batch_times(rec: Recorder) -> None:
    # when
    outgoing = telemetry.record_stage("infer", TP, start_ns=1_000, end_ns=5_000, attributes={"batch": 8})

    # then
    (span,) = rec.finished()
    assert (span.start_time, span.end_time) == (1_000, 5_000)
    assert span.parent is not None
    assert span.parent.span_id == 0xB7AD6B7169203331
    assert outgoing == telemetry.format_traceparent(span.context)


def test_record_stage_can_mark_a_sample_failed(rec: Recorder) -> None:
    # when
    telemetry.record_stage("infer", TP, start_ns=1, end_ns=2, error="cannot decode s1.jpg")

    # then
    (span,) = rec.finished()
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "cannot decode s1.jpg"


@pytest.mark.parametrize("incoming", [TP, None, "garbage"])
def test_disabled_telemetry_passes_a_valid_traceparent_through(incoming: str | None) -> None:
    # given
    recorder = Recorder(TelemetrySettings(enabled=False))
    telemetry.setup(recorder.telemetry)
    try:
        # when
        with telemetry.stage_span("infer", incoming) as stage:
            stage.set("confidence", 0.5)
        recorded = telemetry.record_stage("infer", incoming, start_ns=1, end_ns=2)

        # then
        expected = TP if incoming == TP else None
        assert (stage.traceparent, recorded) == (expected, expected)
        assert recorder.finished() == []
    finally:
        telemetry.shutdown()


@pytest.mark.parametrize("incoming", [TP, None, "garbage"])
def test_without_a_span_exporter_no_span_is_made_and_the_trace_passes_through(incoming: str | None) -> None:
    # given: telemetry on (metrics go to their reader) but no span exporter configured
    reader = InMemoryMetricReader()
    tel = Telemetry(TelemetrySettings(service_name="test"), metric_reader=reader)
    telemetry.setup(tel)
    try:
        # when
        with telemetry.stage_span("infer", incoming) as stage:
            telemetry.metrics.counter("edgeloop.test.untraced").add(1)
        recorded = telemetry.record_stage("infer", incoming, start_ns=1, end_ns=2)

        # then: the incoming trace goes on unchanged, and metrics are still recorded
        expected = TP if incoming == TP else None
        assert (tel.enabled, tel.tracing) == (True, False)
        assert (stage.traceparent, recorded) == (expected, expected)
        data = reader.get_metrics_data()
        names = [m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics]
        assert "edgeloop.test.untraced" in names
    finally:
        telemetry.shutdown()


def test_a_span_exporter_makes_each_stage_a_span_of_its_own(rec: Recorder) -> None:
    # when
    recorded = telemetry.record_stage("infer", TP, start_ns=1, end_ns=2)

    # then
    assert rec.telemetry.tracing
    assert recorded is not None
    assert recorded.split("-")[2] != TP.split("-")[2]


def test_without_setup_nothing_is_recorded_and_nothing_fails() -> None:
    # when
    with telemetry.stage_span("capture") as stage:
        telemetry.metrics.counter("edgeloop.test.unset").add(1)

    # then
    assert stage.traceparent is None
    assert not telemetry.current().enabled


# -- metrics ----------------------------------------------------------------------------------
def test_counter_histogram_gauge_and_observed_values(rec: Recorder) -> None:
    # when
    telemetry.metrics.counter("edgeloop.test.selected").add(2, {"strategy": "margin"})
    telemetry.metrics.counter("edgeloop.test.selected").add(1, {"strategy": "margin"})
    telemetry.metrics.histogram("edgeloop.test.latency").record(0.02)
    telemetry.metrics.gauge("edgeloop.test.window_open").set(1)
    telemetry.metrics.observe("edgeloop.test.outbox_depth", lambda: [(3, {"state": "queued"})])

    # then
    assert [(a, p.value) for a, p in rec.points("edgeloop.test.selected")] == [({"strategy": "margin"}, 3)]
    ((_, hist),) = rec.points("edgeloop.test.latency")
    assert (hist.count, hist.sum, hist.explicit_bounds[0]) == (1, 0.02, 0.001)
    assert [p.value for _, p in rec.points("edgeloop.test.window_open")] == [1]
    assert [(a, p.value) for a, p in rec.points("edgeloop.test.outbox_depth")] == [({"state": "queued"}, 3)]


def test_counts_made_before_setup_are_reported_after_it() -> None:
    # given
    counter = telemetry.metrics.counter("edgeloop.test.early")
    counter.add(5)  # nothing in force yet
    histogram = telemetry.metrics.histogram("edgeloop.test.early_latency")
    histogram.record(0.5)  # nothing in force: not recorded
    telemetry.metrics.observe("edgeloop.test.early_gauge", lambda: 9)
    recorder = Recorder()
    telemetry.setup(recorder.telemetry)
    try:
        # when
        counter.add(1)
        histogram.record(0.2)

        # then
        assert [p.value for _, p in recorder.points("edgeloop.test.early")] == [6]
        assert [p.count for _, p in recorder.points("edgeloop.test.early_latency")] == [1]
        assert [p.value for _, p in recorder.points("edgeloop.test.early_gauge")] == [9]
    finally:
        telemetry.shutdown()
        telemetry.metrics.forget("edgeloop.test.early_gauge")


def test_attribute_order_does_not_split_a_series(rec: Recorder) -> None:
    # when
    telemetry.metrics.counter("edgeloop.test.order").add(1, {"module": "filter", "reason": "budget"})
    telemetry.metrics.counter("edgeloop.test.order").add(2, {"reason": "budget", "module": "filter"})
    telemetry.metrics.counter("edgeloop.test.order").add(-4, {"reason": "budget", "module": "filter"})

    # then
    assert [p.value for _, p in rec.points("edgeloop.test.order")] == [3]


def test_counters_are_safe_from_many_threads(rec: Recorder) -> None:
    # given
    counter = telemetry.metrics.counter("edgeloop.test.threads")

    def work() -> None:
        for _ in range(2000):
            counter.add(1, {"t": "x"})

    threads = [threading.Thread(target=work) for _ in range(4)]

    # when
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    # then
    assert [p.value for _, p in rec.points("edgeloop.test.threads")] == [8000]


def test_forgotten_and_failing_callbacks_report_nothing(rec: Recorder) -> None:
    # given
    def broken() -> float:
        raise OSError("volume gone")

    telemetry.metrics.observe("edgeloop.test.volume_use", broken)
    telemetry.metrics.observe("edgeloop.test.forgotten", lambda: 1)
    telemetry.metrics.forget("edgeloop.test.forgotten")

    # when
    points = rec.points("edgeloop.test.volume_use") + rec.points("edgeloop.test.forgotten")

    # then
    assert points == []


def test_one_name_is_one_kind_of_instrument() -> None:
    # given
    telemetry.metrics.counter("edgeloop.test.kind")

    # when / then
    with pytest.raises(ValueError, match=r"edgeloop\.test\.kind"):
        telemetry.metrics.gauge("edgeloop.test.kind")


# -- Prometheus -------------------------------------------------------------------------------
def test_metrics_endpoint_serves_prometheus_text() -> None:
    # given
    port = free_port()
    recorder = Recorder(TelemetrySettings(service_name="filter", metrics_port=port, metrics_host="127.0.0.1"))
    telemetry.setup(recorder.telemetry)
    try:
        telemetry.metrics.counter("edgeloop.test.scraped", unit="By").add(1024, {"container": "data"})

        # when
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
            text = response.read().decode()

        # then
        assert recorder.telemetry.metrics_url == f"http://127.0.0.1:{port}/metrics"
        families = {family.name: family for family in text_string_to_metric_families(text)}
        (sample,) = families["edgeloop_test_scraped_bytes"].samples
        assert (sample.labels, sample.value) == ({"container": "data"}, 1024.0)
        assert families["target_info"].samples[0].labels["service_name"] == "filter"
        assert "edgeloop_telemetry_spans_dropped" in families
    finally:
        telemetry.shutdown()


def test_a_taken_port_is_logged_and_nothing_fails(caplog: pytest.LogCaptureFixture) -> None:
    # given
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # when
        with caplog.at_level(logging.WARNING):
            tel = Telemetry(TelemetrySettings(metrics_port=port, metrics_host="127.0.0.1"))

    # then
    assert tel.metrics_url is None
    assert "EDGELOOP_METRICS_PORT" in caplog.text
    assert b"edgeloop_telemetry_spans_dropped" in tel.render_prometheus()
    tel.shutdown()


# -- bounded export ---------------------------------------------------------------------------
class StuckExporter(SpanExporter):
    """A collector that never answers until released."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.entered = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.entered.set()
        self.release.wait(30)
        return SpanExportResult.FAILURE

    def shutdown(self) -> None:
        self.release.set()


def test_a_stuck_collector_drops_and_counts_spans_instead_of_blocking() -> None:
    # given
    stuck = StuckExporter()
    tel = Telemetry(TelemetrySettings(), span_exporter=stuck, span_queue_size=4)
    with tel.stage_span("first"):
        pass
    tel_flush = threading.Thread(target=tel.flush, daemon=True)
    tel_flush.start()
    assert stuck.entered.wait(10)

    # when: the exporter is stuck on the first span; four fit in the queue
    for i in range(10):
        with tel.stage_span(f"sample-{i}"):
            pass

    # then
    assert tel.stats.get("spans_dropped") == 6
    stuck.release.set()
    tel.shutdown(timeout=5)
    assert tel.stats.get("spans_export_failed") >= 1


def test_an_unreachable_collector_is_counted_and_shutdown_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    # given: nothing listens on the port
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    endpoint = f"http://127.0.0.1:{free_port()}"
    settings = TelemetrySettings.from_env(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "EDGELOOP_METRICS_PORT": "0"}
    )
    tel = Telemetry(settings)

    # when
    with tel.stage_span("capture"):
        pass
    tel.flush(timeout=5)
    tel.shutdown(timeout=5)

    # then
    assert tel.stats.get("spans_export_failed") == 1
    assert tel.stats.get("metric_exports_failed") >= 1
