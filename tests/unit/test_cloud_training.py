"""Training: seeded and reproducible, metadata the device needs, labels in order, the champion
continued, and the exported graph computing what the trained network computes."""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from edgeloop_cloud import features
from edgeloop_cloud.cnn.export import EMBEDDING_KEY, read_weights
from edgeloop_cloud.cnn.fit import draw_weights
from edgeloop_cloud.errors import TrainingError
from edgeloop_cloud.training import Example, TrainingParams, default_preprocess, label_order, train
from edgeloop_demo.basedata import digits_base_set

from edgeloop.model_metadata import LABELS_KEY, MODEL_VERSION_KEY, PREPROCESS_KEY, Preprocess

FAST = TrainingParams(scratch_steps=30, finetune_steps=10, widths=(4, 8, 8), embedding_size=8)


def _base(limit: int = 200) -> list[Example]:
    base = digits_base_set(limit=limit)
    return [Example(image=i, label=lbl) for i, lbl in zip(base.train_images, base.train_labels, strict=True)]


@lru_cache(maxsize=4)
def _model(seed: int = 0, steps: int = 30) -> bytes:
    params = FAST.model_copy(update={"seed": seed, "scratch_steps": steps})
    return train(base=_base(), new=[], preprocess=default_preprocess(), params=params).to_bytes(name="digits")


@pytest.mark.parametrize(("seed_a", "seed_b", "same"), [(0, 0, True), (0, 1, False)])
def test_same_inputs_and_seed_give_the_same_model(seed_a: int, seed_b: int, same: bool) -> None:
    # when
    a = train(
        base=_base(), new=[], preprocess=default_preprocess(), params=FAST.model_copy(update={"seed": seed_a})
    )
    b = train(
        base=_base(), new=[], preprocess=default_preprocess(), params=FAST.model_copy(update={"seed": seed_b})
    )
    # then
    digest = [hashlib.sha256(m.to_bytes(name="digits", version="v1")).hexdigest() for m in (a, b)]
    assert (digest[0] == digest[1]) is same


def test_exported_model_carries_preprocess_labels_version_and_embedding() -> None:
    # given
    trained = train(base=_base(), new=[], preprocess=default_preprocess(), params=FAST)
    # when
    model = onnx.load_from_string(trained.to_bytes(name="digits", version="v7"))
    props = {p.key: p.value for p in model.metadata_props}
    # then
    assert Preprocess.from_json(props[PREPROCESS_KEY]) == default_preprocess()
    assert json.loads(props[LABELS_KEY]) == [str(d) for d in range(10)]
    assert props[MODEL_VERSION_KEY] == "v7"
    assert props[EMBEDDING_KEY] == "embedding"
    assert [o.name for o in model.graph.output] == ["label", "probabilities", "embedding"]
    assert trained.manifest["params"]["seed"] == 0


def test_onnx_graph_computes_what_the_network_computes() -> None:
    # given: a briefly trained network (batch-norm statistics no longer at their defaults)
    import torch
    from edgeloop_cloud.cnn.augment import Augmentation
    from edgeloop_cloud.cnn.export import to_onnx
    from edgeloop_cloud.cnn.fit import FitPlan, fit
    from edgeloop_cloud.cnn.net import NetShape

    base = digits_base_set(limit=100)
    x = features.batch(base.train_images, default_preprocess())
    y = np.asarray(base.train_labels, dtype=np.int64)
    plan = FitPlan(steps=20, batch_size=16, learning_rate=0.01, weight_decay=0.0, new_share=0.5,
                   label_smoothing=0.0, augmentation=Augmentation())  # fmt: skip
    net = fit(
        x=x, y=y, is_new=np.zeros(len(y), bool), shape=NetShape(1, 10, (4, 8, 8), 8), plan=plan, seed=3
    ).net
    # when
    session = ort.InferenceSession(to_onnx(net, height=16, width=16).SerializeToString())
    label, probs, embedding = session.run(None, {"input": x})
    with torch.no_grad():
        logits, expected_embedding = net(torch.from_numpy(x))
    # then
    assert np.allclose(probs, torch.softmax(logits, 1).numpy(), atol=1e-5)
    assert np.allclose(embedding, expected_embedding.numpy(), atol=1e-4)
    assert (label == probs.argmax(axis=1)).all()


