"""``edgeloop filter``: check, replay and schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edgeloop.cli import main
from edgeloop.runtime.codec import encode
from tests.filter_helpers import prediction

POLICY = {"version": "cli-1", "strategies": [{"name": "low", "rules": [
    {"type": "confidence_band", "bands": [[0, 0.9]]}], "limits": {"per_minute": 2}}]}  # fmt: skip


def write(path: Path, doc: object) -> str:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("wrapped", [False, True])
def test_check_accepts_a_policy_or_a_twin_document(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], wrapped: bool
) -> None:
    # given
    path = write(tmp_path / "p.json", {"policy": POLICY} if wrapped else POLICY)
    # when
    code = main(["filter", "check", path])
    # then
    assert code == 0
    assert "valid policy 'cli-1'; strategies: low" in capsys.readouterr().out


def test_check_names_the_path_of_a_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given
    path = write(
        tmp_path / "p.json", {"strategies": [{"name": "a", "rules": [{"type": "margin", "below": 2}]}]}
    )
    # when
    code = main(["filter", "check", path])
    # then
    assert code == 1
    assert "policy.strategies.0.rules.0.margin.below" in capsys.readouterr().out


def test_replay_counts_what_a_policy_selects_from_a_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # given: 6 predictions scored in the same minute, in one line each and one batch line
    items = [prediction(i, confidence=0.5 if i < 5 else 0.95) for i in range(6)]
    lines = [m.body.decode() for m in encode("p", items[:2], max_batch=1)]
    lines += [m.body.decode() for m in encode("p", items[2:], max_batch=10)]
    log = tmp_path / "predictions.jsonl"
    log.write_text("\n".join(lines) + "\n", encoding="utf-8")
    # when
    code = main(["filter", "replay", write(tmp_path / "p.json", POLICY), str(log), "--json"])
    # then
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["seen"] == 6
    assert result["selected_by_strategy"] == {"low": 2}
    assert result["dropped_by_reason"] == {"over_budget": 3, "no_strategy_matched": 1}


def test_replay_reports_a_bad_log_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given
    log = tmp_path / "predictions.jsonl"
    log.write_text('{"schema": "edgeloop.prediction/1"}\n', encoding="utf-8")
    # when
    code = main(["filter", "replay", write(tmp_path / "p.json", POLICY), str(log)])
    # then
    assert code == 1
    assert "predictions.jsonl:1" in capsys.readouterr().out


def test_schema_check_through_the_cli(repo_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # given
    monkeypatch.chdir(repo_root)
    # then
    assert main(["filter", "schema", "--check"]) == 0
