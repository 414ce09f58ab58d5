"""What every rule shares: the features it reads and the shape of a compiled predicate."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict


class RuleModel(BaseModel):
    """Base of a rule's config: frozen, unknown keys rejected."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(slots=True)
class Features:
    """What rules read from one prediction, computed once per sample."""

    label: str
    confidence: float
    margin: float | None
    entropy: float | None
    source_id: str


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
