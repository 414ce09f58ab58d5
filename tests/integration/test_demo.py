"""``edgeloop demo --quick`` end to end, as a user runs it: the closed loop on one machine.

Two runs, two seeds and two drift kinds between them (each of ~1.5 minutes on two cores), at
severe drift: the built-in trainer's first model already scores ~93% on the medium drifts, which
leaves a gain too small for the gate to prove on one quick run's audit share. The retrained
model must beat the initial one on the drifted test set, and every round must show its labels,
the gate's decision and the field accuracy.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT, subprocess_env

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


@pytest.mark.parametrize(("seed", "drift"), [(7, "blur"), (3, "rotate")], ids=["seed7-blur", "seed3-rotate"])
def test_quick_demo_improves_the_model_on_the_drift_and_reports_each_round(
    tmp_path: Path, loopback_address: str, seed: int, drift: str
) -> None:
    # given a fresh state folder and a loopback address of our own
    state = tmp_path / "demo"
    report_path = tmp_path / "report.json"
    # when
    done = subprocess.run(
        [sys.executable, "-m", "edgeloop", "demo", "--quick", "--state-dir", str(state),
         "--seed", str(seed), "--drift", drift, "--severity", "severe",
         "--bind", loopback_address, "--report", str(report_path)],
        cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=420,
    )  # fmt: skip
    # then
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(report_path.read_text())
    counts, models, rounds = report["counts"], report["models"], report["rounds"]
    # a retrained model was promoted, rolled out, and the inference module serves it
    assert report["promoted"], rounds
    assert report["final_version"] != report["initial_version"]
    assert report["inference_reports"] == f"{report['final_version']} (loaded)"
    # it beats the initial model on the drifted test set without forgetting the clean world
    before, after = models["initial"]["accuracy"], models["final"]["accuracy"]
    assert after["drifted_test"] > before["drifted_test"], (before, after)
    assert after["drifted_stream"] > before["drifted_stream"]
    assert after["clean_holdout"] >= before["clean_holdout"] - 0.05
    # the loop ran in rounds: a first model, then several runs as labels arrived; the promotion
    # was decided on the audit share, with its interval, and field accuracy was measured
    assert rounds[0]["round"] == 0
    assert len(rounds) >= 3, rounds
    promoted = [r for r in rounds[1:] if r["status"] == "promoted"]
    assert promoted, rounds
    assert all(r["audit"] > 0 and r["interval"][0] > 0 for r in promoted)
    assert any(f["n"] > 0 for f in rounds[-1]["field_accuracy"])
    assert all(r["train"] + r["audit"] <= r["labelled"] for r in rounds[1:])
    # fewer samples were uploaded than captured, and every one of them decrypts
    assert counts["captured"] == report["scenario"]["stream_frames"]
    assert 0 < counts["uploaded"] < counts["captured"]
    assert report["decrypt"] == {"checked": counts["uploaded"], "ok": counts["uploaded"], "failures": []}
    # the figures a person reads
    assert tmp_path.joinpath("report.png").stat().st_size > 10_000
    assert "drifted test set:" in done.stdout
    assert "audit gain" in done.stdout
    assert "every uploaded sample decrypts" in done.stdout
