"""Shared test fixtures."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
SOURCE_DIRS = [
    REPO_ROOT / "src",
    REPO_ROOT / "modules" / "capture",
    REPO_ROOT / "modules" / "inference",
    REPO_ROOT / "modules" / "filter",
    REPO_ROOT / "modules" / "uploader",
    REPO_ROOT / "cloud",
    REPO_ROOT / "demo",
]


def subprocess_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """Environment for running this checkout's code in a child process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in SOURCE_DIRS)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


@pytest.fixture
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture
def python() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def digits_base_dir() -> Path:
    """The demo's digits base set written as a labelled dataset folder (``training.base_data``)."""
    from tests.cloud_support import digits_base_folder

    return digits_base_folder()
