"""One queued sample as a labelling tool is shown it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class QueueEntry:
    """An unlabelled sample with the URL of its decrypted image and the device's prediction."""

    sample_id: str
    url: str
    device: str = ""
    model_version: str = ""
    predicted: str = ""
    confidence: float | None = None
