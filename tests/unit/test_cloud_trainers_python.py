"""The ``python`` trainer kind: an entry point run in a child interpreter, with the contract's checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from edgeloop_cloud.trainers import TrainerFailed
from edgeloop_cloud.trainers.factory import make_trainer, run_trainer
from edgeloop_cloud.trainers.python_entry import PythonTrainerConfig
from pydantic import ValidationError

from tests.model_factory import digits_model
from tests.trainer_support import digit_samples, job


def _config(entry_point: str, tmp_path: Path, **extra: object) -> PythonTrainerConfig:
    (tmp_path / "m.onnx").write_bytes(digits_model("logreg"))
    return PythonTrainerConfig.model_validate(
        {
            "kind": "python",
            "entry_point": entry_point,
            "env": {"FIXTURE_MODEL": str(tmp_path / "m.onnx")},
            **extra,
        }
    )


def test_an_entry_point_gets_the_request_and_its_output_becomes_the_candidate(tmp_path: Path) -> None:
    # given
    config = _config("tests.trainer_entry:copy_fixture", tmp_path)
    samples = digit_samples(classes=tuple(range(10)), count=20, audit=3)
    # when
    candidate = run_trainer(make_trainer(config), job(samples, seed=5))
    # then
    assert candidate.metrics == {"seed": 5, "first_file_exists": True}
    assert candidate.labels == [str(i) for i in range(10)]
    assert candidate.manifest["trainer"] == {
        "kind": "python",
        "entry_point": "tests.trainer_entry:copy_fixture",
    }
    assert "training 20 samples with seed 5" in candidate.log_tail


def test_an_entry_point_that_raises_fails_the_run_with_its_traceback(tmp_path: Path) -> None:
    config = _config("tests.trainer_entry:crash", tmp_path)
    with pytest.raises(TrainerFailed) as failed:
        run_trainer(make_trainer(config), job(digit_samples(count=4, audit=0)))
    assert failed.value.reason == "the trainer exited with code 1"
    assert failed.value.log_tail[-1] == "RuntimeError: cannot train on 4 samples"


@pytest.mark.parametrize(
    ("entry_point", "message"),
    [
        ("tests.no_such_module:train", "cannot import module 'tests.no_such_module'"),
        ("tests.trainer_entry:missing", "module 'tests.trainer_entry' has no function 'missing'"),
    ],
)
def test_an_entry_point_that_cannot_be_found_is_named(tmp_path: Path, entry_point: str, message: str) -> None:
    config = _config(entry_point, tmp_path)
    with pytest.raises(TrainerFailed) as failed:
        run_trainer(make_trainer(config), job(digit_samples(count=3, audit=0)))
    assert failed.value.reason == "the trainer exited with code 2"
    assert any(message in line for line in failed.value.log_tail)


@pytest.mark.parametrize("entry_point", ["tests.trainer_entry", "tests/trainer_entry.py:train", ":train"])
def test_a_malformed_entry_point_is_refused(entry_point: str) -> None:
    with pytest.raises(ValidationError, match="entry_point"):
        PythonTrainerConfig.model_validate({"kind": "python", "entry_point": entry_point})
