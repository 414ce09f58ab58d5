"""The one twin key style: camelCase spellings are read as snake_case, with a warning."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from edgeloop.errors import ConfigError
from edgeloop.runtime.config import ConfigState
from edgeloop.runtime.keystyle import normalize_keys, to_snake


class Inner(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_wait_ms: float = Field(default=1.0, description="d")


class Outer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    top_k: int = Field(default=3, description="d")
    batching: Inner = Field(default_factory=Inner, description="d")
    opaque: dict[str, int] = Field(default_factory=dict, description="d")


@pytest.mark.parametrize(
    ("camel", "snake"), [("maxBatch", "max_batch"), ("topK", "top_k"), ("sha256", "sha256")]
)
def test_to_snake(camel: str, snake: str) -> None:
    assert to_snake(camel) == snake


def test_camel_keys_are_rewritten_at_every_level_except_free_form_sections() -> None:
    doc, warnings = normalize_keys(Outer, {"topK": 5, "batching": {"maxWaitMs": 2}, "opaque": {"someKey": 1}})
    assert doc == {"top_k": 5, "batching": {"max_wait_ms": 2}, "opaque": {"someKey": 1}}
    assert len(warnings) == 2
    assert "key 'batching.maxWaitMs' is deprecated: write 'batching.max_wait_ms'" in warnings[1]


def test_snake_wins_when_both_spellings_are_given() -> None:
    doc, warnings = normalize_keys(Outer, {"topK": 5, "top_k": 7})
    assert doc == {"top_k": 7}
    assert "ignored" in warnings[0]


def test_config_state_reports_the_warnings_and_still_rejects_unknown_keys() -> None:
    state = ConfigState(Outer, {"topK": 4})
    assert state.config.top_k == 4
    assert state.reported()["configWarnings"] == state.warnings != []
    state.patch({"topK": None, "top_k": 6}, 2)
    assert state.reported()["configWarnings"] == []
    with pytest.raises(ConfigError, match="unknown key 'TopKay'"):
        state.patch({"TopKay": 1}, 3)
