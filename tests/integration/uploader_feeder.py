"""A stand-in for capture + filter under the dev hub: writes sample files to the shared volume and
sends ``SelectedSample``s on ``selected`` and ``Prediction``s on ``predictions``.

Method ``feed`` ({"count", "prefix", "size"}). Environment: ``EDGELOOP_SAMPLES_DIR``.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from edgeloop.contracts import FrameRef, Prediction, SelectedSample
from edgeloop.runtime import EdgeModule, MethodRegistry, ModuleContext, run_module


class FeederConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeedRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=1, ge=1, le=10000)
    prefix: str = Field(default="01F", pattern=r"^[A-Za-z0-9]+$")
    size: int = Field(default=10_000, ge=1, le=10_000_000)


def trace(sample_id: str) -> str:
    return f"00-{hashlib.sha256(sample_id.encode()).hexdigest()[:32]}-00f067aa0ba902b7-01"


class Feeder(EdgeModule[FeederConfig]):
    name = "feeder"
    config_model = FeederConfig

    def __init__(self, samples: Path) -> None:
        self.samples = samples
        self.ctx: ModuleContext[FeederConfig] | None = None

    def start(self, ctx: ModuleContext[FeederConfig]) -> None:
        self.ctx = ctx

    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("feed", self._feed, payload_model=FeedRequest, description="write and send samples")

    def _feed(self, request: FeedRequest) -> dict[str, Any]:
        assert self.ctx is not None
        (self.samples / "frames").mkdir(parents=True, exist_ok=True)
        selected, predictions, digests = [], [], {}
        for i in range(request.count):
            sample_id = f"{request.prefix}{i:05d}"
            data = os.urandom(request.size)
            ref = f"frames/{sample_id}.jpg"
            (self.samples / ref).write_bytes(data)
            digests[sample_id] = hashlib.sha256(data).hexdigest()
            when = datetime(2026, 1, 5, 12, tzinfo=UTC)
            frame = FrameRef(
                sample_id=sample_id, source_id="cam0", seq=i, captured_at=when, kind="image", file_ref=ref,
                content_type="image/jpeg", bytes=len(data), sha256=digests[sample_id],
            )  # fmt: skip
            prediction = Prediction(
                sample_id=sample_id, frame=frame, status="ok", model_name="digits", model_version="2",
                label="4", confidence=0.4, scored_at=when, traceparent=trace(sample_id),
            )  # fmt: skip
            predictions.append(prediction)
            selected.append(
                SelectedSample(
                    sample_id=sample_id, prediction=prediction, strategy="uncertainty", reason="test",
                    selected_at=when, traceparent=trace(sample_id),
                )
            )  # fmt: skip
        self.ctx.send("predictions", predictions)
        for item in selected:  # one message each, so the trace context travels per sample
            self.ctx.send("selected", [item])
        return {"sha256": digests}


if __name__ == "__main__":
    raise SystemExit(run_module(Feeder(Path(os.environ["EDGELOOP_SAMPLES_DIR"]))))
