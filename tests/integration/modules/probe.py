"""A test module on the shared runtime: records what it receives, sends on request.

Environment: ``PROBE_RECORD`` (a JSONL file: one line per input message, config change and
start), ``PROBE_SOURCE`` (source id of what it sends). Methods: ``send`` ({"count", "output",
"start", "interval", "zone"}: send FrameRefs from a background thread), ``echo``, ``sleep``
({"seconds"}), plus the runtime's own (getConfig, setConfig, getStats, pause, resume).
"""

from __future__ import annotations

import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeloop.contracts import Contract, FrameRef
from edgeloop.errors import HubConnectionError
from edgeloop.runtime import EdgeModule, InboundMessage, MethodRegistry, ModuleContext, run_module


class ProbeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str = Field(default="", description="A free label tests set through the twin.")
    threshold: float = Field(default=0.0, ge=0, description="A number tests set through the twin.")


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=0, le=100000)
    output: str = "out"
    start: int = Field(default=0, ge=0)
    interval: float = Field(default=0.0, ge=0)
    zone: str = "a"


class SleepRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    seconds: float = Field(ge=0, le=600)


class Probe(EdgeModule[ProbeConfig]):
    name = "probe"
    config_model = ProbeConfig

    def __init__(self, record: Path | None, source: str) -> None:
        self._record = record
        self._source = source
        self._lock = threading.Lock()
        self._ctx: ModuleContext[ProbeConfig] | None = None
        self._received = 0
        self._sent = 0

    def _write(self, entry: dict[str, Any]) -> None:
        if self._record is None:
            return
        with self._lock, open(self._record, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry) + "\n")

    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("send", self._send, payload_model=SendRequest, description="send FrameRefs")
        methods.add("echo", lambda payload: {"echo": payload}, payload_model=None, description="echo")
        methods.add("sleep", self._sleep, payload_model=SleepRequest, description="sleep, then answer")

    def start(self, ctx: ModuleContext[ProbeConfig]) -> None:
        self._ctx = ctx
        self._write({"event": "started", "pid": os.getpid()})

    def apply_config(self, config: ProbeConfig, previous: ProbeConfig | None) -> None:
        self._write({"event": "config", "config": config.model_dump()})

    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        self._received += 1
        self._write(
            {
                "event": "input",
                "input": input_name,
                "message_id": message.message_id,
                "samples": [item.key for item in items],
                "properties": message.properties,
            }
        )

    def stats(self) -> dict[str, Any]:
        return {"received": self._received, "sent": self._sent}

    def _sleep(self, request: SleepRequest) -> dict[str, Any]:
        time.sleep(request.seconds)
        return {"slept": request.seconds}

    def _send(self, request: SendRequest) -> dict[str, Any]:
        threading.Thread(target=self._send_all, args=(request,), daemon=True).start()
        return {"sending": request.count}

    def _send_one(self, output: str, item: FrameRef) -> None:
        """Send, retrying while the hub is away: the SDK refuses sends (NoConnectionError)
        between a dropped connection and its reconnect instead of queueing them, and may fail a
        send that did reach the hub. A retry is a new message (new id): it is recorded."""
        assert self._ctx is not None
        deadline = time.monotonic() + 60
        while True:
            try:
                self._ctx.send(output, [item])
                return
            except HubConnectionError:
                if time.monotonic() > deadline:
                    raise
                self._write({"event": "retry", "sample": item.sample_id})
                time.sleep(0.2)

    def _send_all(self, request: SendRequest) -> None:
        assert self._ctx is not None
        for seq in range(request.start, request.start + request.count):
            item = FrameRef(
                sample_id=f"{self._source}-{seq:06d}",
                source_id=self._source,
                seq=seq,
                captured_at=datetime.now(UTC),
                kind="vector",
                vector=[float(seq)],
                attributes={"zone": request.zone, "parity": "even" if seq % 2 == 0 else "odd"},
            )
            self._send_one(request.output, item)
            self._sent += 1
            if request.interval:
                time.sleep(request.interval)
        self._write({"event": "sent", "count": request.count, "start": request.start})


def main() -> int:
    record = os.environ.get("PROBE_RECORD")
    return run_module(Probe(Path(record) if record else None, os.environ.get("PROBE_SOURCE", "probe")))


if __name__ == "__main__":
    raise SystemExit(main())
