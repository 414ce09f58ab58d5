"""Camera credentials come from a secret file or a named variable, never shown in the twin's
reported config or in the source's errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from edgeloop_capture.config import CaptureConfig, parse_source
from edgeloop_capture.sources.base import SourceError
from edgeloop_capture.sources.stream import StreamSettings, StreamSource

from edgeloop.runtime.config import ConfigState

SECRET_URL = "rtsp://viewer:hunter2@192.0.2.30:554/h264"


def _stream(**where: str) -> StreamSettings:
    settings = parse_source({"id": "gate", "kind": "stream", **where}, 0)
    assert isinstance(settings, StreamSettings)
    return settings


def test_the_url_is_read_from_the_secret_file_each_time_the_stream_opens(tmp_path: Path) -> None:
    secret = tmp_path / "camera-url"
    secret.write_text(SECRET_URL + "\n")
    settings = _stream(url_secret_file=str(secret))
    assert settings.resolve_url() == SECRET_URL
    secret.write_text("rtsp://viewer:rotated@192.0.2.30/h264")
    assert "rotated" in settings.resolve_url()


def test_the_url_is_read_from_the_named_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GATE_CAM_URL", SECRET_URL)
    assert _stream(url_env="GATE_CAM_URL").resolve_url() == SECRET_URL


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing", "does not exist (is it mounted?)"),
        ("empty", "is empty"),
        ("unreadable", "is not readable"),
        ("not-a-url", "is not usable: URL scheme 'file'"),
    ],
)
def test_an_unavailable_secret_fails_the_source_with_the_reason_and_no_secret(
    tmp_path: Path, case: str, expected: str
) -> None:
    secret = tmp_path / "camera-url"
    if case == "empty":
        secret.write_text("\n")
    elif case == "unreadable":
        if os.getuid() == 0:
            pytest.skip("root reads any file")
        secret.write_text(SECRET_URL)
        secret.chmod(0)
    elif case == "not-a-url":
        secret.write_text("file:///etc/hunter2")
    source = StreamSource(_stream(url_secret_file=str(secret)))
    with pytest.raises(SourceError) as caught:
        next(iter(source.frames(ctl=None)))  # type: ignore[arg-type]
    assert expected in str(caught.value)
    assert "hunter2" not in str(caught.value)


def test_an_unset_variable_fails_the_source_naming_it() -> None:
    with pytest.raises(SourceError, match="NO_SUCH_CAMERA_URL is not set"):
        _stream(url_env="NO_SUCH_CAMERA_URL").resolve_url()


@pytest.mark.parametrize(
    "where",
    [{}, {"url": SECRET_URL, "url_env": "X"}, {"url_env": "not a name"}],
    ids=["none", "two", "bad-name"],
)
def test_exactly_one_place_for_the_url(where: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="url"):
        _stream(**where)


def test_reported_config_masks_a_password_left_in_the_twin() -> None:
    state = ConfigState(CaptureConfig, {"sources": [{"id": "gate", "kind": "stream", "url": SECRET_URL}]})
    reported = state.reported()["config"]["sources"][0]["url"]
    assert "hunter2" not in reported
    assert reported == "rtsp://viewer:***@192.0.2.30:554/h264"
