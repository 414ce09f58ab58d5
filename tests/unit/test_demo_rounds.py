"""The demo's rounds: its cloud settings validate, and each round reads as one line."""

from __future__ import annotations

from typing import Any

from edgeloop_cloud.config import CloudConfig
from edgeloop_demo.rounds import cloud_config, round_line


def test_the_demo_cloud_settings_are_a_valid_cloud_config() -> None:
    config = CloudConfig.model_validate(cloud_config(budget=72, base_data={"folder": "/state/base-data"}))
    assert config.trigger.min_new_labels == 18
    assert config.training.base_data is not None
    assert config.training.base_data.folder == "/state/base-data"
    assert config.gate.min_audit_items == 15


def _entry(**overrides: Any) -> dict[str, Any]:
    entry = {
        "round": 2, "version": "v3", "status": "promoted", "labelled": 60, "train": 41, "audit": 19,
        "gain": 0.263, "interval": [0.105, 0.421], "p_value": 0.0018, "reasons": ["..."],
        "field_accuracy": [{"version": "v2", "device": "cam", "n": 19, "accuracy": 0.58,
                            "interval": [0.36, 0.77]}],
    }  # fmt: skip
    return {**entry, **overrides}


def test_a_decided_round_shows_labels_gain_interval_and_field_accuracy() -> None:
    line = round_line(_entry())
    assert line.startswith("round 2: v3 promoted")
    assert "41 train + 19 audit labels" in line
    assert "audit gain +26.3% [+10.5%, +42.1%] p=0.0018" in line
    assert "v2@cam 58% [36%, 77%] n=19" in line


def test_a_waiting_round_shows_why() -> None:
    line = round_line(
        _entry(version=None, status="waiting", gain=None, interval=None, field_accuracy=[],
               reasons=["the audit set has 4 labelled items, the gate needs at least 15"])
    )  # fmt: skip
    assert line.startswith("round 2: no candidate waiting")
    assert "the audit set has 4 labelled items" in line
    assert "no audit labels yet" in line
