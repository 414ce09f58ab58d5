"""Capture config: each source definition is validated on its own, errors name id and field."""

from __future__ import annotations

import json
from typing import Any

import pytest
from edgeloop_capture.config import CaptureConfig, parse_sources
from edgeloop_capture.sources import KINDS
from edgeloop_capture.sources.sensor import SensorSettings
from edgeloop_capture.sources.stream import StreamSettings, redact
from edgeloop_capture.sources.video import VideoSettings

from edgeloop.runtime.config import validate_config


def test_an_empty_twin_validates_to_no_sources() -> None:
    # when
    config = validate_config(CaptureConfig, {})
    # then
    assert config.sources == []
    assert config.janitor.ttl_s > 0


@pytest.mark.parametrize(
    "definition",
    [
        {"id": "cam", "kind": "video", "path": "input/a.avi", "fps": 5, "loop": True},
        {"id": "rtsp-1", "kind": "stream", "url": "rtsp://user:pw@10.0.0.5/live", "every_n": 3},
        {"id": "usb0", "kind": "usb", "device": 0, "max_width": 320},
        {"id": "usb_dev", "kind": "usb", "device": "/dev/video2"},
        {"id": "dir", "kind": "folder", "path": "/data/in", "format": "png", "grayscale": True},
        {"id": "temp", "kind": "sensor", "path": "logs/t.csv", "speed": 10},
        {"id": "vib", "kind": "sensor", "path": "logs/v.log", "format": "jsonl", "fields": ["x", "y"]},
    ],
)
def test_every_kind_accepts_a_good_definition(definition: dict[str, Any]) -> None:
    # when
    parsed = parse_sources([definition])
    # then
    assert parsed.errors == {}
    assert parsed.valid[definition["id"]].kind == definition["kind"]


@pytest.mark.parametrize(
    ("definition", "key", "expected"),
    [
        ({"id": "cam", "kind": "video", "path": "a.avi", "fps": -1}, "cam", "'sources.cam.fps' = -1"),
        ({"id": "cam", "kind": "video"}, "cam", "'sources.cam.path'"),
        ({"id": "cam", "kind": "video", "path": "a", "jpeg_quality": 101}, "cam", "sources.cam.jpeg_quality"),
        ({"id": "cam", "kind": "video", "path": "a", "colour": 1}, "cam", "unknown key 'sources.cam.colour'"),
        ({"id": "cam", "kind": "lidar"}, "cam", "'sources.cam.kind' = 'lidar': accepted kinds are video"),
        ({"id": "s", "kind": "stream", "url": "ftp://x/y"}, "s", "'sources.s.url'"),
        ({"id": "u", "kind": "usb", "device": "video0"}, "u", "'sources.u.device'"),
        ({"id": "t", "kind": "sensor", "path": "t.txt"}, "t", "cannot tell the reader"),
        ({"id": "bad id!", "kind": "video", "path": "a"}, "bad id!", "'sources.bad id!.id'"),
        ({"kind": "video", "path": "a"}, "#0", "'sources.#0.id'"),
        ("video", "#0", "must be an object"),
    ],
)
def test_a_bad_definition_is_rejected_naming_source_and_field(
    definition: Any, key: str, expected: str
) -> None:
    # when
    parsed = parse_sources([definition, {"id": "ok", "kind": "video", "path": "b.avi"}])
    # then
    assert expected in parsed.errors[key]
    assert list(parsed.valid) == ["ok"]


def test_an_id_defined_twice_is_rejected_for_both() -> None:
    # given
    a = {"id": "cam", "kind": "video", "path": "a.avi"}
    # when
    parsed = parse_sources([a, {**a, "path": "b.avi"}])
    # then
    assert "defined more than once" in parsed.errors["cam"]
    assert parsed.valid == {}


def test_top_level_settings_are_strict() -> None:
    # when / then
    with pytest.raises(Exception, match=r"janitor\.ttl_s"):
        validate_config(CaptureConfig, {"janitor": {"ttl_s": 0}})


def test_the_deployment_template_defaults_validate(repo_root: Any) -> None:
    # given
    manifest = json.loads((repo_root / "deployment.template.json").read_text())
    desired = manifest["modulesContent"]["capture"]["properties.desired"]
    # when
    config = validate_config(CaptureConfig, desired)
    parsed = parse_sources(config.sources)
    # then
    assert parsed.errors == {}
    assert parsed.valid, "the template should define a default source"


def test_every_kind_is_registered_with_its_own_settings() -> None:
    # then
    assert set(KINDS) == {"video", "stream", "usb", "folder", "sensor"}
    assert KINDS["video"].settings is VideoSettings
    assert KINDS["sensor"].settings is SensorSettings


def test_stream_passwords_are_redacted() -> None:
    # given
    settings = StreamSettings(id="s", kind="stream", url="rtsp://admin:secret@cam.local:554/live")
    # when
    shown = redact(settings.url)
    # then
    assert "secret" not in shown
    assert shown == "rtsp://admin:***@cam.local:554/live"
