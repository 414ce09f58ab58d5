"""The audit share: a random draw of the stream, apart from every budget and from dedup."""

from __future__ import annotations

import random
from typing import Any

import pytest
from edgeloop_filter.policy import parse_policy

from edgeloop.errors import ConfigError
from tests.filter_helpers import chosen, decide, policy_engine, prediction

EVERYTHING = [{"type": "confidence_band", "bands": [[0, 1]]}]


def stream(n: int, seed: int = 3, **kw: Any) -> list[Any]:
    rng = random.Random(seed)
    return [prediction(i, margin=rng.random(), **kw) for i in range(n)]


def test_the_default_audit_share_is_two_percent_tagged_and_named_audit() -> None:
    # given: a policy that says nothing about audits
    engine = policy_engine({"strategies": []})
    # when
    picked = chosen(decide(engine, stream(10_000)))
    # then
    assert len(picked) / 10_000 == pytest.approx(0.02, abs=0.004)
    assert {(s.strategy, tuple(s.tags)) for s in picked} == {("audit", ("audit",))}
    assert engine.selected["audit"] == len(picked)
    assert picked[0].reason == "audit: random draw under share=0.02"


def test_audit_picks_do_not_follow_the_models_scores() -> None:
    # given: margins uniform in [0, 1] and an uncertainty strategy after the audit
    doc = {
        "strategies": [{"name": "u", "rules": [{"type": "margin", "below": 0.1}]}],
        "audit": {"share": 0.1},
    }
    engine = policy_engine(doc)
    # when
    audited = [s for s in chosen(decide(engine, stream(10_000))) if s.strategy == "audit"]
    # then: the audited margins are spread like the stream's (mean 0.5), not the uncertain ones
    margins = [s.prediction.margin or 0.0 for s in audited]
    assert len(audited) == pytest.approx(1000, abs=100)
    assert sum(margins) / len(margins) == pytest.approx(0.5, abs=0.04)
    assert sum(m < 0.1 for m in margins) / len(margins) == pytest.approx(0.1, abs=0.03)


def test_audit_share_zero_turns_it_off() -> None:
    engine = policy_engine({"strategies": [], "audit": {"share": 0}})
    assert chosen(decide(engine, stream(5000))) == []


def test_audit_picks_neither_spend_nor_are_stopped_by_budgets() -> None:
    # given: a strategy with 5 a day, and the policy's own budget of 5 a day
    doc = {
        "strategies": [{"name": "all", "rules": EVERYTHING, "limits": {"per_day": 5}}],
        "limits": {"per_day": 5},
        "audit": {"share": 0.1},
    }
    engine = policy_engine(doc)
    # when
    decisions = decide(engine, stream(2000))
    # then: the strategy spent its whole budget, and the audit kept drawing after it ran out
    assert engine.selected["all"] == 5
    assert engine.selected["audit"] == pytest.approx(200, abs=40)
    assert engine.dropped["over_budget"] == 2000 - 5 - engine.selected["audit"]
    assert any(d.selected and d.selected.strategy == "audit" for d in decisions[1000:])


def test_near_duplicates_are_audited_all_the_same() -> None:
    # given: every frame has the same dHash
    engine = policy_engine({"strategies": [], "audit": {"share": 0.2}})
    # when
    picked = chosen(decide(engine, stream(1000, dhash="00ff00ff00ff00ff")))
    # then: an audit draw is never dropped as a duplicate
    assert len(picked) == pytest.approx(200, abs=40)
    assert "duplicate" not in engine.dropped


def test_an_audit_is_remembered_so_a_strategy_does_not_upload_its_duplicate() -> None:
    # given
    doc = {"strategies": [{"name": "all", "rules": EVERYTHING}], "audit": {"share": 0.2}}
    engine = policy_engine(doc, seed=1)
    # when
    decisions = decide(engine, stream(50, dhash="00ff00ff00ff00ff"))
    # then: the first selection (audit or strategy) is the only non-audit one
    picked = chosen(decisions)
    assert engine.selected["audit"] >= 1
    assert sum(s.strategy == "all" for s in picked) <= 1
    assert engine.dropped["duplicate"] == 50 - len(picked)


def test_errors_and_closed_windows_are_not_audited() -> None:
    # given: a policy window that never opens on the test day
    doc = {
        "strategies": [],
        "audit": {"share": 0.2},
        "schedule": {"windows": [{"days": ["sun"], "start": "00:00", "end": "06:00"}]},
    }
    engine = policy_engine(doc)
    # when
    decisions = decide(engine, [*stream(100), prediction(999, status="error", label=None, confidence=None)])
    # then
    assert chosen(decisions) == []
    assert engine.dropped == {"window_closed": 100, "error_status": 1}


@pytest.mark.parametrize(
    ("doc", "says"),
    [
        ({"audit": {"share": 0.5}}, "share = 0.5 is not an audit (at most 0.2)"),
        ({"audit": {"share": -0.01}}, "share = -0.01: an audit share is in [0, 0.2]"),
        ({"strategies": [{"name": "audit", "rules": EVERYTHING}]}, "'audit' is reserved"),
    ],
)
def test_what_is_not_an_audit_is_refused(doc: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_policy(doc)
    assert says in raised.value.reason
