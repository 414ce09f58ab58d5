"""``edgeloop dev`` commands as a user runs them: errors that say what to do."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from edgeloop.cli import main
from tests.conftest import subprocess_env
from tests.integration.modules.manifests import manifest


def test_a_bad_route_stops_the_hub_naming_manifest_route_and_position(tmp_path: Path) -> None:
    # given
    path = tmp_path / "deployment.json"
    path.write_text(json.dumps(manifest(["a"], {"broken": "FROM /messages/* WHERE a = INTO $upstream"})))

    # when
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgeloop",
            "dev",
            "hub",
            "--manifest",
            str(path),
            "--state-dir",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=60,
    )

    # then
    assert done.returncode == 1
    assert str(path) in done.stderr
    assert "route 'broken'" in done.stderr
    assert "position 27" in done.stderr


@pytest.mark.parametrize(
    "argv",
    [
        ["dev", "invoke", "a", "getStats"],
        ["dev", "twin", "a"],
        ["dev", "upstream"],
        ["dev", "status"],
    ],
)
def test_commands_without_a_running_hub_say_how_to_start_one(
    tmp_path: Path, argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([*argv, "--state-dir", str(tmp_path)])
    assert code == 1
    assert "edgeloop dev hub" in capsys.readouterr().err


def test_twin_refuses_a_desired_patch_that_is_not_a_json_object(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["dev", "twin", "a", "--desired", "[1]", "--state-dir", str(tmp_path)])
    assert code == 1
    assert "JSON object" in capsys.readouterr().err


def test_logs_prints_the_tail_of_a_module_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # given
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "filter.log").write_text("one\ntwo\nthree\n")

    # when
    code = main(["dev", "logs", "filter", "--tail", "2", "--state-dir", str(tmp_path)])

    # then
    assert code == 0
    assert capsys.readouterr().out == "two\nthree\n"
    assert main(["dev", "logs", "nosuch", "--state-dir", str(tmp_path)]) == 1
