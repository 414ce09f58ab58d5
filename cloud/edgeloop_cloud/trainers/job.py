"""What the pipeline hands any trainer: the labelled samples, the champion, the seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from edgeloop_cloud.trainers.samples import LabelledSample

if TYPE_CHECKING:
    from edgeloop_cloud.training import Example


@dataclass(frozen=True)
class TrainingJob:
    """One training request.

    ``samples`` are every decrypted labelled sample (audit ones flagged); ``examples`` are the
    training samples (audit excluded) already decoded, for the built-in trainer, which works in
    memory. ``champion`` is the champion's ONNX, or None when there is none.
    """

    model_name: str
    run_id: str
    seed: int
    samples: Sequence[LabelledSample] = ()
    examples: Sequence[Example] = field(default_factory=list)
    champion: bytes | None = None
    champion_version: str | None = None

    def training_labels(self) -> set[str]:
        return {s.label for s in self.samples if not s.audit} | {e.label for e in self.examples}
