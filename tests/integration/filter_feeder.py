"""A test module that plays the inference module for the filter: on ``send`` it emits
predictions on ``predictions`` (confidence alternating 0.5 and 0.95, distinct dHashes).

Run as ``python -m tests.integration.filter_feeder`` under the dev hub.
"""

from __future__ import annotations

import random
import sys

from pydantic import BaseModel, ConfigDict, Field

from edgeloop.runtime import EdgeModule, MethodRegistry, ModuleContext, run_module
from tests.filter_helpers import prediction


class FeederConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(default=1, ge=1, le=10_000)
    start: int = Field(default=0, ge=0)
    errors: int = Field(default=0, ge=0, description="How many status=error predictions to add.")
    margin: float | None = Field(default=None, ge=0, le=1, description="Top-1 minus top-2 for all.")


class Feeder(EdgeModule[FeederConfig]):
    name = "feeder"
    config_model = FeederConfig

    def __init__(self) -> None:
        self.ctx: ModuleContext[FeederConfig] | None = None

    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("send", self._send, payload_model=SendRequest, description="send predictions")

    def start(self, ctx: ModuleContext[FeederConfig]) -> None:
        self.ctx = ctx

    def _send(self, request: SendRequest) -> dict[str, int]:
        assert self.ctx is not None
        items = [
            prediction(
                i,
                confidence=0.5 if i % 2 == 0 else 0.95,
                margin=request.margin,
                dhash=f"{random.Random(i).getrandbits(64):016x}",  # far apart: no near-duplicates
                traceparent=f"00-{i:032x}-{i + 1:016x}-01",
            )
            for i in range(request.start, request.start + request.count)
        ]
        items += [
            prediction(request.start + request.count + j, status="error", label=None, confidence=None)
            for j in range(request.errors)
        ]
        return {"messages": self.ctx.send("predictions", items, max_batch=8)}


if __name__ == "__main__":
    sys.exit(run_module(Feeder()))
