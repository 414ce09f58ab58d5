"""The trainer contract through the ``command`` kind: the example trainer, and every way a trainer fails."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from edgeloop_cloud.gate import load_check
from edgeloop_cloud.trainers import TrainerFailed
from edgeloop_cloud.trainers.command import CommandTrainerConfig
from edgeloop_cloud.trainers.factory import make_trainer, run_trainer
from pydantic import ValidationError

from tests.model_factory import digits_model
from tests.trainer_support import EXAMPLE_TRAINER, digit_samples, job, relabelled

# A stand-in trainer whose behaviour the test picks: it copies a prepared model and metrics.
SCRIPT = """
import shutil, sys, time
from pathlib import Path
mode, model, metrics, out = sys.argv[1:5]
print("stand-in trainer starting in mode", mode)
if mode == "crash":
    print("Traceback: out of memory", file=sys.stderr)
    sys.exit(3)
if mode == "hang":
    time.sleep(60)
if mode != "no_model":
    shutil.copy(model, Path(out) / "model.onnx")
Path(out, "metrics.json").write_text(metrics)
"""


def _command(tmp_path: Path, mode: str, model: bytes, metrics: str = '{"accuracy": 0.9}') -> list[str]:
    (tmp_path / "trainer.py").write_text(SCRIPT)
    (tmp_path / "fixture.onnx").write_bytes(model)
    literal = metrics.replace("{", "{{").replace("}", "}}")  # the command's placeholders use braces
    return [
        sys.executable,
        str(tmp_path / "trainer.py"),
        mode,
        str(tmp_path / "fixture.onnx"),
        literal,
        "{outputs}",
    ]


def test_the_example_command_trainer_makes_a_candidate_the_gate_can_load() -> None:
    # given
    samples = digit_samples()
    config = CommandTrainerConfig.model_validate(
        {
            "kind": "command",
            "command": [sys.executable, str(EXAMPLE_TRAINER / "train.py"), "{inputs}", "{outputs}"],
        }
    )
    # when
    candidate = run_trainer(make_trainer(config), job(samples))
    # then
    _session, preprocess, labels = load_check(candidate.to_bytes(name="digits", version="v2"))
    assert labels == ["0", "1", "2"]
    assert preprocess.layout == "flat"
    assert candidate.metrics["train_samples"] == 90  # the 12 audit samples were not trained on
    assert candidate.metrics["audit_samples"] == 12
    assert candidate.metrics["audit_accuracy"] > 0.8
    assert [s["sample_id"] for s in candidate.manifest["samples"]] == [s.sample_id for s in samples[:90]]
    assert candidate.manifest["audit_samples"] == 12
    assert any("trained on 90 samples" in line for line in candidate.log_tail)


def test_the_command_sees_the_manifest_placeholders_and_environment(tmp_path: Path) -> None:
    # given: a command that records what it was given, then writes a valid output
    model = digits_model("logreg")
    script = tmp_path / "record.py"
    script.write_text(
        "import json, os, shutil, sys\n"
        "from pathlib import Path\n"
        "manifest = json.loads(Path(sys.argv[1]).read_text())\n"
        "env = {k: v for k, v in os.environ.items() if k.startswith('EDGELOOP_TRAINER_')}\n"
        f"seen = {str(tmp_path / 'seen.json')!r}\n"
        "Path(seen).write_text(json.dumps({'argv': sys.argv[1:], 'manifest': manifest, 'env': env}))\n"
        f"shutil.copy({str(tmp_path / 'm.onnx')!r}, sys.argv[2])\n"
        "Path(sys.argv[3]).write_text('{}')\n"
    )
    (tmp_path / "m.onnx").write_bytes(model)
    command = [sys.executable, str(script), "{manifest}", "{model}", "{metrics}", "--seed={seed}"]
    config = CommandTrainerConfig(kind="command", command=command, base_data="/data/base")
    samples = digit_samples(classes=tuple(range(10)), count=20, audit=2)
    # when
    run_trainer(make_trainer(config), job(samples, champion=model, seed=11))
    # then
    seen = json.loads((tmp_path / "seen.json").read_text())
    manifest = seen["manifest"]
    assert manifest["schema"] == "edgeloop.training-manifest/1"
    assert (manifest["seed"], manifest["base_data"], seen["argv"][-1]) == (11, "/data/base", "--seed=11")
    assert manifest["champion"]["version"] == "v1"
    assert manifest["champion"]["labels"] == [str(i) for i in range(10)]
    first = manifest["samples"][0]
    assert set(first) == {"sample_id", "label", "file", "device", "strategy", "audit", "sha256"}
    assert [s["audit"] for s in manifest["samples"]].count(True) == 2
    assert seen["env"]["EDGELOOP_TRAINER_SEED"] == "11"
    assert seen["env"]["EDGELOOP_TRAINER_CHAMPION"].endswith("champion.onnx")


@pytest.mark.parametrize(
    ("mode", "model", "metrics", "reason"),
    [
        ("crash", "good", "{}", "exited with code 3"),
        ("no_model", "good", "{}", "wrote no model"),
        ("ok", "bare", "{}", "lacks edgeloop.preprocess or edgeloop.labels"),
        ("ok", "letters", "{}", "differ from the champion's"),
        ("ok", "good", "accuracy=0.9", "metrics.json is not JSON"),
        ("ok", "good", "[0.9]", "must hold a JSON object"),
    ],
)
def test_a_bad_trainer_fails_with_the_reason_and_its_log_tail(
    tmp_path: Path, mode: str, model: str, metrics: str, reason: str
) -> None:
    # given
    champion = digits_model("logreg")
    made = {
        "good": champion,
        "bare": relabelled(champion, None),
        "letters": relabelled(champion, list("abcdefghij")),
    }[model]
    config = CommandTrainerConfig(kind="command", command=_command(tmp_path, mode, made, metrics))
    samples = digit_samples(classes=tuple(range(10)), count=20, audit=0)
    # when
    with pytest.raises(TrainerFailed) as failed:
        run_trainer(make_trainer(config), job(samples, champion=champion))
    # then
    assert reason in failed.value.reason
    assert f"stand-in trainer starting in mode {mode}" in failed.value.log_tail
    if mode == "crash":
        assert failed.value.log_tail[-1] == "Traceback: out of memory"


def test_a_trainer_past_its_timeout_is_stopped(tmp_path: Path) -> None:
    # given
    config = CommandTrainerConfig(
        kind="command", command=_command(tmp_path, "hang", digits_model("logreg")), timeout_s=1.5
    )
    # when
    with pytest.raises(TrainerFailed) as failed:
        run_trainer(make_trainer(config), job(digit_samples(count=6, audit=0)))
    # then
    assert "ran past its timeout of 1.5 s" in failed.value.reason
    assert failed.value.log_tail == ["stand-in trainer starting in mode hang"]


def test_a_command_that_does_not_exist_fails_naming_it() -> None:
    config = CommandTrainerConfig(kind="command", command=["/nonexistent/trainer", "{inputs}"])
    with pytest.raises(TrainerFailed, match="cannot start the trainer '/nonexistent/trainer'"):
        run_trainer(make_trainer(config), job(digit_samples(count=3, audit=0)))


def test_a_first_model_must_know_every_label_the_samples_carry(tmp_path: Path) -> None:
    # given: a trainer that returns a model of labels 0-9 while the samples carry 'x'
    config = CommandTrainerConfig(kind="command", command=_command(tmp_path, "ok", digits_model("logreg")))
    samples = [
        s if i else type(s)(**{**s.__dict__, "label": "x"}) for i, s in enumerate(digit_samples(count=4))
    ]
    # when / then
    with pytest.raises(TrainerFailed, match=r"samples are labelled \['x'\]"):
        run_trainer(make_trainer(config), job(samples))


@pytest.mark.parametrize(
    ("command", "message"),
    [
        ([], "at least 1 item"),
        (["train", "{input}"], "unknown placeholder(s) ['input']"),
        (["train", "{inputs"], "write {{ and }} for literal braces"),
    ],
)
def test_a_bad_command_setting_is_refused_naming_it(command: list[str], message: str) -> None:
    with pytest.raises(ValidationError) as bad:
        CommandTrainerConfig.model_validate({"kind": "command", "command": command})
    assert message in str(bad.value)
    assert "command" in str(bad.value)
