"""The built-in CNN behind the trainer contract: the same model as calling ``train`` directly."""

from __future__ import annotations

import pytest
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.trainers import TrainerFailed
from edgeloop_cloud.trainers.builtin import BuiltinTrainerConfig
from edgeloop_cloud.trainers.factory import make_trainer, run_trainer
from edgeloop_cloud.trainers.job import TrainingJob
from edgeloop_cloud.training import Example, TrainingParams, default_preprocess, train
from edgeloop_demo.basedata import digits_base_set

from tests.trainer_support import relabelled

FAST = TrainingParams(scratch_steps=20, finetune_steps=5, widths=(4, 8, 8), embedding_size=8)


def _examples(limit: int) -> list[Example]:
    base = digits_base_set(limit=limit)
    return [Example(image=i, label=lbl) for i, lbl in zip(base.train_images, base.train_labels, strict=True)]


def test_the_builtin_kind_gives_the_bytes_train_gives() -> None:
    # given
    base, new = _examples(200), [Example(image=e.image, label=e.label, sample_id=f"n{i}") for i, e in
                                 enumerate(_examples(230)[200:])]  # fmt: skip
    trainer = make_trainer(BuiltinTrainerConfig(), base=base, params=FAST)
    job = TrainingJob(model_name="digits", run_id="r", seed=FAST.seed, examples=new)
    # when
    candidate = run_trainer(trainer, job)
    # then
    direct = train(base=base, new=new, preprocess=default_preprocess(), params=FAST)
    assert candidate.to_bytes(name="digits", version="v1") == direct.to_bytes(name="digits", version="v1")
    assert candidate.manifest["trainer"] == "edgeloop.cnn/1"
    assert set(candidate.metrics) == {"steps_run", "final_loss", "continued_from_champion"}


def test_the_builtin_candidate_must_keep_the_champions_labels() -> None:
    # given: a champion whose labels are letters, which the digits CNN cannot keep
    base = _examples(200)
    champion = relabelled(train(base=base, new=[], preprocess=default_preprocess(), params=FAST).to_bytes(),
                          list("abcdefghij"))  # fmt: skip
    job = TrainingJob(model_name="digits", run_id="r", seed=0, champion=champion, champion_version="v1")
    # when / then
    with pytest.raises(TrainerFailed, match="differ from the champion's"):
        run_trainer(make_trainer(BuiltinTrainerConfig(), base=base, params=FAST), job)


def test_builtin_is_the_default_trainer() -> None:
    assert CloudConfig().trainer.kind == "builtin"
