"""Helpers for integration tests: a real dev hub in a child process and modules as processes.

    hub = HubProcess(address="127.77.0.2", manifest=doc, state_dir=tmp_path / "hub", env=env)
    hub.start()
    module = ModuleProcess.python_module("edgeloop_filter", env={**env, **hub.module_env("filter")})
    module.start()
    hub.wait_connected("filter")
    assert hub.invoke("filter", "getStats")["status"] == 200
    module.stop(); hub.close()

The hub runs through the CLI (``python -m edgeloop dev hub``), so tests exercise the real
thing. The test process owns the listening socket and hands it to the hub (``--listen-fd``):
across ``restart()`` it keeps accepting connections into its backlog, so an SDK that
reconnects at once lands on the new hub instead of waiting out its 10 s retry interval.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edgeloop.devhub.control import ControlClient, ControlError
from edgeloop.devhub.paths import StatePaths
from edgeloop.errors import EdgeLoopError

MQTT_PORT = 8883


class HubTestError(EdgeLoopError):
    """The hub or a module process did not come up as expected."""


def default_env() -> dict[str, str]:
    """This environment with PYTHONPATH set so a child imports the same ``edgeloop``."""
    import edgeloop

    src = str(Path(edgeloop.__file__).resolve().parents[1])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def _wait(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise HubTestError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(interval)


def terminate(proc: subprocess.Popen[Any] | None, timeout: float) -> int | None:
    """SIGTERM, wait up to ``timeout``, then SIGKILL; the exit code (None when there was none)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return proc.returncode


class HubProcess:
    """A dev hub child process on ``address`` (a loopback address, port 8883)."""

    def __init__(
        self,
        *,
        address: str,
        manifest: Mapping[str, Any] | Path | str,
        state_dir: Path,
        env: Mapping[str, str] | None = None,
        python: str = sys.executable,
        extra_args: list[str] | None = None,
    ) -> None:
        self.address = address
        self.state_dir = Path(state_dir)
        self.paths = StatePaths.of(self.state_dir)
        self.env = dict(env) if env is not None else default_env()
        self.python = python
        self.extra_args = list(extra_args or [])
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if isinstance(manifest, Mapping):
            self.manifest_path = self.state_dir / "manifest.json"
            self.manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        else:
            self.manifest_path = Path(manifest)
        self.log_path = self.state_dir / "hub.log"
        self.control = ControlClient(self.paths.control_socket, timeout=30.0)
        self._sock: socket.socket | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> HubProcess:
        if self._sock is None:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((self.address, MQTT_PORT))
                sock.listen(128)
            except OSError:
                sock.close()
                raise
            self._sock = sock
        fd = self._sock.fileno()
        command = [
            self.python, "-m", "edgeloop", "dev", "hub",
            "--manifest", str(self.manifest_path),
            "--state-dir", str(self.state_dir),
            "--bind", self.address,
            "--listen-fd", str(fd),
            *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                command, env=self.env, stdout=log, stderr=subprocess.STDOUT, pass_fds=(fd,)
            )
        proc = self._proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise HubTestError(f"the hub exited with {proc.returncode}:\n{self.log_tail()}")
            try:
                self.control.status()
            except ControlError:
                return False
            return True

        _wait(ready, timeout, f"the hub on {self.address} to answer")
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM and wait; the listening socket stays open for ``start`` again."""
        proc, self._proc = self._proc, None
        return terminate(proc, timeout)

    def kill(self) -> None:
        """SIGKILL: a crash, nothing flushed beyond what was committed."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(5)

    def restart(self, *, crash: bool = False, timeout: float = 30.0) -> HubProcess:
        if crash:
            self.kill()
        else:
            self.stop()
        return self.start(timeout)

    def close(self) -> None:
        self.stop()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise HubTestError("the hub is not running")
        return self._proc.pid

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(
                self.log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:]
            )
        except OSError:
            return ""

    # -- what tests ask -------------------------------------------------------------------
    def module_env(self, module_id: str) -> dict[str, str]:
        """``IOTEDGE_*`` and the manifest's env for running a process as ``module_id``."""
        return self.control.env(module_id)

    def invoke(
        self,
        module: str,
        method: str,
        payload: Any = None,
        timeout: float = 10.0,
        *,
        raw: bytes | None = None,
    ) -> dict[str, Any]:
        """``{"status": int, "payload": ...}``; ``raw`` sends bytes as they are (not JSON-encoded)."""
        body = raw if raw is not None else json.dumps(payload).encode()
        return self.control.invoke(module, method, body, timeout)

    def twin(self, module: str) -> dict[str, Any]:
        return self.control.twin(module)

    def patch_desired(self, module: str, patch: dict[str, Any]) -> dict[str, Any]:
        return self.control.patch_desired(module, patch)

    def upstream(self, after: int = 0) -> list[dict[str, Any]]:
        return self.control.upstream(after)

    def status(self) -> dict[str, Any]:
        return self.control.status()

    def wait_connected(self, module: str, timeout: float = 20.0, *, inputs: bool = False) -> None:
        """Until ``module`` is connected with its method handler (and inputs ready, if asked)."""

        def ready() -> bool:
            state = self.status()["modules"][module]
            subscribed = any(s.startswith("$iothub/methods") for s in state["subscriptions"])
            return bool(state["connected"] and subscribed and (state["inputsReady"] or not inputs))

        _wait(ready, timeout, f"module {module!r} to connect to the hub on {self.address}", interval=0.1)

    def wait_reported(self, module: str, predicate: Any, timeout: float = 20.0) -> dict[str, Any]:
        """Until ``predicate(reported)`` is true; returns the reported properties."""

        def check() -> dict[str, Any] | None:
            reported = self.twin(module)["properties"]["reported"]
            return reported if predicate(reported) else None

        result: dict[str, Any] = _wait(check, timeout, f"reported properties of {module!r}", interval=0.1)
        return result


class ModuleProcess:
    """A module (or any command) as a child process with its output in a log file."""

    def __init__(
        self, command: list[str], *, env: Mapping[str, str], log_path: Path, cwd: Path | None = None
    ) -> None:
        self.command = command
        self.env = dict(env)
        self.log_path = log_path
        self.cwd = cwd
        self._proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def python_module(
        cls,
        name: str,
        *,
        env: Mapping[str, str],
        log_path: Path,
        cwd: Path | None = None,
        python: str = sys.executable,
    ) -> ModuleProcess:
        """``python -m name``: ``edgeloop_<module>`` or a test module."""
        return cls([python, "-m", name], env=env, log_path=log_path, cwd=cwd)

    def start(self) -> ModuleProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.cwd
            )
        return self

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.poll()

    @property
    def pid(self) -> int:
        assert self._proc is not None, "not started"
        return self._proc.pid

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL after ``timeout``."""
        return terminate(self._proc, timeout)

    def kill(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(5)

    def wait(self, timeout: float) -> int:
        assert self._proc is not None
        return self._proc.wait(timeout)

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
