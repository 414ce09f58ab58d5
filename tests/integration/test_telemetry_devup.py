"""``edgeloop dev up`` gives every module its own /metrics port on the one host, prints it,
and ``edgeloop dev metrics <module>`` prints that module's scrape."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgeloop.devhub.control import ControlClient
from edgeloop.devhub.paths import StatePaths
from edgeloop.telemetry.dev import PORTS_FILE
from tests.conftest import subprocess_env
from tests.integration.test_devhub_up import checkout, module_connected, start_dev_up
from tests.support import wait_for
from tests.unit.test_telemetry import free_port

pytestmark = pytest.mark.integration


def test_dev_up_gives_each_module_a_metrics_port_and_dev_metrics_scrapes_it(
    tmp_path: Path, loopback_address: str
) -> None:
    # given: a checkout with one module built from it (echo) and one external image
    root = checkout(tmp_path)
    state = tmp_path / "state"
    (state / "volumes" / "data" / "echo").mkdir(parents=True)
    base = free_port()
    env = subprocess_env({"EDGELOOP_METRICS_PORT": str(base)})
    up = start_dev_up(root, state, loopback_address, env)
    client = ControlClient(StatePaths.of(state).control_socket)

    def connected() -> bool:
        return module_connected(client, "echo")

    try:
        wait_for(connected, 60, "echo to connect")

        # when
        scrape = subprocess.run(
            [sys.executable, "-m", "edgeloop", "dev", "metrics", "echo", "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        unknown = subprocess.run(
            [sys.executable, "-m", "edgeloop", "dev", "metrics", "external", "--state-dir", str(state)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        up.send_signal(signal.SIGINT)
        output, _ = up.communicate(timeout=60)

    # then: the port was printed and recorded, and the scrape parses as Prometheus text
    url = f"http://127.0.0.1:{base + 1}/metrics"
    assert f"echo: metrics on {url}" in output, output
    assert json.loads((state / PORTS_FILE).read_text()) == {"echo": url}
    assert scrape.returncode == 0, scrape.stderr
    families = {family.name: family for family in text_string_to_metric_families(scrape.stdout)}
    assert families["target_info"].samples[0].labels["service_name"] == "echo"
    assert "edgeloop_module_events" in families
    assert unknown.returncode == 1
    assert "no metrics endpoint" in unknown.stderr
