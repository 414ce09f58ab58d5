"""``novelty``: the prediction's embedding is far from every recently selected one (see
``edgeloop_filter.novelty``). A prediction without an embedding does not match (noted as
``no_embedding``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel, fmt


class NoveltyRule(RuleModel):
    type: Literal["novelty"] = Field(description="Rule name.")
    above: float = Field(
        ge=0.0, lt=1.0, description="Matches when novelty, (1 - cosine) / 2 to the nearest, is above this."
    )


def build(config: NoveltyRule, _ctx: BuildContext) -> Predicate:
    above = config.above

    def novelty(f: Features) -> str | None:
        value = f.novelty
        if value is None or value <= above:
            return None
        return f"novelty {fmt(value)} > {fmt(above)}"

    return novelty
