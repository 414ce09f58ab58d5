"""Field accuracy: how the deployed models do on current data, from the devices' audit share.

An audit sample was drawn at random from the stream, so once it is labelled, the label the
device's model predicted (blob metadata ``label``) against the true label is an unbiased look at
that model's accuracy on what the device sees now. Grouped by model, version and device (from
the blob name), each with its count and a Wilson interval.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from edgeloop_cloud.samples import META_PREDICTED, SampleRef
from edgeloop_cloud.stats import wilson

#: Two-sided confidence of the reported intervals.
CONFIDENCE = 0.95


@dataclass(frozen=True)
class FieldAccuracy:
    """One model version on one device, judged on its labelled audit samples."""

    model: str
    version: str
    device: str
    n: int
    correct: int
    unscored: int  # audit samples without the device's predicted label in their metadata

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.n if self.n else None

    @property
    def interval(self) -> tuple[float, float]:
        return wilson(self.correct, self.n, CONFIDENCE)

    def as_dict(self) -> dict[str, Any]:
        lo, hi = self.interval
        acc = self.accuracy
        return {
            "model": self.model,
            "version": self.version,
            "device": self.device,
            "n": self.n,
            "correct": self.correct,
            "accuracy": None if acc is None else round(acc, 4),
            "interval": [round(lo, 4), round(hi, 4)],
            "confidence": CONFIDENCE,
            "unscored": self.unscored,
        }

    def describe(self) -> str:
        if not self.n:
            return f"{self.version}@{self.device}: no scored audit samples"
        lo, hi = self.interval
        return f"{self.version}@{self.device} {self.accuracy:.0%} [{lo:.0%}, {hi:.0%}] n={self.n}"


def field_accuracy(samples: Iterable[SampleRef], labels: Mapping[str, str]) -> list[FieldAccuracy]:
    """Accuracy of each (model, version, device) on its labelled audit samples, in name order."""
    tally: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for ref in samples:
        truth = labels.get(ref.sample_id)
        if not ref.is_audit or truth is None:
            continue
        counts = tally[(ref.model, ref.model_version, ref.device)]
        predicted = ref.metadata.get(META_PREDICTED)
        if predicted is None:
            counts[2] += 1
            continue
        counts[0] += 1
        counts[1] += int(predicted == truth)
    return [
        FieldAccuracy(model=m, version=v, device=d, n=n, correct=c, unscored=u)
        for (m, v, d), (n, c, u) in sorted(tally.items())
    ]
