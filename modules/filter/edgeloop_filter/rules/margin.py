"""``margin``: top-1 minus top-2 probability below a threshold (the model hesitates)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel, fmt


class MarginRule(RuleModel):
    type: Literal["margin"] = Field(description="Rule name.")
    below: float = Field(gt=0.0, le=1.0, description="Matches when the margin is below this.")


def build(config: MarginRule, _ctx: BuildContext) -> Predicate:
    below = config.below
    tail = f" < {fmt(below)}"  # said once: the threshold never changes

    def margin(f: Features) -> str | None:
        if f.margin is None or f.margin >= below:
            return None
        return f"margin {fmt(f.margin)}{tail}"

    return margin
