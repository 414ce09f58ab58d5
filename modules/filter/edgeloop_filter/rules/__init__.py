"""The rules of a policy, one file each, registered by name in ``RULES``.

A rule is a config model (its ``type`` is its name) and a builder that compiles it into a
predicate ``Features -> reason | None``. ``all``/``any``/``not`` compose other rules.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import Field

from edgeloop_filter.rules import (
    classes,
    composition,
    confidence_band,
    entropy,
    every_nth,
    margin,
    novelty,
    random_share,
    top_share,
)
from edgeloop_filter.rules.base import NO_EMBEDDING, BuildContext, Features, Predicate

RuleConfig = Annotated[
    confidence_band.ConfidenceBandRule
    | margin.MarginRule
    | entropy.EntropyRule
    | classes.ClassesRule
    | random_share.RandomRule
    | every_nth.EveryNthRule
    | top_share.TopShareRule
    | novelty.NoveltyRule
    | composition.AllRule
    | composition.AnyRule
    | composition.NotRule,
    Field(discriminator="type"),
]

for _model in (composition.AllRule, composition.AnyRule, composition.NotRule):
    _model.model_rebuild(_types_namespace={"RuleConfig": RuleConfig})

#: Rule name -> builder ``(config, BuildContext) -> Predicate``.
RULES: dict[str, Callable[[Any, BuildContext], Predicate]] = {
    "confidence_band": confidence_band.build,
    "margin": margin.build,
    "entropy": entropy.build,
    "classes": classes.build,
    "random": random_share.build,
    "every_nth": every_nth.build,
    "top_share": top_share.build,
    "novelty": novelty.build,
    "all": composition.build_all,
    "any": composition.build_any,
    "not": composition.build_not,
}


def compile_rule(config: Any, rng: random.Random) -> Predicate:
    """Compile one rule config (and its children) into a predicate."""
    ctx = BuildContext(rng=rng, compile=lambda child: RULES[child.type](child, ctx))
    return RULES[config.type](config, ctx)


def uses_embedding(config: Any) -> bool:
    """Whether a rule (or one of its children) reads the prediction's embedding."""
    if config.type == "novelty" or getattr(config, "score", None) in top_share.NOVELTY_SCORES:
        return True
    children = list(getattr(config, "rules", None) or [])
    child = getattr(config, "rule", None)
    return any(uses_embedding(c) for c in [*children, *([child] if child is not None else [])])


__all__ = ["NO_EMBEDDING", "RULES", "Features", "Predicate", "RuleConfig", "compile_rule", "uses_embedding"]
