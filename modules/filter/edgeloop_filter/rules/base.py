"""What every rule shares: the features it reads and the shape of a compiled predicate."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class RuleModel(BaseModel):
    """Base of a rule's config: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Features:
    """What rules read from one prediction. Entropy, when the prediction does not carry it,
    is computed from the scores the first time a rule asks."""

    __slots__ = ("_entropy", "_scores", "confidence", "label", "margin", "source_id")

    def __init__(
        self,
        label: str,
        confidence: float,
        margin: float | None,
        entropy: float | None,
        source_id: str,
        scores: Sequence[float] = (),
    ) -> None:
        self.label = label
        self.confidence = confidence
        self.margin = margin
        self.source_id = source_id
        self._entropy = entropy
        self._scores = scores

    @property
    def entropy(self) -> float | None:
        if self._entropy is None and self._scores:
            self._entropy = -sum(s * math.log(s) for s in self._scores if s > 0.0)
            self._scores = ()
        return self._entropy


#: A compiled rule: the reason in words when it matches, None when it does not.
Predicate = Callable[[Features], "str | None"]


@dataclass
class BuildContext:
    """What rule builders may use: a seeded random source and the compiler for child rules."""

    rng: random.Random
    compile: Callable[[Any], Predicate]


def fmt(value: float) -> str:
    """A number as rules print it in reasons."""
    return f"{value:.3f}".rstrip("0").rstrip(".") if value == value else "nan"
