"""``top_share``: select a target share of the stream, the frames whose score ranks in the top
``share`` of a running window of recent scores (a streaming quantile), paced toward the target.

Scores (higher is more informative): ``margin`` (1 - margin), ``entropy``, ``least_confidence``
(1 - confidence), ``novelty`` (distance of the embedding to recently selected ones) and
``margin_x_novelty`` (their product).

Pacing: over the last ``window`` decisions the rule has matched a rate r; it ranks the new
score against the effective share 2 * share - r (within [0, 1]), so it raises the bar after
selecting more than the target and lowers it after selecting less. Ties at the bar are broken
by a seeded draw. Until the window holds ``min_window`` scores (warm-up), a frame is selected
when it scores above every score seen so far and the rule is not ahead of its target. The
window and the pacing start over when the prediction's ``model_version`` changes.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edgeloop_filter.quantile import RankWindow
from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel, fmt

Score = Literal["margin", "entropy", "least_confidence", "novelty", "margin_x_novelty"]
#: Scores that read the prediction's embedding.
NOVELTY_SCORES = frozenset({"novelty", "margin_x_novelty"})


def _share(value: float, name: str) -> float:
    if not (0.0 < value <= 1.0):
        raise ValueError(f"{name} = {value}: a target share is a fraction of the stream in (0, 1]")
    return value


class TopShareRule(RuleModel):
    type: Literal["top_share"] = Field(description="Rule name.")
    score: Score = Field(
        default="margin",
        description="What ranks frames: margin (1 - margin), entropy, least_confidence "
        "(1 - confidence), novelty, margin_x_novelty (higher is selected).",
    )
    share: float = Field(
        json_schema_extra={"exclusiveMinimum": 0, "maximum": 1},
        description="Target share of the frames this rule sees, in (0, 1].",
    )
    window: int = Field(
        default=256,
        json_schema_extra={"minimum": 2, "maximum": 100_000},
        description="Recent scores ranked against (and decisions paced over).",
    )
    min_window: int = Field(
        default=16, ge=1, description="Scores the window needs before ranking; until then: warm-up."
    )
    drift_share: float | None = Field(
        default=None,
        json_schema_extra={"exclusiveMinimum": 0, "maximum": 1},
        description="Target share used while drift is detected (policy drift.psi_above); unset: share.",
    )
    seed: int | None = Field(
        default=None, description="Seed of the tie-breaking draws; unset: drawn from the module's."
    )

    @field_validator("share")
    @classmethod
    def _target(cls, value: float) -> float:
        return _share(value, "share")

    @field_validator("drift_share")
    @classmethod
    def _drift_target(cls, value: float | None) -> float | None:
        return None if value is None else _share(value, "drift_share")

    @field_validator("window")
    @classmethod
    def _window(cls, value: int) -> int:
        if not (2 <= value <= 100_000):
            raise ValueError(f"window = {value}: rank against 2 to 100000 recent scores")
        return value

    @model_validator(mode="after")
    def _warm_up_fits(self) -> TopShareRule:
        if self.min_window > self.window:
            raise ValueError(f"min_window = {self.min_window} is larger than window = {self.window}")
        return self


def _score_reader(score: Score) -> Callable[[Features], float | None]:
    def margin(f: Features) -> float | None:
        return None if f.margin is None else 1.0 - f.margin

    def novelty_x_margin(f: Features) -> float | None:
        m, n = margin(f), f.novelty
        return None if m is None or n is None else m * n

    readers: dict[str, Callable[[Features], float | None]] = {
        "margin": margin,
        "entropy": lambda f: f.entropy,
        "least_confidence": lambda f: 1.0 - f.confidence,
        "novelty": lambda f: f.novelty,
        "margin_x_novelty": novelty_x_margin,
    }
    return readers[score]


class TopShare:
    """The compiled rule: its window of scores and its recent decisions."""

    def __init__(self, config: TopShareRule, rng: random.Random) -> None:
        self.config = config
        self.read = _score_reader(config.score)
        self.scores = RankWindow(config.window)
        self.decisions: deque[bool] = deque(maxlen=config.window)
        self.matched = 0
        self.version: object = self  # no version seen yet
        self.rng = rng

    def reset(self) -> None:
        self.scores.clear()
        self.decisions.clear()
        self.matched = 0

    def __call__(self, f: Features) -> str | None:
        if f.model_version != self.version:
            self.version = f.model_version
            self.reset()
        score = self.read(f)
        if score is None or not math.isfinite(score):
            return None
        share = self.config.drift_share if f.drifting and self.config.drift_share else self.config.share
        reason = self._decide(score, share)
        self._record(score, reason is not None)
        return reason

    def _decide(self, score: float, share: float) -> str | None:
        n, name = len(self.scores), self.config.score
        above, equal = self.scores.rank(score)
        if n < self.config.min_window:
            ahead = self.matched >= share * (len(self.decisions) + 1)
            if ahead or (n and (above or equal)):
                return None
            return f"{name} score {fmt(score)} is the highest of {n} (warm-up, target {fmt(share)})"
        rate = self.matched / len(self.decisions) if self.decisions else 0.0
        effective = min(1.0, max(0.0, 2.0 * share - rate))
        slots = effective * n - above
        if slots <= 0.0 or (equal and slots < equal + 1 and self.rng.random() >= slots / (equal + 1)):
            return None
        bar = self.scores.at_rank(max(0, math.ceil(effective * n) - 1))
        return f"{name} score {fmt(score)} in the top {fmt(effective)} of the last {n} (bar {fmt(bar)})"

    def _record(self, score: float, chosen: bool) -> None:
        if len(self.decisions) == self.decisions.maxlen and self.decisions[0]:
            self.matched -= 1
        self.decisions.append(chosen)
        self.matched += chosen
        self.scores.add(score)


def build(config: TopShareRule, ctx: BuildContext) -> Predicate:
    rng = random.Random(config.seed if config.seed is not None else ctx.rng.getrandbits(64))
    return TopShare(config, rng)
