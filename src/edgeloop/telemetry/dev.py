"""Metrics ports when every module runs on one host (``edgeloop dev up``).

In containers every module serves ``/metrics`` on the same port (9600) at its own address;
as processes on one host they need one port each. ``dev up`` assigns them from
``EDGELOOP_METRICS_PORT`` (the base, default 9600: the modules get base+1, base+2, ... in name
order; 0 turns the endpoints off), binds them to 127.0.0.1, prints them and writes them to
its state folder, where ``edgeloop dev metrics <module>`` reads them.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path

from edgeloop.errors import EdgeLoopError
from edgeloop.telemetry.settings import DEFAULT_METRICS_PORT, parse_port

#: File in the dev state folder mapping each module to its metrics URL.
PORTS_FILE = "metrics-ports.json"


class MetricsUnavailableError(EdgeLoopError):
    """A module's metrics endpoint is not known or does not answer."""


def assign_metrics_ports(modules: Iterable[str], environ: Mapping[str, str]) -> dict[str, int]:
    """One port per module, from the base in ``EDGELOOP_METRICS_PORT``; {} when it is 0.

    Raises:
        TelemetryConfigError: ``EDGELOOP_METRICS_PORT`` is not a port, or the modules' ports
            would pass 65535.
    """
    base = parse_port(environ, "EDGELOOP_METRICS_PORT", DEFAULT_METRICS_PORT)
    if base == 0:
        return {}
    names = sorted(set(modules))
    parse_port({"EDGELOOP_METRICS_PORT": str(base + len(names))}, "EDGELOOP_METRICS_PORT", 0)
    return {name: base + 1 + i for i, name in enumerate(names)}


def module_metrics_env(port: int | None) -> dict[str, str]:
    """The environment that gives one module process its own endpoint on 127.0.0.1."""
    return {"EDGELOOP_METRICS_PORT": str(port or 0), "EDGELOOP_METRICS_HOST": "127.0.0.1"}


def metrics_url(port: int) -> str:
    return f"http://127.0.0.1:{port}/metrics"


def write_ports(state_dir: Path, ports: Mapping[str, int]) -> Path:
    path = state_dir / PORTS_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({name: metrics_url(port) for name, port in ports.items()}, indent=2))
    return path


def read_url(state_dir: Path, module: str) -> str:
    """The metrics URL ``dev up`` gave ``module``.

    Raises:
        MetricsUnavailableError: ``dev up`` has not written the ports file, or not for ``module``.
    """
    path = state_dir / PORTS_FILE
    try:
        urls = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise MetricsUnavailableError(
            f"no metrics ports in {path}: start the modules with 'edgeloop dev up' "
            "(with EDGELOOP_METRICS_PORT not 0)"
        ) from exc
    if module not in urls:
        known = ", ".join(sorted(urls)) or "none"
        raise MetricsUnavailableError(f"module {module!r} has no metrics endpoint (modules: {known})")
    return str(urls[module])


def scrape(url: str, timeout: float = 5.0) -> str:
    """The Prometheus text at ``url``.

    Raises:
        MetricsUnavailableError: nothing answers there (the module is not running, or restarting).
    """
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return bytes(response.read()).decode("utf-8")
    except (OSError, urllib.error.URLError) as exc:
        raise MetricsUnavailableError(f"no answer from {url}: {exc}; is the module running?") from exc
