"""``edgeloop demo --quick`` end to end, as a user runs it: the closed loop on one machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_quick_demo_closes_the_loop_and_reports_it(tmp_path: Path, loopback_address: str) -> None:
    # given a fresh state folder and a loopback address of our own
    state = tmp_path / "demo"
    report_path = tmp_path / "report.json"
    # when
    done = subprocess.run(
        [sys.executable, "-m", "edgeloop", "demo", "--quick", "--state-dir", str(state),
         "--bind", loopback_address, "--report", str(report_path)],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    # then
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    counts, models = report["counts"], report["models"]
    # a retrained model was promoted, rolled out, and the inference module serves it
    assert report["promoted"], report["rounds"]
    assert report["final_version"] != report["initial_version"]
    assert report["inference_reports"] == f"{report['final_version']} (loaded)"
    # it beats the initial model on the drifted stream without forgetting the clean world
    before, after = models["initial"]["accuracy"], models["final"]["accuracy"]
    assert after["drifted_stream"] > before["drifted_stream"]
    assert after["clean_holdout"] >= before["clean_holdout"] - 0.05
    # fewer samples were uploaded than captured, and every one of them decrypts
    assert counts["captured"] == report["scenario"]["stream_frames"]
    assert 0 < counts["uploaded"] < counts["captured"]
    assert report["decrypt"] == {"checked": counts["uploaded"], "ok": counts["uploaded"], "failures": []}
    # the figures a person reads
    assert tmp_path.joinpath("report.png").stat().st_size > 10_000
    assert "drifted_stream" in done.stdout
    assert "every uploaded sample decrypts" in done.stdout
