"""Novelty on the model's embedding: the memory of selected embeddings, the rules that read
it, and embeddings that are missing or malformed."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from edgeloop_filter.novelty import EmbeddingMemory

from edgeloop.contracts import encode_embedding
from tests.filter_helpers import chosen, decide, policy_engine, prediction


def direction(angle: float, dims: int = 8) -> list[float]:
    return [math.cos(angle), math.sin(angle)] + [0.0] * (dims - 2)


def novelty_policy(score: str = "novelty", share: float = 0.1, **extra: Any) -> dict[str, Any]:
    rule = {"type": "top_share", "score": score, "share": share, "window": 100}
    return {"strategies": [{"name": "novel", "rules": [rule]}], "audit": {"share": 0}, **extra}


def test_novelty_is_the_halved_cosine_distance_to_the_nearest_remembered() -> None:
    # given
    memory = EmbeddingMemory(capacity=2)
    memory.follow("1", 8)
    # when / then
    assert memory.novelty(direction(0.0)) == 1.0
    memory.remember(direction(0.0))
    assert memory.novelty([5.0, 0, 0, 0, 0, 0, 0, 0]) == pytest.approx(0.0, abs=1e-6)
    assert memory.novelty(direction(math.pi / 2)) == pytest.approx(0.5, abs=1e-6)
    assert memory.novelty(direction(math.pi)) == pytest.approx(1.0, abs=1e-6)


def test_the_memory_is_bounded_and_forgets_the_oldest() -> None:
    # given
    memory = EmbeddingMemory(capacity=2)
    memory.follow("1", 8)
    for angle in (0.0, 1.0, 2.0):
        memory.remember(direction(angle))
    # then: the first is forgotten
    assert len(memory) == 2
    assert memory.novelty(direction(0.0)) == pytest.approx((1 - math.cos(1.0)) / 2, abs=1e-6)


def test_novelty_top_share_prefers_frames_unlike_those_selected() -> None:
    # given: 90% of frames near one direction, 10% from anywhere on the circle
    rng = random.Random(5)
    frames = []
    for i in range(2000):
        novel = i % 10 == 0
        angle = rng.uniform(0, 2 * math.pi) if novel else rng.gauss(0.0, 0.05)
        frames.append((novel, prediction(i, margin=0.5, embedding=encode_embedding(direction(angle)))))
    engine = policy_engine(novelty_policy())
    # when
    picked = {s.sample_id for s in chosen(decide(engine, (p for _, p in frames)))}
    # then: most picks are the rare, novel frames, though they are 10% of the stream
    novel_ids = {p.sample_id for novel, p in frames if novel}
    assert len(picked) == pytest.approx(200, abs=40)
    assert len(picked & novel_ids) / len(picked) > 0.6


def test_margin_x_novelty_needs_both_uncertainty_and_novelty() -> None:
    # given: frames that are novel and certain, common and uncertain, or novel and uncertain
    rng = random.Random(2)
    kinds = ["novel_certain", "common_uncertain", "both"] * 600
    stream = []
    for i, kind in enumerate(kinds):
        angle = rng.uniform(0, 2 * math.pi) if kind != "common_uncertain" else rng.gauss(0.0, 0.05)
        margin = 0.9 if kind == "novel_certain" else rng.uniform(0.0, 0.1)
        stream.append(prediction(i, margin=margin, embedding=encode_embedding(direction(angle))))
    engine = policy_engine(novelty_policy("margin_x_novelty", share=0.2))
    # when
    picked = chosen(decide(engine, stream))
    # then
    both = {p.sample_id for p, kind in zip(stream, kinds, strict=True) if kind == "both"}
    assert sum(s.sample_id in both for s in picked) / len(picked) > 0.7


def test_the_plain_novelty_rule_matches_above_its_threshold() -> None:
    # given
    doc = {"strategies": [{"name": "n", "rules": [{"type": "novelty", "above": 0.1}]}], "audit": {"share": 0}}
    engine = policy_engine(doc)
    same, other = encode_embedding(direction(0.0)), encode_embedding(direction(2.0))
    # when
    decisions = decide(engine, [prediction(1, embedding=same), prediction(2, embedding=same),
                                prediction(3, embedding=other)])  # fmt: skip
    # then
    assert [d.selected is not None for d in decisions] == [True, False, True]
    assert decisions[2].selected is not None
    assert decisions[2].selected.reason.startswith("n: novelty 0.")


def test_a_selected_sample_goes_on_without_its_embedding() -> None:
    # given
    engine = policy_engine(novelty_policy())
    # when
    [picked] = chosen(decide(engine, [prediction(1, embedding=encode_embedding([1.0, 2.0]))]))
    # then
    assert picked.prediction.embedding is None


def test_a_prediction_without_embedding_is_dropped_as_no_embedding_while_others_still_select() -> None:
    # given: a novelty strategy, then an uncertainty strategy
    doc = novelty_policy()
    doc["strategies"].append({"name": "u", "rules": [{"type": "margin", "below": 0.2}]})
    engine = policy_engine(doc)
    # when
    decisions = decide(engine, [prediction(1, margin=0.5), prediction(2, margin=0.1)])
    # then
    assert decisions[0].dropped == "no_embedding"
    assert "no usable embedding" in decisions[0].detail
    assert decisions[1].selected is not None
    assert decisions[1].selected.strategy == "u"
    assert engine.dropped["no_embedding"] == 1


@pytest.mark.parametrize(
    ("embedding", "says"),
    [("%%% not base64 %%%", "not base64"), ("AAAA", "holds 3 bytes"), ("A" * 200, "values; at most 64")],
)
def test_a_malformed_embedding_is_counted_with_its_reason_and_the_prediction_decided(
    embedding: str, says: str
) -> None:
    # given
    doc = novelty_policy()
    doc["strategies"].append({"name": "u", "rules": [{"type": "margin", "below": 0.2}]})
    engine = policy_engine(doc)
    # when
    decisions = decide(engine, [prediction(1, margin=0.1, embedding=embedding)])
    # then
    assert decisions[0].selected is not None
    assert decisions[0].selected.strategy == "u"
    assert engine.embedding_problems == {"bad_embedding": 1}
    assert engine.last_embedding_problem is not None
    assert says in engine.last_embedding_problem
    assert "s000001" in engine.last_embedding_problem


def test_an_embedding_of_another_length_starts_the_memory_over_and_says_so() -> None:
    # given: one selected 8-value embedding
    doc = {"strategies": [{"name": "n", "rules": [{"type": "novelty", "above": 0.1}]}], "audit": {"share": 0}}
    engine = policy_engine(doc)
    decide(engine, [prediction(1, embedding=encode_embedding(direction(0.0, dims=8)))])
    # when: the same model version sends 4 values
    decisions = decide(engine, [prediction(2, embedding=encode_embedding(direction(0.0, dims=4)))])
    # then: the memory holds the new length only, and the problem is named
    assert decisions[0].selected is not None
    assert engine.memory.dims == 4
    assert engine.embedding_problems == {"embedding_length_changed": 1}
    assert "from 8 to 4" in (engine.last_embedding_problem or "")


def test_a_new_model_version_starts_the_memory_over() -> None:
    # given
    doc = {"strategies": [{"name": "n", "rules": [{"type": "novelty", "above": 0.1}]}], "audit": {"share": 0}}
    engine = policy_engine(doc)
    same = encode_embedding(direction(0.0))
    # when
    first = decide(engine, [prediction(1, embedding=same), prediction(2, embedding=same)])
    second = decide(engine, [prediction(3, embedding=same, model_version="2")])
    # then: the same embedding is novel again for the new model
    assert [d.selected is not None for d in first] == [True, False]
    assert second[0].selected is not None
    assert engine.embedding_problems == {}


def test_policies_without_novelty_rules_ignore_embeddings() -> None:
    # given
    engine = policy_engine({"strategies": [{"name": "u", "rules": [{"type": "margin", "below": 0.2}]}]})
    # when
    decide(engine, [prediction(1, margin=0.1, embedding="%%% not base64 %%%")])
    # then
    assert engine.embedding_problems == {}
    assert len(engine.memory) == 0
