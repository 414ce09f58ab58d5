"""``random``: a fraction ``p`` of samples at random, the baseline that keeps coverage when the
model is confidently wrong (``drift_p`` instead while drift is detected). Seeded for
reproducible runs."""

from __future__ import annotations

import random
from typing import Literal

from pydantic import Field

from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel, fmt


class RandomRule(RuleModel):
    type: Literal["random"] = Field(description="Rule name.")
    p: float = Field(ge=0.0, le=1.0, description="Probability that a sample matches.")
    drift_p: float | None = Field(
        default=None,
        ge=0.0,
        le=1.0,
        description="Probability used while drift is detected (policy drift.psi_above); unset: p.",
    )
    seed: int | None = Field(
        default=None, description="Seed of this rule's random stream; unset: drawn from the module's."
    )


def build(config: RandomRule, ctx: BuildContext) -> Predicate:
    rng = random.Random(config.seed if config.seed is not None else ctx.rng.getrandbits(64))
    draw = rng.random
    p, drift_p = config.p, config.p if config.drift_p is None else config.drift_p
    reason = f"random draw under p={fmt(p)}"
    drift_reason = f"random draw under drift_p={fmt(drift_p)} (drift detected)"

    def random_share(f: Features) -> str | None:
        if f.drifting:
            return drift_reason if draw() < drift_p else None
        return reason if draw() < p else None

    return random_share
