"""Run a module in-process through the runtime and the in-memory hub (not a test module)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.module import UploaderModule
from edgeloop_uploader.sources import Credential

from edgeloop.blobstore import BlobContainer, MemoryContainer
from edgeloop.clock import Clock
from edgeloop.contracts import UploadedNotice
from edgeloop.runtime import EdgeModule, ModuleRuntime
from edgeloop.runtime.fake import FakeHubClient
from tests.support import wait_for


class InProcess:
    """A module on its own runtime thread, fed through a ``FakeHubClient``."""

    def __init__(self, module: EdgeModule[Any], desired: dict[str, Any] | None = None) -> None:
        self.module = module
        self.hub = FakeHubClient(desired or {})
        self.runtime = ModuleRuntime(module, client=self.hub, device_id="dev-1", tick_interval=0.05)
        self.thread = threading.Thread(target=self.runtime.run, name=f"runtime-{module.name}")

    def start(self) -> InProcess:
        self.thread.start()
        wait_for(lambda: self.runtime._running, 20.0, what=f"{self.module.name} to start")
        return self

    def stop(self) -> None:
        self.runtime.request_stop("test over")
        self.thread.join(30)

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def reported(self) -> dict[str, Any]:
        return self.hub.reported


class UploaderInProcess(InProcess):
    """The uploader over a memory blob store."""

    def __init__(self, tmp_path: Path, desired: dict[str, Any], *, clock: Clock | None = None) -> None:
        self.samples = tmp_path / "samples"
        self.samples.mkdir(parents=True, exist_ok=True)
        self.store = MemoryContainer()
        self.credentials: list[Credential] = []
        module = UploaderModule(
            samples_dir=self.samples,
            outbox_dir=tmp_path / "outbox",
            store_factory=self._factory,
            env_credential="AccountName=a;AccountKey=ENVSECRET",
            clock=clock,
        )
        super().__init__(module, desired)

    def _factory(self, credential: Credential, _config: UploaderConfig) -> BlobContainer:
        self.credentials.append(credential)
        return self.store

    def notices(self) -> list[UploadedNotice]:
        return [n for n in self.hub.sent_items("uploaded") if isinstance(n, UploadedNotice)]

    def uploaded_ids(self) -> list[str]:
        return [n.sample_id for n in self.notices() if n.strategy != "prediction-log"]
