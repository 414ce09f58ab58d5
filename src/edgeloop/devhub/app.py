"""The dev hub put together: MQTT over TLS on ``bind:8883``, direct methods and MQTT over
WebSockets on ``bind:443`` (same certificate), the workload and control APIs on unix sockets,
env files for every module, state in the state dir."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from edgeloop.devhub.broker import Broker, HubIdentity
from edgeloop.devhub.certs import ensure_certificates, server_context
from edgeloop.devhub.connection import MqttConnection
from edgeloop.devhub.control import ControlApi
from edgeloop.devhub.envfiles import module_env, volume_folders, write_env_file
from edgeloop.devhub.gateway import GatewayConnection
from edgeloop.devhub.httpunix import serve_unix
from edgeloop.devhub.manifest import Manifest
from edgeloop.devhub.module_methods import ModuleMethodsApi
from edgeloop.devhub.paths import StatePaths
from edgeloop.devhub.store import Store
from edgeloop.devhub.tls import TlsServer
from edgeloop.devhub.workload import WorkloadApi
from edgeloop.errors import EdgeLoopError

log = logging.getLogger(__name__)

MQTT_PORT = 8883
#: Direct methods between modules and MQTT over WebSockets: the SDK always uses 443.
HTTPS_PORT = 443
DEFAULT_HUB_HOST = "edgeloop-dev.azure-devices.net"
DEFAULT_DEVICE_ID = "edgeloop-dev"
#: The SDK refuses messages over 256 KB; a packet also carries its topic and properties.
MAX_PACKET_BYTES = 512 * 1024
_MAINTENANCE_SECS = 5.0


class HubStartError(EdgeLoopError):
    """The hub could not start (address in use, bad state dir, ...)."""


@dataclass(frozen=True)
class HubSettings:
    state_dir: Path
    bind: str = "127.0.0.1"
    gateway_host: str | None = None
    hub_host: str = DEFAULT_HUB_HOST
    device_id: str = DEFAULT_DEVICE_ID
    port: int = MQTT_PORT
    listen_fd: int | None = None
    https_port: int = HTTPS_PORT  # 0: no HTTPS/WebSocket listener

    @property
    def gateway(self) -> str:
        return self.gateway_host or self.bind


class DevHub:
    """Start with ``await start()``, stop with ``await stop()``."""

    def __init__(
        self, settings: HubSettings, manifest: Manifest, *, clock: Callable[[], float] = time.time
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.manifest = manifest
        self.paths = StatePaths.of(settings.state_dir)
        self.broker: Broker | None = None
        self._store: Store | None = None
        self._servers: list[asyncio.AbstractServer] = []
        self._mqtt: TlsServer | None = None
        self._gateway: TlsServer | None = None
        self._gateway_problem = ""
        #: Services run next to the hub (Azurite), shown by ``dev status``.
        self.services: dict[str, dict[str, Any]] = {}
        self._upstream: IO[str] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._started = 0.0

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Raises ``HubStartError`` when the address or the state dir cannot be used."""
        self.paths.root.mkdir(parents=True, exist_ok=True)
        certs = ensure_certificates(self.paths.certs, self.settings.gateway)
        self._store = Store(self.paths.db)
        self._upstream = open(self.paths.upstream_log, "a", encoding="utf-8")  # noqa: SIM115
        self.broker = Broker(
            identity=HubIdentity(self.settings.hub_host, self.settings.device_id),
            manifest=self.manifest,
            store=self._store,
            upstream_log=self._upstream,
            clock=self.clock,
        )
        self._write_env_files()
        loop = asyncio.get_running_loop()
        sock = self._listening_socket()
        broker = self.broker
        self._mqtt = TlsServer(
            loop, sock, server_context(certs), lambda: MqttConnection(broker, MAX_PACKET_BYTES)
        )
        self._mqtt.start()
        self._start_gateway(loop, server_context(certs), broker)
        trust = certs.ca_cert.read_text(encoding="ascii")
        self._servers.append(await serve_unix(self.paths.workload_socket, WorkloadApi(trust, broker.sign)))
        control = ControlApi(broker, self.info, self.module_env)
        self._servers.append(await serve_unix(self.paths.control_socket, control))
        self._maintenance = asyncio.create_task(self._maintain())
        self._started = time.time()
        self._write_info()
        log.info(
            "dev hub listening on %s:%s (gateway %s, %d modules, %d routes); state in %s",
            self.settings.bind, self.settings.port, self.settings.gateway,
            len(self.manifest.modules), len(self.manifest.routes), self.paths.root,
        )  # fmt: skip

    def _start_gateway(self, loop: asyncio.AbstractEventLoop, context: Any, broker: Broker) -> None:
        """Listen on the HTTPS port when allowed; otherwise say why and how to allow it."""
        if not self.settings.https_port:
            self._gateway_problem = "turned off (--https-port 0)"
            return
        address = (self.settings.bind, self.settings.https_port)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as exc:
            sock.close()
            self._gateway_problem = _bind_advice(address, exc)
            log.warning(
                "no direct methods between modules and no MQTT over WebSockets: %s; "
                "MQTT on port %s works as before",
                self._gateway_problem,
                self.settings.port,
            )
            return
        sock.listen(128)
        sock.setblocking(False)
        methods = ModuleMethodsApi(broker)
        self._gateway = TlsServer(
            loop, sock, context, lambda: GatewayConnection(broker, methods, MAX_PACKET_BYTES)
        )
        self._gateway.start()

    def _listening_socket(self) -> socket.socket:
        if self.settings.listen_fd is not None:
            sock = socket.socket(fileno=self.settings.listen_fd)
            sock.setblocking(False)
            return sock
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.settings.bind, self.settings.port))
        except OSError as exc:
            sock.close()
            raise HubStartError(
                f"cannot listen on {self.settings.bind}:{self.settings.port}: {exc.strerror} "
                "(another hub on this address? pass --bind 127.0.0.N to run several side by side)"
            ) from exc
        sock.listen(128)
        sock.setblocking(False)
        return sock

    def add_service(self, name: str, details: dict[str, Any]) -> None:
        """Record a service run next to the hub (its endpoint, the env var modules get)."""
        self.services[name] = details
        self._write_info()

    def _write_info(self) -> None:
        self.paths.info.write_text(json.dumps(self.info(), indent=2) + "\n", encoding="utf-8")

    async def stop(self) -> None:
        """Stop accepting first (a shared listening socket keeps queuing reconnects for the
        next hub), then close connections and persist everything."""
        if self._mqtt is not None:
            self._mqtt.close()
        if self._gateway is not None:
            self._gateway.close()
        for server in self._servers:
            server.close()
        if self._maintenance is not None:
            self._maintenance.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._maintenance
        if self.broker is not None:
            for conn in list(self.broker.connections.values()):
                conn.close("hub stopping")
            self.broker.close()
        if self._mqtt is not None:
            self._mqtt.close_all()
        if self._gateway is not None:
            self._gateway.close_all()
        await asyncio.sleep(0)
        for path in (self.paths.workload_socket, self.paths.control_socket):
            path.unlink(missing_ok=True)
        if self._store is not None:
            self._store.close()
        if self._upstream is not None:
            self._upstream.close()
        self.paths.info.unlink(missing_ok=True)
        log.info("dev hub stopped")

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(_MAINTENANCE_SECS)
            assert self.broker is not None
            now = time.monotonic()
            for conn in list(self.broker.connections.values()):
                if conn.expired(now):
                    conn.close(f"keepalive of {conn.keepalive}s missed")
            self.broker.expire()

    # -- views ----------------------------------------------------------------------------
    @property
    def port(self) -> int:
        """The MQTT port actually bound (``settings.port`` unless that was 0)."""
        if self._mqtt is None or not self._mqtt.sockets:
            return self.settings.port
        return int(self._mqtt.sockets[0].getsockname()[1])

    @property
    def https_port(self) -> int | None:
        """The HTTPS/WebSocket port bound, or None (see ``info()["httpsProblem"]``)."""
        if self._gateway is None or not self._gateway.sockets:
            return None
        return int(self._gateway.sockets[0].getsockname()[1])

    def info(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(),
            "bind": self.settings.bind,
            "port": self.port,
            "httpsPort": self.https_port,
            "httpsProblem": self._gateway_problem or None,
            "gatewayHostName": self.settings.gateway,
            "iotHubHostName": self.settings.hub_host,
            "deviceId": self.settings.device_id,
            "manifest": self.manifest.source,
            "stateDir": str(self.paths.root),
            "controlSocket": str(self.paths.control_socket),
            "workloadSocket": str(self.paths.workload_socket),
            "caCertificate": str(self.paths.certs / "ca.pem"),
            "startedAt": self._started,
            "services": self.services,
        }

    def module_env(self, module: str) -> dict[str, str]:
        assert self.broker is not None
        _, generation = self.broker.credentials(module)
        return module_env(
            module=self.manifest.modules[module],
            hub_host=self.settings.hub_host,
            device_id=self.settings.device_id,
            gateway_host=self.settings.gateway,
            generation_id=generation,
            paths=self.paths,
        )

    def _write_env_files(self) -> None:
        for name, spec in self.manifest.modules.items():
            for folder in volume_folders(spec.binds, self.paths).values():
                folder.mkdir(parents=True, exist_ok=True)
            write_env_file(self.paths.env_file(name), self.module_env(name))


async def run_hub(settings: HubSettings, manifest: Manifest, stop: asyncio.Event) -> None:
    """Run a hub until ``stop`` is set."""
    hub = DevHub(settings, manifest)
    await hub.start()
    try:
        await stop.wait()
    finally:
        await hub.stop()


def _bind_advice(address: tuple[str, int], exc: OSError) -> str:
    """Why ``address`` could not be bound, and what to do about it."""
    where = f"{address[0]}:{address[1]}"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"cannot listen on {where}: ports below 1024 need privileges; allow them with "
            f"'sudo sysctl net.ipv4.ip_unprivileged_port_start={address[1]}' or "
            "'sudo setcap cap_net_bind_service=+ep $(readlink -f $(which python3))'"
        )
    if exc.errno == errno.EADDRINUSE:
        return f"cannot listen on {where}: the address is in use (another hub on this address?)"
    return f"cannot listen on {where}: {exc.strerror or exc}"
