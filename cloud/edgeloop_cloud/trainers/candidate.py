"""A trained candidate as any trainer hands it back: the model, what it says of itself, its metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from edgeloop.model_metadata import Preprocess, embed_metadata


@dataclass
class Candidate:
    """A candidate before it enters the registry.

    ``model`` is an ``onnx.ModelProto``; ``manifest`` is what the model card records about the
    training (trainer, samples, metrics); ``log_tail`` is the trainer's last output lines.
    """

    model: Any
    labels: list[str]
    preprocess: Preprocess
    manifest: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    log_tail: list[str] = field(default_factory=list)

    def to_bytes(self, *, name: str | None = None, version: str | None = None) -> bytes:
        """The ONNX bytes, with the model's name and version written into its metadata."""
        embed_metadata(self.model, name=name, version=version)
        return bytes(self.model.SerializeToString())
