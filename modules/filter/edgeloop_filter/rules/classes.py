"""``classes``: the predicted class is one of a set (rare or important classes)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel


class ClassesRule(RuleModel):
    type: Literal["classes"] = Field(description="Rule name.")
    labels: list[str] = Field(min_length=1, description="Predicted labels that match.")


def build(config: ClassesRule, _ctx: BuildContext) -> Predicate:
    labels = frozenset(config.labels)

    def classes(f: Features) -> str | None:
        return f"class {f.label!r} is listed" if f.label in labels else None

    return classes
