"""``entropy``: Shannon entropy of the scores (nats) above a threshold."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel, fmt


class EntropyRule(RuleModel):
    type: Literal["entropy"] = Field(description="Rule name.")
    above: float = Field(ge=0.0, description="Matches when the entropy (nats) is above this.")


def build(config: EntropyRule, _ctx: BuildContext) -> Predicate:
    above = config.above
    tail = f" > {fmt(above)}"  # said once: the threshold never changes

    def entropy(f: Features) -> str | None:
        if f.entropy is None or f.entropy <= above:
            return None
        return f"entropy {fmt(f.entropy)}{tail}"

    return entropy
