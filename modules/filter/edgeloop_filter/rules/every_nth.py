"""``every_nth``: every n-th sample this rule sees (the first one included)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel


class EveryNthRule(RuleModel):
    type: Literal["every_nth"] = Field(description="Rule name.")
    n: int = Field(ge=1, description="Match one sample in every n.")


def build(config: EveryNthRule, _ctx: BuildContext) -> Predicate:
    n = config.n
    seen = [0]

    def every_nth(_f: Features) -> str | None:
        count = seen[0]
        seen[0] = count + 1
        return f"sample {count + 1} of every {n}" if count % n == 0 else None

    return every_nth
