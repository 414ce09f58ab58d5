"""``top_share``: a target share of the stream, the highest-scored frames of a running window."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
from edgeloop_filter.policy import parse_policy
from edgeloop_filter.rules import Features, compile_rule
from edgeloop_filter.rules.top_share import TopShareRule

from edgeloop.errors import ConfigError
from tests.filter_helpers import chosen, decide, policy_engine, prediction


def top_share_policy(share: float, *, score: str = "margin", **rule: Any) -> dict[str, Any]:
    return {
        "strategies": [
            {"name": "top", "rules": [{"type": "top_share", "score": score, "share": share, **rule}]}
        ],
        "audit": {"share": 0},
    }


def uniform_margins(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [rng.random() for _ in range(n)]


@pytest.mark.parametrize("share", [0.05, 0.1, 0.4])
@pytest.mark.parametrize("seed", [1, 2])
def test_it_selects_close_to_the_target_share_of_a_random_stream(share: float, seed: int) -> None:
    # given
    engine = policy_engine(top_share_policy(share), seed=seed)
    margins = uniform_margins(4000, seed)
    # when
    picked = chosen(decide(engine, (prediction(i, margin=m) for i, m in enumerate(margins))))
    # then
    assert len(picked) / len(margins) == pytest.approx(share, abs=max(0.005, 0.1 * share))
    assert all(s.strategy == "top" for s in picked)


@pytest.mark.parametrize("share", [0.05, 0.1, 0.4])
def test_it_picks_the_highest_scored_frames(share: float) -> None:
    # given: scores 1 - margin uniform in [0, 1]; the top `share` scores 1 - share or more
    engine = policy_engine(top_share_policy(share, window=512))
    margins = uniform_margins(4000, 9)
    # when
    picked = chosen(decide(engine, (prediction(i, margin=m) for i, m in enumerate(margins))))
    # then: nearly all picks come from the top share (a little slack around the bar)
    scores = [1.0 - (s.prediction.margin or 0.0) for s in picked[10:]]
    in_top = sum(score >= 1.0 - share * 1.3 for score in scores)
    assert in_top / len(scores) > 0.9
    assert sum(scores) / len(scores) > 1.0 - share


@pytest.mark.parametrize(
    ("score", "kw", "higher"),
    [
        ("entropy", {"entropy": 1.5}, {"entropy": 0.1}),
        ("least_confidence", {"confidence": 0.3}, {"confidence": 0.95}),
        ("margin", {"margin": 0.02}, {"margin": 0.9}),
    ],
)
def test_each_uncertainty_score_ranks_the_uncertain_frames_first(
    score: str, kw: dict[str, Any], higher: dict[str, Any]
) -> None:
    # given: a stream in which 1 frame in 10 is uncertain
    engine = policy_engine(top_share_policy(0.1, score=score, window=100))
    stream = [prediction(i, **(kw if i % 10 == 0 else higher)) for i in range(1000)]
    # when
    picked = chosen(decide(engine, stream))
    # then
    uncertain = {p.sample_id for p in stream[::10]}
    assert len(picked) == pytest.approx(100, abs=15)
    assert sum(s.sample_id in uncertain for s in picked) / len(picked) > 0.9


def test_equal_scores_are_shared_out_by_the_seeded_draw() -> None:
    # given: every frame scores the same
    engine = policy_engine(top_share_policy(0.1))
    # when
    picked = chosen(decide(engine, (prediction(i, margin=0.5) for i in range(2000))))
    # then
    assert len(picked) == pytest.approx(200, abs=30)


def test_the_window_and_pacing_start_over_with_a_new_model_version() -> None:
    # given: the old model's frames all scored high
    engine = policy_engine(top_share_policy(0.1, window=200))
    old = decide(engine, (prediction(i, margin=0.01, model_version="1") for i in range(400)))
    # when: the new model's frames all score lower than any the old window held
    rng = random.Random(4)
    new = decide(
        engine, (prediction(1000 + i, margin=0.5 + rng.random() / 2, model_version="2") for i in range(400))
    )
    # then: it ranks the new frames among themselves and keeps selecting its share
    assert len(chosen(old)) == pytest.approx(40, abs=8)
    assert len(chosen(new)) == pytest.approx(40, abs=8)
    assert len(chosen(new[:100])) >= 5


def test_without_reset_a_stale_window_would_starve_the_new_model() -> None:
    # given: the same streams under one model version
    engine = policy_engine(top_share_policy(0.1, window=200))
    decide(engine, (prediction(i, margin=0.01) for i in range(400)))
    # when
    rng = random.Random(4)
    new = decide(engine, (prediction(1000 + i, margin=0.5 + rng.random() / 2) for i in range(100)))
    # then: the bar set by the old frames holds until pacing lowers it (this is what reset avoids)
    assert len(chosen(new)) < 5


def test_warm_up_selects_new_highs_without_running_ahead_of_the_target() -> None:
    # given: a rule that ranks after 16 scores
    rule = compile_rule(TopShareRule(type="top_share", share=0.25, min_window=16), random.Random(1))
    scores = [0.5, 0.3, 0.8, 0.2, 0.9, 0.95, 0.1, 0.99, 0.999]
    # when
    picks = [rule(Features("cat", 0.5, 1.0 - s, None, "cam")) is not None for s in scores]
    # then: the first, then a new high only while at or under 25% of frames
    assert picks == [True, False, False, False, True, False, False, False, True]


def test_drift_share_is_used_while_drift_is_detected() -> None:
    # given
    config = TopShareRule(type="top_share", share=0.05, drift_share=0.3, window=100)
    calm, drifting = compile_rule(config, random.Random(1)), compile_rule(config, random.Random(1))
    margins = uniform_margins(2000, 3)
    # when
    calm_picks = sum(calm(Features("c", 0.5, m, None, "cam")) is not None for m in margins)
    drift_picks = sum(
        drifting(Features("c", 0.5, m, None, "cam", drifting=True)) is not None for m in margins
    )
    # then
    assert calm_picks == pytest.approx(100, abs=20)
    assert drift_picks == pytest.approx(600, abs=60)


def test_the_reason_names_the_score_and_the_bar() -> None:
    # given
    engine = policy_engine(top_share_policy(0.5, window=4, min_window=2))
    # when
    picked = chosen(decide(engine, (prediction(i, margin=m) for i, m in enumerate([0.9, 0.8, 0.7, 0.01]))))
    # then
    assert picked[-1].reason.startswith("top: margin score 0.99 in the top")
    assert "bar" in picked[-1].reason


def test_a_prediction_without_a_score_is_not_selected_and_not_ranked() -> None:
    # given
    engine = policy_engine(top_share_policy(0.5))
    # when: no margin, no top_k, no scores
    decisions = decide(engine, [prediction(1, margin=None)])
    # then
    assert decisions[0].dropped == "no_strategy_matched"


@pytest.mark.parametrize(
    ("rule", "says"),
    [
        ({"share": 0}, "share = 0.0: a target share is a fraction of the stream in (0, 1]"),
        ({"share": 1.5}, "share = 1.5: a target share"),
        ({"share": -0.1}, "share = -0.1"),
        ({"share": 0.1, "window": 1}, "window = 1: rank against 2 to 100000 recent scores"),
        ({"share": 0.1, "window": 8, "min_window": 9}, "min_window = 9 is larger than window = 8"),
        ({"share": 0.1, "drift_share": 2}, "drift_share = 2.0"),
        ({"share": 0.1, "score": "vibes"}, "top_share.score"),
    ],
)
def test_an_impossible_target_is_refused_with_the_path_and_the_reason(
    rule: dict[str, Any], says: str
) -> None:
    # given
    doc = {"strategies": [{"name": "top", "rules": [{"type": "top_share", **rule}]}]}
    # then
    with pytest.raises(ConfigError) as raised:
        parse_policy(doc)
    assert "policy.strategies.0.rules.0.top_share" in raised.value.reason
    assert says in raised.value.reason


def test_the_adaptive_policy_in_the_docs_is_valid_and_selects_with_audit(repo_root: Path) -> None:
    # given: the example policy of docs/filter.md, five classes in turn
    text = (repo_root / "docs" / "filter.md").read_text(encoding="utf-8")
    block = text.split("## An adaptive policy", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    engine = policy_engine(json.loads(block))
    # when
    stream = [prediction(i, margin=m, label=str(i % 5)) for i, m in enumerate(uniform_margins(2000, 1))]
    picked = chosen(decide(engine, stream))
    # then
    by = {name: sum(s.strategy == name for s in picked) for name in ("uncertain", "random", "audit")}
    assert by["uncertain"] == 120  # its hourly limit: every frame here is in one hour
    assert by["audit"] == pytest.approx(40, abs=15)
    assert by["random"] > 0
