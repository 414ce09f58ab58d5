"""``edgeloop dev up``: the dev hub, Azurite and every module of the manifest as processes.

A module whose image is ``${MODULES.<name>}`` (or ``${MODULES.<name>.debug}``) runs as
``python -m edgeloop_<name>`` with this Python and the checkout's source folders on
PYTHONPATH; other images are skipped with a message. Each module gets the hub's ``IOTEDGE_*``
environment, its manifest env (bind-mount paths mapped to ``<state-dir>/volumes/...``), the
Azurite connection string and the ``OTEL_*``/``EDGELOOP_*`` variables of this environment.
Restart policies are honoured with exponential backoff; output goes to
``<state-dir>/logs/<module>.log`` (``edgeloop dev logs <module>``). A signal stops everything.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from edgeloop.devhub.app import DevHub, HubSettings
from edgeloop.devhub.manifest import Manifest, ModuleSpec
from edgeloop.devhub.paths import StatePaths
from edgeloop.telemetry.dev import metrics_url, module_metrics_env

if TYPE_CHECKING:
    from edgeloop.devtools.azurite import Azurite

log = logging.getLogger(__name__)

AZURITE_PORT = 10000
STORAGE_ENV = "EDGELOOP_STORAGE_CONNECTION_STRING"
_BASE_ENV = ("PATH", "HOME", "USER", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "SYSTEMROOT")
_PASS_PREFIXES = ("OTEL_", "EDGELOOP_")
_MAX_BACKOFF_SECS = 60.0
#: A run this long resets the backoff.
_HEALTHY_RUN_SECS = 30.0
_STOP_GRACE_SECS = 15.0

Printer = Callable[[str], None]


def _print(line: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {line}", flush=True)


def should_restart(policy: str, returncode: int) -> bool:
    """edgeAgent's rules; without health probes, on-unhealthy acts like on-failure."""
    if policy == "always":
        return True
    if policy in ("on-failure", "on-unhealthy"):
        return returncode != 0
    return False


def backoff(failures: int) -> float:
    return float(min(_MAX_BACKOFF_SECS, 2 ** max(0, failures - 1)))


def source_path(folder: Path) -> list[Path]:
    """The checkout's source folders: src, modules/<each>, cloud (those that exist)."""
    paths = [folder / "src"]
    modules = folder / "modules"
    if modules.is_dir():
        paths += sorted(p for p in modules.iterdir() if p.is_dir())
    paths.append(folder / "cloud")
    return [p for p in paths if p.is_dir()]


def process_env(
    module_env: Mapping[str, str], *, folder: Path, extra: Mapping[str, str], environ: Mapping[str, str]
) -> dict[str, str]:
    """A container-like environment: a few basics, OTEL_*/EDGELOOP_* passed through, the module's own."""
    env = {k: v for k, v in environ.items() if k in _BASE_ENV or k.startswith(_PASS_PREFIXES)}
    env.update(extra)
    env.update(module_env)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in source_path(folder))
    env["PYTHONUNBUFFERED"] = "1"
    return env


class ModuleRunner:
    """Runs one module process and restarts it by its policy until ``stop``."""

    def __init__(
        self,
        spec: ModuleSpec,
        *,
        command: list[str],
        env: dict[str, str],
        log_path: Path,
        cwd: Path,
        say: Printer,
    ) -> None:
        self.spec = spec
        self.command = command
        self.env = env
        self.log_path = log_path
        self.cwd = cwd
        self.say = say
        self.proc: asyncio.subprocess.Process | None = None
        self.starts = 0
        self._stopping = False
        self._wake = asyncio.Event()

    async def run(self) -> None:
        failures = 0
        while not self._stopping:
            started = time.monotonic()
            returncode = await self._run_once()
            if self._stopping:
                break
            if time.monotonic() - started >= _HEALTHY_RUN_SECS:
                failures = 0
            failures += 1
            exited = f"{self.spec.name}: exited with {returncode}{self._last_words(returncode)}"
            if not should_restart(self.spec.restart_policy, returncode):
                self.say(f"{exited}; restartPolicy {self.spec.restart_policy}")
                return
            delay = backoff(failures)
            self.say(f"{exited}; restarting in {delay:g}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _last_words(self, returncode: int) -> str:
        """The last line the process wrote, when it failed (often the reason)."""
        if returncode == 0:
            return ""
        try:
            with open(self.log_path, "rb") as log_file:
                log_file.seek(max(0, self.log_path.stat().st_size - 4096))
                lines = [line.strip() for line in log_file.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            return ""
        last = next((line for line in reversed(lines) if line), "")
        if len(last) > 160:
            last = last[:157] + "..."
        return f" ({last})" if last else ""

    async def _run_once(self) -> int:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as out:
            self.proc = await asyncio.create_subprocess_exec(
                *self.command,
                env=self.env,
                cwd=self.cwd,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,
            )
        self.starts += 1
        self.say(f"{self.spec.name}: running (pid {self.proc.pid})")
        return await self.proc.wait()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), _STOP_GRACE_SECS)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        self.say(f"{self.spec.name}: stopped ({proc.returncode})")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _start_azurite(hub: DevHub, say: Printer) -> tuple[Azurite | None, dict[str, str]]:
    from edgeloop.devtools.azurite import Azurite, AzuriteError

    paths = hub.paths
    port = AZURITE_PORT if _port_free("127.0.0.1", AZURITE_PORT) else None
    azurite = Azurite(paths.azurite, port=port)
    try:
        azurite.start()
    except AzuriteError as exc:
        say(f"azurite: not started ({exc}); modules get no {STORAGE_ENV}")
        hub.add_service("azurite", {"running": False, "reason": str(exc)})
        return None, {}
    if port is None:
        say(f"azurite: port {AZURITE_PORT} is taken, using {azurite.port}")
    say(f"azurite: listening on {azurite.blob_endpoint} (data in {paths.azurite})")
    hub.add_service("azurite", {"running": True, "blobEndpoint": azurite.blob_endpoint,
                                "dataDir": str(paths.azurite), "moduleEnv": STORAGE_ENV})  # fmt: skip
    return azurite, {STORAGE_ENV: azurite.connection_string}


