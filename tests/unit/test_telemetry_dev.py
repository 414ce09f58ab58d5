"""Metrics ports for modules sharing one host under ``edgeloop dev up``."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgeloop import telemetry
from edgeloop.telemetry import Telemetry, TelemetryConfigError, TelemetrySettings
from edgeloop.telemetry.dev import (
    MetricsUnavailableError,
    assign_metrics_ports,
    module_metrics_env,
    read_url,
    scrape,
    write_ports,
)
from tests.unit.test_telemetry import free_port

MODULES = ["uploader", "capture", "inference", "filter"]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, {"capture": 9601, "filter": 9602, "inference": 9603, "uploader": 9604}),
        (
            {"EDGELOOP_METRICS_PORT": "19000"},
            {"capture": 19001, "filter": 19002, "inference": 19003, "uploader": 19004},
        ),
        ({"EDGELOOP_METRICS_PORT": "0"}, {}),
    ],
)
def test_each_module_gets_its_own_port(environ: dict[str, str], expected: dict[str, int]) -> None:
    assert assign_metrics_ports(MODULES, environ) == expected


def test_ports_past_the_range_are_refused() -> None:
    with pytest.raises(TelemetryConfigError, match="EDGELOOP_METRICS_PORT"):
        assign_metrics_ports(MODULES, {"EDGELOOP_METRICS_PORT": "65533"})


def test_the_module_env_binds_to_loopback() -> None:
    # when
    settings = TelemetrySettings.from_env(module_metrics_env(9603))

    # then
    assert (settings.metrics_port, settings.metrics_host) == (9603, "127.0.0.1")
    assert TelemetrySettings.from_env(module_metrics_env(None)).metrics_port == 0


def test_written_ports_are_read_back_and_scraped(tmp_path: Path) -> None:
    # given
    port = free_port()
    tel = telemetry.setup(Telemetry(TelemetrySettings.from_env(module_metrics_env(port))))
    try:
        telemetry.metrics.counter("edgeloop.test.dev").add(3)
        write_ports(tmp_path, {"filter": port})

        # when
        text = scrape(read_url(tmp_path, "filter"))

        # then
        assert "edgeloop_test_dev_total 3.0" in text
        assert tel.metrics_url == read_url(tmp_path, "filter")
    finally:
        telemetry.shutdown()


@pytest.mark.parametrize(
    ("written", "says"), [(None, "edgeloop dev up"), ({"capture": 9601}, "modules: capture")]
)
def test_unknown_module_or_no_dev_up_says_what_to_do(
    tmp_path: Path, written: dict[str, int] | None, says: str
) -> None:
    # given
    if written is not None:
        write_ports(tmp_path, written)

    # when / then
    with pytest.raises(MetricsUnavailableError, match=says):
        read_url(tmp_path, "filter")


def test_scraping_a_stopped_module_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    with pytest.raises(MetricsUnavailableError, match="is the module running"):
        scrape(url, timeout=2)
