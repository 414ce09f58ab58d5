"""The command line's top level and the generated contract schemas."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import edgeloop
from edgeloop.schemas import stale_schemas, write_schemas
from tests.conftest import REPO_ROOT, subprocess_env


def test_version_and_help_work_as_a_user_runs_them() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "edgeloop", "--version"], capture_output=True, text=True, env=subprocess_env()
    )
    helped = subprocess.run(
        [sys.executable, "-m", "edgeloop", "--help"], capture_output=True, text=True, env=subprocess_env()
    )
    assert version.returncode == 0
    assert version.stdout.strip() == f"edgeloop {edgeloop.__version__}"
    assert helped.returncode == 0
    assert "schemas" in helped.stdout


def test_committed_contract_schemas_are_current() -> None:
    assert stale_schemas(REPO_ROOT / "docs" / "schemas") == []


def test_schemas_are_written_and_then_found_current(tmp_path: Path) -> None:
    written = write_schemas(tmp_path)
    assert {p.name for p in written} >= {"edgeloop.prediction-v2.json", "edgeloop.frame-v1.json"}
    assert stale_schemas(tmp_path) == []
    written[0].write_text("{}")
    assert stale_schemas(tmp_path) == [written[0].name]
