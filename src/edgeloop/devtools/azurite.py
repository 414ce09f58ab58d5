"""Run Azurite (the Azure Storage emulator, npm package ``azurite``) as a child process.

Azurite's newest blob API version is older than azure-storage-blob's default, so it is started
with ``--skipApiVersionCheck``; telemetry is off and it listens on loopback only.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType

from edgeloop.errors import EdgeLoopError

log = logging.getLogger(__name__)

#: The emulator's well-known development account (published in Azurite's documentation).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


class AzuriteError(EdgeLoopError):
    """Azurite could not be found or did not start."""


def find_azurite(repo_root: Path | None = None) -> str:
    """The ``azurite-blob`` executable: ``$EDGELOOP_AZURITE``, ``./node_modules/.bin``, then PATH.

    Raises:
        AzuriteError: not installed, with the command that installs it.
    """
    override = os.environ.get("EDGELOOP_AZURITE")
    if override:
        return override
    roots = [repo_root] if repo_root else []
    roots += [Path.cwd(), Path(__file__).resolve().parents[3]]
    for root in roots:
        candidate = root / "node_modules" / ".bin" / "azurite-blob"
        if candidate.exists():
            return str(candidate)
    found = shutil.which("azurite-blob")
    if found:
        return found
    raise AzuriteError(
        "azurite is not installed: run 'npm install' in the EdgeLoop checkout "
        "(package.json pins it) or 'npm install -g azurite', or set EDGELOOP_AZURITE"
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def connection_string(host: str, port: int) -> str:
    return (
        "DefaultEndpointsProtocol=http;"
        f"AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
        f"BlobEndpoint=http://{host}:{port}/{ACCOUNT_NAME};"
    )


class Azurite:
    """An Azurite blob service on ``host:port`` keeping its data in ``data_dir``.

    Usable as a context manager; ``stop`` and ``start`` again keep the data (an outage).
    """

    def __init__(self, data_dir: Path, *, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_file = self.data_dir / "azurite.log"

    @property
    def connection_string(self) -> str:
        return connection_string(self.host, self.port)

    @property
    def blob_endpoint(self) -> str:
        return f"http://{self.host}:{self.port}/{ACCOUNT_NAME}"

    @property
    def pid(self) -> int | None:
        """The server's process id while it runs (benchmarks read its CPU time)."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30.0) -> None:
        """Start and wait until the port accepts connections.

        Raises:
            AzuriteError: not installed, or not listening within ``timeout``.
        """
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            find_azurite(),
            "--blobHost", self.host,
            "--blobPort", str(self.port),
            "--location", str(self.data_dir),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ]  # fmt: skip
        with open(self._log_file, "ab") as out:
            self._proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise AzuriteError(f"azurite exited with {self._proc.returncode}; see {self._log_file}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    log.info("azurite listening on %s:%s", self.host, self.port)
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AzuriteError(f"azurite did not listen on {self.host}:{self.port} in {timeout}s")

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def __enter__(self) -> Azurite:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