async def _watch_connections(hub: DevHub, say: Printer) -> None:
    seen: dict[str, bool] = {}
    while True:
        if hub.broker is not None:
            for module, state in hub.broker.module_status().items():
                connected = bool(state["connected"])
                if seen.get(module, False) != connected:
                    say(f"{module}: {'connected to' if connected else 'disconnected from'} the hub")
                seen[module] = connected
        await asyncio.sleep(1.0)


async def run_up(
    settings: HubSettings,
    manifest: Manifest,
    stop: asyncio.Event,
    *,
    azurite: bool = True,
    log_level: str | None = None,
    say: Printer = _print,
) -> None:
    """Run everything until ``stop`` is set, then stop modules, Azurite and the hub."""
    paths = StatePaths.of(settings.state_dir)
    _log_to_file(paths.logs / "hub.log", log_level)
    folder = manifest.folder or Path.cwd()
    hub = DevHub(settings, manifest)
    await hub.start()
    say(
        f"hub: listening on {settings.bind}:{hub.port} (state in {paths.root}; log: {paths.logs / 'hub.log'})"
    )
    storage: Azurite | None = None
    extra: dict[str, str] = {}
    if azurite and any(spec.source_module for spec in manifest.modules.values()):
        storage, extra = await asyncio.get_running_loop().run_in_executor(None, _start_azurite, hub, say)
    runners = []
    metrics_ports = _metrics_ports(manifest, paths, say)
    for spec in sorted(manifest.modules.values(), key=lambda s: (s.startup_order, s.name)):
        runner = _runner(spec, hub, folder, extra, paths, say, metrics_ports.get(spec.name))
        if runner is not None:
            runners.append(runner)
    tasks = [asyncio.create_task(r.run()) for r in runners]
    watcher = asyncio.create_task(_watch_connections(hub, say))
    try:
        await stop.wait()
    finally:
        say("stopping ...")
        await asyncio.gather(*(r.stop() for r in runners))
        for task in (*tasks, watcher):
            task.cancel()
        await asyncio.gather(*tasks, watcher, return_exceptions=True)
        if storage is not None:
            await asyncio.get_running_loop().run_in_executor(None, storage.stop)
        await hub.stop()
        say("stopped")


def _metrics_ports(manifest: Manifest, paths: StatePaths, say: Printer) -> dict[str, int]:
    """One /metrics port per module run here (they share one host), recorded for ``dev metrics``."""
    from edgeloop.telemetry.dev import assign_metrics_ports, write_ports
    from edgeloop.telemetry.settings import TelemetryConfigError

    names = [s.name for s in manifest.modules.values() if s.status == "running" and s.source_module]
    try:
        ports = assign_metrics_ports(names, os.environ)
    except TelemetryConfigError as exc:
        say(f"metrics: endpoints off ({exc.reason})")
        ports = {}
    write_ports(paths.root, ports)
    return ports


def _runner(
    spec: ModuleSpec,
    hub: DevHub,
    folder: Path,
    extra: Mapping[str, str],
    paths: StatePaths,
    say: Printer,
    metrics_port: int | None = None,
) -> ModuleRunner | None:
    if spec.status != "running":
        say(f"{spec.name}: skipped (status {spec.status!r} in the manifest)")
        return None
    source = spec.source_module
    if source is None:
        say(
            f"{spec.name}: skipped (image {spec.image!r} is not built from this checkout; run it with Docker)"
        )
        return None
    env = process_env(hub.module_env(spec.name), folder=folder, extra=extra, environ=os.environ)
    env.update(module_metrics_env(metrics_port))  # over the manifest's: every module shares this host
    if metrics_port:
        say(f"{spec.name}: metrics on {metrics_url(metrics_port)}")
    return ModuleRunner(
        spec,
        command=[sys.executable, "-m", f"edgeloop_{source}"],
        env=env,
        log_path=paths.log_file(spec.name),
        cwd=folder,
        say=say,
    )


def _log_to_file(path: Path, level: str | None) -> None:
    from edgeloop.logs import JsonFormatter

    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(JsonFormatter("devhub"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or os.environ.get("EDGELOOP_LOG_LEVEL") or "INFO").upper())
