"""``confidence_band``: top-1 confidence inside one of the [low, high) bands, optionally with
other bands for some classes. A band whose high is 1 includes 1."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from edgeloop_filter.rules.base import BuildContext, Features, Predicate, RuleModel, fmt

Band = tuple[float, float]


def _check(bands: list[Band], where: str) -> None:
    for i, (low, high) in enumerate(bands):
        if not (0.0 <= low < high <= 1.0):
            raise ValueError(
                f"{where}[{i}] = [{low}, {high}]: a band is [low, high) with 0 <= low < high <= 1"
            )


class ConfidenceBandRule(RuleModel):
    type: Literal["confidence_band"] = Field(description="Rule name.")
    bands: list[Band] = Field(
        min_length=1,
        description="One or more [low, high) bands of top-1 confidence, e.g. [[0, 0.9]].",
    )
    per_class: dict[str, list[Band]] = Field(
        default_factory=dict,
        description="Bands for particular predicted classes, used instead of 'bands' for them.",
    )

    @model_validator(mode="after")
    def _bands_are_ranges(self) -> ConfidenceBandRule:
        _check(self.bands, "bands")
        for label, bands in self.per_class.items():
            if not bands:
                raise ValueError(f"per_class[{label!r}] is empty: give at least one [low, high) band")
            _check(bands, f"per_class[{label!r}]")
        return self


#: A band and its text in reasons (made once, when the rule is built).
_Said = tuple[float, float, str]


def _said(bands: list[Band]) -> list[_Said]:
    return [(low, high, f" in [{fmt(low)}, {fmt(high)})") for low, high in bands]


def build(config: ConfidenceBandRule, _ctx: BuildContext) -> Predicate:
    default = _said(list(config.bands))
    per_class = {label: _said(list(bands)) for label, bands in config.per_class.items()}

    def confidence_band(f: Features) -> str | None:
        value = f.confidence
        for low, high, text in per_class.get(f.label, default) if per_class else default:
            if low <= value < high or (high == 1.0 and value == 1.0):
                return f"confidence {fmt(value)}{text}"
        return None

    return confidence_band