def test_a_default_model_learns_the_clean_digits() -> None:
    # when
    model = train(
        base=_base(300), new=[], preprocess=default_preprocess(), params=TrainingParams(scratch_steps=200)
    )
    # then
    base = digits_base_set(limit=300)
    session = ort.InferenceSession(model.to_bytes(), providers=["CPUExecutionProvider"])
    label = session.run(["label"], {"input": features.batch(base.holdout_images, default_preprocess())})[0]
    assert float((label == np.asarray(base.holdout_labels, dtype=np.int64)).mean()) > 0.85


def test_training_continues_from_a_champion_of_its_own_kind() -> None:
    # given
    champion = _model()
    new = _base(220)[200:]
    # when
    continued = train(base=_base(), new=new, preprocess=default_preprocess(), params=FAST, init=champion)
    fresh = train(base=_base(), new=new, preprocess=default_preprocess(), params=FAST, init=b"not onnx")
    # then
    assert continued.manifest["continued_from_champion"] is True
    assert continued.manifest["steps_run"] == FAST.finetune_steps
    assert fresh.manifest["continued_from_champion"] is False
    assert fresh.manifest["steps_run"] == FAST.scratch_steps


def test_a_champion_of_another_architecture_is_not_continued() -> None:
    # given
    other = FAST.model_copy(update={"widths": (4, 8, 16)})
    # when
    trained = train(base=_base(), new=[], preprocess=default_preprocess(), params=other, init=_model())
    # then
    assert trained.manifest["continued_from_champion"] is False
    assert read_weights(b"garbage") is None


def test_every_new_label_is_listed_in_the_manifest() -> None:
    # given
    new = [
        Example(image=e.image, label=e.label, sample_id=f"s{k:03d}") for k, e in enumerate(_base(230)[200:])
    ]
    # when
    trained = train(base=_base(), new=new, preprocess=default_preprocess(), params=FAST)
    # then
    assert [s["sample_id"] for s in trained.manifest["samples"]] == sorted(e.sample_id for e in new)


def test_draws_balance_classes_and_give_new_samples_their_share() -> None:
    # given: 90 base examples of class 0, 10 of class 1, 5 new examples of class 1
    labels = np.array([0] * 90 + [1] * 10 + [1] * 5)
    is_new = np.array([False] * 100 + [True] * 5)
    # when
    w = draw_weights(labels, is_new, new_share=0.4)
    # then
    assert w.sum() == pytest.approx(1.0)
    assert w[is_new].sum() == pytest.approx(0.4)
    assert w[:90].sum() == pytest.approx(w[90:100].sum())


def test_labels_are_in_natural_order_with_new_ones_last() -> None:
    assert label_order(["10", "2", "1", "2"], ["z", "a", "2"]) == ["1", "2", "10", "a", "z"]


@pytest.mark.parametrize(
    ("preprocess", "match"),
    [
        (Preprocess(input_kind="image", width=8, height=8, color="gray", layout="flat"), "NCHW"),
        (Preprocess(input_kind="vector", vector_size=4, layout="flat"), "NCHW"),
    ],
)
def test_a_preprocess_the_trainer_cannot_train_for_is_refused(preprocess: Preprocess, match: str) -> None:
    with pytest.raises(TrainingError, match=match):
        train(base=_base(50), new=[], preprocess=preprocess, params=FAST)


def test_a_label_without_examples_is_refused() -> None:
    with pytest.raises(TrainingError, match="no training examples"):
        train(
            base=_base(50), new=[], preprocess=default_preprocess(), params=FAST, labels=[*"0123456789", "x"]
        )
