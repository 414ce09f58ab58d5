"""Fixtures for integration tests: dev hubs on their own loopback addresses, modules as processes.

def test_something(dev_hub, module_process):
    hub = dev_hub(manifest_doc)                      # started, stopped at teardown
    proc = module_process(hub, "filter")             # python -m edgeloop_filter, as module "filter"
    hub.wait_connected("filter")
    assert hub.invoke("filter", "getStats")["status"] == 200
"""

from __future__ import annotations

import errno
import itertools
import os
import random
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devhub.testing import MQTT_PORT, HubProcess, ModuleProcess
from edgeloop.keys import KeySet, init_keys
from tests.conftest import REPO_ROOT, subprocess_env

# A random start: several pytest processes (other checkouts, other suites) share this machine.
_counter = itertools.count(random.randrange(250 * 200))


def _worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    digits = "".join(ch for ch in worker if ch.isdigit())
    return int(digits or 0) % 200


def _free(address: str) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, MQTT_PORT))
        except OSError:
            return False
    return True


def next_loopback_address() -> str:
    """A loopback address whose port 8883 is free: 127.<worker+20>.<n/250 % 200>.<n%250+2>.

    Hubs bind port 8883 (fixed by the SDK), so each hub gets its own address; distinct
    addresses also keep one test's TIME_WAIT sockets out of the next test's way.
    """
    for _ in range(50):
        n = next(_counter)
        address = f"127.{_worker_index() + 20}.{(n // 250) % 200}.{n % 250 + 2}"
        if _free(address):
            return address
    raise RuntimeError("no free loopback address for a dev hub")


@pytest.fixture
def loopback_address() -> str:
    return next_loopback_address()


HubFactory = Callable[..., HubProcess]
ModuleFactory = Callable[..., ModuleProcess]


@pytest.fixture
def dev_hub(tmp_path: Path) -> Iterator[HubFactory]:
    """``dev_hub(manifest, *, name="hub", address=None, extra_args=None) -> HubProcess`` (started)."""
    hubs: list[HubProcess] = []

    def start(
        manifest: Mapping[str, Any] | Path,
        *,
        name: str = "hub",
        address: str | None = None,
        extra_args: list[str] | None = None,
    ) -> HubProcess:
        for attempt in range(5):
            hub = HubProcess(
                address=address or next_loopback_address(),
                manifest=manifest,
                state_dir=tmp_path / name,
                env=subprocess_env(),
                extra_args=extra_args,
            )
            hubs.append(hub)
            try:
                return hub.start()
            except OSError as exc:  # another process took the address since it was picked
                if address is not None or exc.errno != errno.EADDRINUSE or attempt == 4:
                    raise
                hubs.remove(hub)
                hub.close()
        raise AssertionError("unreachable")

    yield start
    for hub in hubs:
        hub.close()


@pytest.fixture
def module_process(tmp_path: Path) -> Iterator[ModuleFactory]:
    """``module_process(hub, module_id, *, package=None, env=None) -> ModuleProcess`` (started).

    Runs ``python -m edgeloop_<module_id>`` (or ``package``) with the checkout on PYTHONPATH
    and the module's environment from the hub; stops it (SIGTERM) at teardown.
    """
    procs: list[ModuleProcess] = []

    def start(
        hub: HubProcess, module_id: str, *, package: str | None = None, env: Mapping[str, str] | None = None
    ) -> ModuleProcess:
        full_env = subprocess_env({**hub.module_env(module_id), **(env or {})})
        proc = ModuleProcess.python_module(
            package or f"edgeloop_{module_id}",
            env=full_env,
            log_path=tmp_path / "logs" / f"{module_id}-{len(procs)}.log",
            cwd=REPO_ROOT,
        )
        procs.append(proc)
        return proc.start()

    yield start
    for proc in procs:
        proc.stop()


@pytest.fixture
def keys(tmp_path: Path) -> KeySet:
    """Envelope and model-signing key pairs made for this test."""
    return init_keys(tmp_path / "keys")
