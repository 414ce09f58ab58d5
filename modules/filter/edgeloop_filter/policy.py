"""The selection policy: a typed, versioned document (twin key ``policy`` or ``setPolicy``).

Its JSON Schema (``policy_json_schema``) is generated from these models into
``docs/schemas/filter-policy.json``.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edgeloop.errors import ConfigError
from edgeloop.runtime.config import describe_validation_error
from edgeloop_filter.rules import RuleConfig
from edgeloop_filter.schedule import Schedule

_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,64}$")
#: The strategy name (and tag) of audit samples.
AUDIT = "audit"
#: The largest audit share: above it, it is a random strategy rather than an audit.
MAX_AUDIT_SHARE = 0.2


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Limits(_Model):
    """Most selections per calendar minute, hour and UTC day, and most bytes per UTC day."""

    per_minute: int | None = Field(default=None, ge=0, description="Selections per minute; unset: no limit.")
    per_hour: int | None = Field(default=None, ge=0, description="Selections per hour; unset: no limit.")
    per_day: int | None = Field(default=None, ge=0, description="Selections per UTC day; unset: no limit.")
    bytes_per_day: int | None = Field(
        default=None, ge=0, description="Sample bytes per UTC day (frame.bytes); unset: no limit."
    )


class ClassBalance(_Model):
    """Cap the share one predicted class may take of a strategy's recent selections."""

    max_share: float = Field(
        gt=0.0, lt=1.0, description="Largest share of the last 'window' selections one class may take."
    )
    window: int = Field(default=100, ge=2, le=10_000, description="The strategy's recent selections counted.")
    min_selections: int = Field(
        default=10, ge=1, description="Selections in the window before the cap applies."
    )


class Strategy(_Model):
    """A named way of selecting: all its rules must match, within its window and limits."""

    name: str = Field(description="Unique name, recorded on every sample it selects.")
    rules: list[RuleConfig] = Field(min_length=1, description="Rules that must all match.")
    limits: Limits = Field(default_factory=Limits, description="This strategy's budget.")
    schedule: Schedule = Field(default_factory=Schedule, description="When this strategy may select.")
    tags: list[str] = Field(default_factory=list, description="Tags copied onto selected samples.")
    priority: int = Field(default=0, description="Copied onto selected samples; higher is kept longer.")
    class_balance: ClassBalance | None = Field(
        default=None, description="Cap one predicted class's share of this strategy's selections."
    )

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(f"strategy name {value!r}: use 1-64 letters, digits, '_', '-', '.'")
        if value == AUDIT:
            raise ValueError(f"strategy name {AUDIT!r} is reserved for the policy's audit share")
        return value


class Dedup(_Model):
    """Skip a sample whose dHash is within ``max_distance`` bits of one selected recently from
    the same source."""

    enabled: bool = Field(default=True, description="Suppress near-duplicates.")
    max_distance: int = Field(default=4, ge=0, le=64, description="Hamming distance counted as the same.")
    window_seconds: float = Field(default=600.0, gt=0, description="How long a selected hash is remembered.")
    per_source: int = Field(default=64, ge=1, le=4096, description="Hashes remembered per source.")


class Audit(_Model):
    """A small random share of the stream, independent of the model's scores and of every
    budget, selected as strategy ``audit`` with tag ``audit``: an unbiased sample that the
    cloud uses only to evaluate models (field accuracy, the gate), never to train them."""

    share: float = Field(
        default=0.02,
        json_schema_extra={"minimum": 0, "maximum": MAX_AUDIT_SHARE},
        description=f"Share of usable predictions drawn at random; 0: off; at most {MAX_AUDIT_SHARE}.",
    )
    priority: int = Field(default=10, description="Copied onto audit samples; higher is kept longer.")

    @field_validator("share")
    @classmethod
    def _share(cls, value: float) -> float:
        if value < 0.0:
            raise ValueError(f"share = {value}: an audit share is in [0, {MAX_AUDIT_SHARE}] (0 turns it off)")
        if value > MAX_AUDIT_SHARE:
            raise ValueError(
                f"share = {value} is not an audit (at most {MAX_AUDIT_SHARE}); "
                "select more at random with a strategy using the 'random' rule"
            )
        return value


class Novelty(_Model):
    """The memory that ``novelty`` scores compare a prediction's embedding with."""

    memory: int = Field(
        default=256, ge=1, le=4096, description="Embeddings of the latest selections remembered."
    )


