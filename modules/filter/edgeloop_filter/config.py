"""The filter module's config (twin desired properties)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from edgeloop_filter.policy import DEFAULT_POLICY, Policy


class FilterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    policy: Policy = Field(
        default_factory=lambda: Policy.model_validate(DEFAULT_POLICY),
        description="The selection policy; an empty twin gets the recommended default.",
    )
    summary_interval_s: float = Field(
        default=60.0, ge=1.0, le=86400.0, description="Seconds between summaries sent upstream."
    )
    history_size: int = Field(
        default=1000, ge=0, le=100_000, description="Recent predictions kept for dryRun."
    )
    state_save_interval_s: float = Field(
        default=2.0,
        ge=0.1,
        le=3600.0,
        description="Longest delay before decisions (budgets, totals) are saved; inputs are "
        "acknowledged to the hub once their decisions are saved.",
    )
    redelivery_memory: int = Field(
        default=4096,
        ge=0,
        le=100_000,
        description="Sample ids of the latest decisions kept (and saved) so that a prediction "
        "delivered again is counted as redelivered instead of decided twice; 0 = off.",
    )
