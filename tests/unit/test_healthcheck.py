"""The container health check (the images' HEALTHCHECK)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgeloop.healthcheck import check, process_state


def fake_proc(root: Path, state: str, pid: int = 1) -> Path:
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "stat").write_text(f"{pid} (python -m edgeloop_x (1)) {state} 0 1 1 0 -1\n")
    return root


@pytest.mark.parametrize(
    ("state", "healthy", "reason"),
    [("S", True, "running"), ("R", True, "running"), ("Z", False, "zombie"), ("T", False, "stopped")],
)
def test_process_state_decides_health(tmp_path: Path, state: str, healthy: bool, reason: str) -> None:
    # given
    proc = fake_proc(tmp_path, state)
    # when
    health = check(proc_root=proc, env={})
    # then
    assert health.healthy is healthy
    assert reason in health.reason


def test_missing_process_is_unhealthy(tmp_path: Path) -> None:
    # when
    health = check(proc_root=tmp_path, env={})
    # then
    assert not health.healthy
    assert "not found" in health.reason


def test_state_is_read_after_a_command_name_with_parentheses() -> None:
    assert process_state("7 (a) b (c)) Z 1 2") == "Z"


@pytest.mark.parametrize(("age", "healthy"), [(10.0, True), (500.0, False)])
def test_heartbeat_age_decides_health(tmp_path: Path, age: float, healthy: bool) -> None:
    # given
    proc = fake_proc(tmp_path / "proc", "S")
    beat = tmp_path / "heartbeat"
    beat.write_text("")
    os.utime(beat, (1_000.0, 1_000.0))
    env = {"EDGELOOP_HEARTBEAT_FILE": str(beat), "EDGELOOP_HEARTBEAT_MAX_AGE_S": "120"}
    # when
    health = check(proc_root=proc, env=env, now=lambda: 1_000.0 + age)
    # then
    assert health.healthy is healthy


@pytest.mark.parametrize(
    ("env", "reason"),
    [
        ({"EDGELOOP_HEARTBEAT_FILE": "/nonexistent/beat"}, "no heartbeat file"),
        ({"EDGELOOP_HEARTBEAT_FILE": "/", "EDGELOOP_HEARTBEAT_MAX_AGE_S": "soon"}, "must be a number"),
    ],
)
def test_bad_heartbeat_settings_are_unhealthy(tmp_path: Path, env: dict[str, str], reason: str) -> None:
    # given
    proc = fake_proc(tmp_path, "S")
    # when
    health = check(proc_root=proc, env=env)
    # then
    assert not health.healthy
    assert reason in health.reason


def test_this_process_is_healthy() -> None:
    assert check(pid=os.getpid(), env={}).healthy
