"""A test module that plays the filter for the uploader: it writes sample files to the shared
volume and sends ``SelectedSample`` references on output ``out``.

Environment: ``EDGELOOP_SAMPLES_DIR`` (the shared volume), ``FEEDER_RECORD`` (a JSONL file: one
line per sample sent, written after the hub accepted it). Method ``feed`` ({"count", "start",
"interval", "raw"}) sends from a background thread; samples are ``s-000000``, ``s-000001``...
With ``raw`` each sample is a raw frame (``edgeloop.rawframe``, the memory-backed frame path)
of ``sample_pixels``, for the uploader to encode as PNG on claim.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from edgeloop import rawframe
from edgeloop.contracts import Contract, FrameRef, LabelScore, Prediction, RawPixels, SelectedSample
from edgeloop.errors import HubError
from edgeloop.runtime import EdgeModule, InboundMessage, MethodRegistry, ModuleContext, run_module


class FeederConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    count: int = Field(default=1, ge=0, le=100_000)
    start: int = Field(default=0, ge=0)
    interval: float = Field(default=0.0, ge=0)
    size: int = Field(default=2048, ge=1, le=10_000_000)
    raw: bool = Field(default=False)


def sample_bytes(sample_id: str, size: int) -> bytes:
    """Deterministic content, so a test can check what the cloud opens."""
    seed = hashlib.sha256(sample_id.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def sample_pixels(sample_id: str) -> np.ndarray:
    """Deterministic 16x16 BGR pixels of a raw sample."""
    return np.frombuffer(sample_bytes(sample_id, 16 * 16 * 3), dtype=np.uint8).reshape(16, 16, 3)


def selected_sample(
    sample_id: str, seq: int, data: bytes, file_ref: str, *, raw: bool = False
) -> SelectedSample:
    now = datetime.now(UTC)
    frame = FrameRef(
        sample_id=sample_id, source_id="feeder", seq=seq, captured_at=now, kind="image",
        file_ref=file_ref, content_type="image/png" if raw else "image/jpeg", bytes=len(data),
        sha256=None if raw else hashlib.sha256(data).hexdigest(),
        raw=RawPixels(channels=3, quality=3) if raw else None,
        width=16 if raw else None, height=16 if raw else None,
    )  # fmt: skip
    prediction = Prediction(
        sample_id=sample_id, frame=frame, status="ok", model_name="digits", model_version="1",
        label="7", confidence=0.4, margin=0.05,
        top_k=[LabelScore(label="7", score=0.4), LabelScore(label="1", score=0.35)],
        scores=[0.4, 0.35, 0.25], scored_at=now,
    )  # fmt: skip
    return SelectedSample(
        sample_id=sample_id, prediction=prediction, strategy="uncertainty", reason="margin 0.05 < 0.1",
        selected_at=now,
    )  # fmt: skip


class Feeder(EdgeModule[FeederConfig]):
    name = "feeder"
    config_model = FeederConfig

    def __init__(self, samples_dir: Path, record: Path | None) -> None:
        self._samples = samples_dir
        self._record = record
        self._ctx: ModuleContext[FeederConfig] | None = None
        self._sent = 0
        self._lock = threading.Lock()

    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("feed", self._feed, payload_model=FeedRequest, description="send selected samples")

    def start(self, ctx: ModuleContext[FeederConfig]) -> None:
        self._ctx = ctx

    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        """The feeder has no inputs."""

    def stats(self) -> dict[str, Any]:
        return {"sent": self._sent}

    def _feed(self, request: FeedRequest) -> dict[str, Any]:
        threading.Thread(target=self._feed_all, args=(request,), daemon=True).start()
        return {"feeding": request.count}

    def _feed_all(self, request: FeedRequest) -> None:
        assert self._ctx is not None
        (self._samples / "frames").mkdir(parents=True, exist_ok=True)
        for seq in range(request.start, request.start + request.count):
            sample_id = f"s-{seq:06d}"
            if request.raw:
                header, payload = rawframe.pack(sample_pixels(sample_id))
                data, file_ref = header + bytes(payload), f"frames/{sample_id}.raw"
            else:
                data, file_ref = sample_bytes(sample_id, request.size), f"frames/{sample_id}.jpg"
            (self._samples / file_ref).write_bytes(data)
            item = selected_sample(sample_id, seq, data, file_ref, raw=request.raw)
            while not self._ctx.stopping.is_set():
                try:
                    self._ctx.send("out", [item])
                    break
                except HubError:
                    time.sleep(0.2)  # the hub is away: keep the sample and try again
            with self._lock:
                self._sent += 1
                if self._record is not None:
                    with open(self._record, "a", encoding="utf-8") as out:
                        out.write(json.dumps({"sample_id": sample_id, "bytes": len(data)}) + "\n")
            if request.interval:
                time.sleep(request.interval)


def main() -> int:
    record = os.environ.get("FEEDER_RECORD")
    return run_module(
        Feeder(Path(os.environ.get("EDGELOOP_SAMPLES_DIR", "/samples")), Path(record) if record else None)
    )


if __name__ == "__main__":
    raise SystemExit(main())
