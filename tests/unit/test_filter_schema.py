"""The policy schema file, the deployment default and the documented examples."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from edgeloop_filter.config import FilterConfig
from edgeloop_filter.policy import DEFAULT_POLICY, Policy, parse_policy
from edgeloop_filter.schema import DEFAULT_FILE, is_current, main

from edgeloop.runtime.config import validate_config
from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "filter.md"


def test_committed_policy_schema_is_current() -> None:
    # then
    assert is_current(REPO_ROOT / DEFAULT_FILE), "run: python -m edgeloop_filter.schema"


def test_schema_check_fails_on_a_stale_file(tmp_path: Path) -> None:
    # given
    stale = tmp_path / "filter-policy.json"
    stale.write_text("{}\n", encoding="utf-8")
    # when
    failed = main(["--out", str(stale), "--check"])
    main(["--out", str(stale)])
    # then
    assert failed == 1
    assert main(["--out", str(stale), "--check"]) == 0


def test_deployment_default_is_the_recommended_policy() -> None:
    # given
    manifest = json.loads((REPO_ROOT / "deployment.template.json").read_text(encoding="utf-8"))
    desired = manifest["modulesContent"]["filter"]["properties.desired"]
    # when
    config = validate_config(FilterConfig, desired)
    # then
    rules = [rule.type for s in config.policy.strategies for rule in s.rules]
    assert rules == ["top_share", "random"]
    assert all(s.limits.per_hour for s in config.policy.strategies)
    assert config.policy.schedule.always_open
    assert config.policy.strategies == Policy.model_validate(DEFAULT_POLICY).strategies
    assert FilterConfig().policy.strategies == config.policy.strategies


def _json_blocks() -> list[Any]:
    text = DOC.read_text(encoding="utf-8")
    return [json.loads(block) for block in re.findall(r"```json\n(.*?)```", text, flags=re.S)]


@pytest.mark.parametrize("block", [b for b in _json_blocks() if "strategies" in b])
def test_documented_policies_are_valid(block: dict[str, Any]) -> None:
    # then
    parse_policy(block)


def test_documented_strategy_and_schedule_are_valid() -> None:
    # given
    blocks = _json_blocks()
    strategy = next(b for b in blocks if "rules" in b)
    schedule = next(b for b in blocks if "windows" in b)
    # then
    parse_policy({"strategies": [strategy], "schedule": schedule})