class Boost(_Model):
    """Raise every limit while drift is high."""

    psi_above: float = Field(default=0.25, gt=0, description="PSI (either statistic) that counts as drift.")
    factor: float = Field(default=2.0, ge=1.0, le=100.0, description="Multiplier applied to every limit.")


class DriftReference(_Model):
    """A reference distribution, e.g. from the model card."""

    confidence: list[float] = Field(
        min_length=2, description="Share of samples per equal-width confidence bin over [0, 1]."
    )
    classes: dict[str, float] = Field(default_factory=dict, description="Share of samples per class.")


class Drift(_Model):
    """Rolling histograms of confidence and predicted class against a reference, as PSI."""

    enabled: bool = Field(default=True, description="Compute drift statistics.")
    psi_above: float = Field(
        default=0.25,
        gt=0,
        description="PSI (either statistic) at or above which drift is detected: rules then use "
        "their drift_share / drift_p.",
    )
    bins: int = Field(default=10, ge=2, le=100, description="Equal-width confidence bins over [0, 1].")
    window: int = Field(default=500, ge=10, description="Samples in the rolling window.")
    reference_samples: int = Field(
        default=500, ge=10, description="Without 'reference': the first N samples of a model version."
    )
    reference: DriftReference | None = Field(default=None, description="Fixed reference distribution.")
    boost: Boost | None = Field(default=None, description="Raise budgets while drift is high.")

    @model_validator(mode="after")
    def _bins_match(self) -> Drift:
        if self.reference is not None and len(self.reference.confidence) != self.bins:
            raise ValueError(
                f"reference.confidence has {len(self.reference.confidence)} bins but bins = {self.bins}"
            )
        return self


class Policy(_Model):
    """The selection policy. The audit share is drawn first; then strategies are tried in
    order, and the first that matches and has budget left (its own and the global one)
    selects the sample."""

    version: str = Field(default="0", min_length=1, description="Your version of this policy, reported back.")
    strategies: list[Strategy] = Field(default_factory=list, description="Tried in order.")
    limits: Limits = Field(default_factory=Limits, description="Budget shared by all strategies.")
    schedule: Schedule = Field(default_factory=Schedule, description="When anything may be selected.")
    dedup: Dedup = Field(default_factory=Dedup, description="Near-duplicate suppression.")
    drift: Drift = Field(default_factory=Drift, description="Drift statistics and budget boost.")
    audit: Audit = Field(default_factory=Audit, description="The random audit share, apart from budgets.")
    novelty: Novelty = Field(default_factory=Novelty, description="Memory of novelty scores.")

    @model_validator(mode="after")
    def _unique_names(self) -> Policy:
        names = [s.name for s in self.strategies]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"strategy names must be unique, repeated: {', '.join(dupes)}")
        return self


#: The recommended default (see docs/filter.md): the most uncertain 5% of frames by margin (a
#: running-quantile threshold that spends the budget through the stream, where a fixed threshold
#: takes the first uncertain frames and goes silent when drift makes the model confidently
#: wrong), a small random share for coverage, and the 2% audit share (the policy's default).
DEFAULT_POLICY: dict[str, Any] = {
    "version": "default-2",
    "strategies": [
        {
            "name": "uncertain",
            "rules": [{"type": "top_share", "score": "margin", "share": 0.05, "window": 256}],
            "limits": {"per_minute": 5, "per_hour": 60},
            "tags": ["uncertain"],
            "priority": 10,
        },
        {
            "name": "random",
            "rules": [{"type": "random", "p": 0.02}],
            "limits": {"per_minute": 2, "per_hour": 15},
            "tags": ["random-baseline"],
            "priority": 5,
        },
    ],
    "limits": {"per_hour": 75, "per_day": 1000},
}


def parse_policy(doc: Any) -> Policy:
    """Validate a policy document.

    Raises:
        ConfigError: naming the path (``policy.strategies.0.rules.0.bands``) and the reason.
    """
    if not isinstance(doc, dict):
        raise ConfigError(f"a policy is a JSON object, got {type(doc).__name__}")
    try:
        return Policy.model_validate(doc)
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(exc, prefix="policy")) from exc


def policy_json_schema() -> dict[str, Any]:
    schema = Policy.model_json_schema()
    schema["$id"] = "https://edgeloop.dev/schemas/filter-policy.json"
    schema["title"] = "EdgeLoop filter policy"
    return schema
