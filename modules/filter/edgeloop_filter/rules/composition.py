"""``all``, ``any`` and ``not``: rules built from other rules."""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field

from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel

if TYPE_CHECKING:
    from edgeloop_filter.rules import RuleConfig


class AllRule(RuleModel):
    type: Literal["all"] = Field(description="Rule name.")
    rules: list[RuleConfig] = Field(min_length=1, description="Matches when every one matches.")


class AnyRule(RuleModel):
    type: Literal["any"] = Field(description="Rule name.")
    rules: list[RuleConfig] = Field(min_length=1, description="Matches when at least one matches.")


class NotRule(RuleModel):
    type: Literal["not"] = Field(description="Rule name.")
    rule: RuleConfig = Field(description="Matches when this one does not.")


def build_all(config: AllRule, ctx: BuildContext) -> Predicate:
    children = tuple(ctx.compile(rule) for rule in config.rules)

    def all_of(f: Features) -> str | None:
        reasons = []
        for child in children:
            reason = child(f)
            if reason is None:
                return None
            reasons.append(reason)
        return " and ".join(reasons)

    return all_of


def build_any(config: AnyRule, ctx: BuildContext) -> Predicate:
    children = tuple(ctx.compile(rule) for rule in config.rules)

    def any_of(f: Features) -> str | None:
        for child in children:
            reason = child(f)
            if reason is not None:
                return reason
        return None

    return any_of


def build_not(config: NotRule, ctx: BuildContext) -> Predicate:
    child = ctx.compile(config.rule)
    shown = config.rule.type

    def not_(f: Features) -> str | None:
        return f"not {shown}" if child(f) is None else None

    return not_
