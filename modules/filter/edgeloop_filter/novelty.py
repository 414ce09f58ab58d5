"""The embeddings of recently selected samples, and how novel a new one is against them.

Novelty is ``(1 - cos) / 2`` to the nearest remembered embedding (the L2-normalised euclidean
distance, squared and halved, in [0, 1]): 0 for the same direction, 1 when nothing
remembered is like it (and 1 while the memory is empty). Embeddings of different models live
in different spaces, so the memory starts over with each model version; an embedding of
another length than the remembered ones (a model changed without a new version) starts it
over too, and says so.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class EmbeddingMemory:
    """At most ``capacity`` unit vectors of one length, the oldest replaced first."""

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self.model_version: str | None = None
        self._vectors: np.ndarray | None = None
        self._count = 0
        self._next = 0

    def __len__(self) -> int:
        return self._count

    @property
    def dims(self) -> int | None:
        return None if self._vectors is None else int(self._vectors.shape[1])

    def clear(self) -> None:
        self._vectors, self._count, self._next = None, 0, 0

    def follow(self, model_version: str | None, dims: int) -> str | None:
        """Start over for a new model version or another embedding length; the reason when the
        length changed under the same version (else None)."""
        if model_version != self.model_version:
            self.model_version = model_version
            self.clear()
            return None
        if self.dims is not None and self.dims != dims:
            previous = self.dims
            self.clear()
            return (
                f"embedding length changed from {previous} to {dims} under model version "
                f"{model_version!r}: novelty memory started over"
            )
        return None

    def novelty(self, embedding: Sequence[float]) -> float:
        if self._vectors is None or not self._count:
            return 1.0
        cos = self._vectors[: self._count] @ _unit(embedding)
        return float(np.clip((1.0 - float(cos.max())) / 2.0, 0.0, 1.0))

    def remember(self, embedding: Sequence[float]) -> None:
        unit = _unit(embedding)
        if self._vectors is None or self._vectors.shape[1] != len(unit):
            self._vectors = np.zeros((self.capacity, len(unit)), dtype=np.float32)
            self._count = self._next = 0
        self._vectors[self._next] = unit
        self._next = (self._next + 1) % self.capacity
        self._count = min(self._count + 1, self.capacity)


def _unit(embedding: Sequence[float]) -> np.ndarray:
    vector = np.asarray(embedding, dtype=np.float32)
    norm = float(np.linalg.norm(vector))
    return vector / norm if norm > 0.0 else vector
