"""Training: seeded and reproducible, metadata the device needs, labels that stay in order."""

from __future__ import annotations

import hashlib
import json

import onnx
import pytest
from edgeloop_cloud.basedata import load_base_set
from edgeloop_cloud.errors import TrainingError
from edgeloop_cloud.training import (
    Example,
    TrainingParams,
    default_preprocess,
    in_holdout,
    label_order,
    train,
)

from edgeloop.model_metadata import LABELS_KEY, MODEL_VERSION_KEY, PREPROCESS_KEY, Preprocess


def _base(limit: int = 200) -> list[Example]:
    base = load_base_set(limit=limit)
    return [Example(image=i, label=lbl) for i, lbl in zip(base.train_images, base.train_labels, strict=True)]


@pytest.mark.parametrize(("seed_a", "seed_b", "same"), [(0, 0, True), (0, 1, False)])
def test_same_inputs_and_seed_give_the_same_model(seed_a: int, seed_b: int, same: bool) -> None:
    # when
    a = train(
        base=_base(), new=[], preprocess=default_preprocess(), params=TrainingParams(seed=seed_a, max_iter=10)
    )
    b = train(
        base=_base(), new=[], preprocess=default_preprocess(), params=TrainingParams(seed=seed_b, max_iter=10)
    )
    # then
    digest = [hashlib.sha256(m.to_bytes(name="digits", version="v1")).hexdigest() for m in (a, b)]
    assert (digest[0] == digest[1]) is same


def test_exported_model_carries_preprocess_labels_and_version() -> None:
    # given
    trained = train(base=_base(), new=[], preprocess=default_preprocess(), params=TrainingParams(max_iter=5))
    # when
    props = {
        p.key: p.value
        for p in onnx.load_from_string(trained.to_bytes(name="digits", version="v7")).metadata_props
    }
    # then
    assert Preprocess.from_json(props[PREPROCESS_KEY]) == default_preprocess()
    assert json.loads(props[LABELS_KEY]) == [str(d) for d in range(10)]
    assert props[MODEL_VERSION_KEY] == "v7"
    assert trained.manifest["params"]["seed"] == 0


def test_labels_are_in_natural_order_with_new_ones_last() -> None:
    assert label_order(["10", "2", "1", "2"], ["z", "a", "2"]) == ["1", "2", "10", "a", "z"]


def test_holdout_membership_is_stable_and_near_the_fraction() -> None:
    # when
    ids = [f"sample-{n}" for n in range(2000)]
    share = sum(in_holdout(i, 0.25) for i in ids) / len(ids)
    # then
    assert 0.2 < share < 0.3
    assert [in_holdout(i, 0.25) for i in ids[:50]] == [in_holdout(i, 0.25) for i in ids[:50]]
    assert not any(in_holdout(i, 0.0) for i in ids)


def test_a_non_flat_layout_is_refused() -> None:
    # given
    nchw = Preprocess(input_kind="image", width=8, height=8, color="gray", layout="NCHW")
    # when / then
    with pytest.raises(TrainingError, match="flat"):
        train(base=_base(50), new=[], preprocess=nchw, params=TrainingParams(max_iter=1))
