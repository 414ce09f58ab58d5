"""The capture module on a runtime thread with the in-memory hub, for unit tests."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Self

from edgeloop_capture import CaptureModule
from edgeloop_capture.progress_book import ProgressBook

from edgeloop.contracts import FrameRef
from edgeloop.runtime import ModuleRuntime
from edgeloop.runtime.fake import FakeHubClient
from tests.support import wait_for


class Capture:
    """One life of the capture module over the volume ``root`` (progress kept in ``progress``
    when given, in memory otherwise)."""

    def __init__(
        self,
        root: Path,
        desired: dict[str, Any],
        hub: FakeHubClient | None = None,
        *,
        progress: ProgressBook | None = None,
    ) -> None:
        self.root = root
        self.hub = hub or FakeHubClient()
        self.hub.desired.update(desired)
        self.module = CaptureModule(root, progress=progress)
        self.runtime = ModuleRuntime(self.module, client=self.hub, tick_interval=0.05)
        self.thread = threading.Thread(target=self.runtime.run)

    def __enter__(self) -> Self:
        self.thread.start()
        wait_for(lambda: self.module.ctx is not None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.request_stop("test over")
        self.thread.join(15)

    def frames(self) -> list[FrameRef]:
        return [item for item in self.hub.sent_items("frames") if isinstance(item, FrameRef)]

    def by_source(self, sid: str) -> list[FrameRef]:
        return [f for f in self.frames() if f.source_id == sid]

    def attr(self, name: str) -> list[str]:
        return [f.attributes[name] for f in self.frames()]

    def state(self, sid: str) -> str:
        return str(self.module.source_health().get(sid, {}).get("state"))

    def reported_source(self, sid: str) -> dict[str, Any]:
        return dict(self.hub.reported.get("sources", {}).get(sid, {}))

    def call(self, name: str, payload: Any = None) -> tuple[int, Any]:
        response = self.hub.call_method(name, payload)
        return response.status, response.payload
