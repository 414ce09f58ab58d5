"""What every rule shares: the features it reads and the shape of a compiled predicate."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict

#: Note left on ``Features`` by a rule that needed an embedding the prediction lacks.
NO_EMBEDDING = "no_embedding"
_NO_NOTES: frozenset[str] = frozenset()


class RuleModel(BaseModel):
    """Base of a rule's config: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Features:
    """What rules read from one prediction. Entropy, when the prediction does not carry it,
    is computed from the scores the first time a rule asks; novelty (distance of the
    prediction's embedding to the recently selected ones) likewise, through ``novelty_of``.

    Rules that could not judge a prediction (a novelty rule without an embedding) say why in
    ``notes``; the engine counts a drop by such a note when nothing else selected the sample.
    """

    __slots__ = (
        "_entropy",
        "_novelty",
        "_novelty_of",
        "_scores",
        "confidence",
        "drifting",
        "embedding",
        "label",
        "margin",
        "model_version",
        "notes",
        "source_id",
    )

    def __init__(
        self,
        label: str,
        confidence: float,
        margin: float | None,
        entropy: float | None,
        source_id: str,
        scores: Sequence[float] = (),
        *,
        model_version: str | None = None,
        embedding: Sequence[float] | None = None,
        novelty_of: Callable[[Sequence[float]], float] | None = None,
        drifting: bool = False,
    ) -> None:
        self.label = label
        self.confidence = confidence
        self.margin = margin
        self.source_id = source_id
        self.model_version = model_version
        self.embedding = embedding
        self.drifting = drifting
        self.notes: AbstractSet[str] = _NO_NOTES  # a set of its own once a rule notes something
        self._entropy = entropy
        self._scores = scores
        self._novelty: float | None = None
        self._novelty_of = novelty_of

    @property
    def entropy(self) -> float | None:
        if self._entropy is None and self._scores:
            self._entropy = -sum(s * math.log(s) for s in self._scores if s > 0.0)
            self._scores = ()
        return self._entropy

    def use_embedding(
        self, embedding: Sequence[float], novelty_of: Callable[[Sequence[float]], float]
    ) -> None:
        """Give rules the prediction's embedding and how to score its novelty."""
        self.embedding = embedding
        self._novelty_of = novelty_of
        self._novelty = None

    @property
    def novelty(self) -> float | None:
        """In [0, 1]: 0 for an embedding like one selected recently, 1 when nothing like it
        was; None (noted as ``no_embedding``) when the prediction carries no usable one."""
        if self._novelty is None:
            if self.embedding is None or self._novelty_of is None:
                self.notes = self.notes | {NO_EMBEDDING}
                return None
            self._novelty = self._novelty_of(self.embedding)
        return self._novelty


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
