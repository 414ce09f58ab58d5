"""``edgeloop cloud``: unreachable storage named in seconds, quiet Azure HTTP logs, -o table."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from edgeloop_cloud.storage_reach import blob_endpoint

from edgeloop.cli import main


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root, azure = logging.getLogger(), logging.getLogger("azure")
    levels, handlers = (root.level, azure.level), list(root.handlers)
    yield
    root.setLevel(levels[0])
    azure.setLevel(levels[1])
    root.handlers[:] = handlers


@pytest.mark.parametrize(
    ("conn", "url"),
    [
        ("UseDevelopmentStorage=true", "http://127.0.0.1:10000/devstoreaccount1"),
        ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
         "BlobEndpoint=http://127.0.0.1:10123/devstoreaccount1;", "http://127.0.0.1:10123/devstoreaccount1"),
        ("DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=a2V5;EndpointSuffix=core.windows.net",
         "https://acme.blob.core.windows.net"),
    ],
    ids=["dev-storage", "azurite", "account"],
)  # fmt: skip
def test_blob_endpoint_of_each_connection_string_form(conn: str, url: str) -> None:
    endpoint = blob_endpoint(conn)
    assert endpoint is not None
    assert endpoint.url == url


def test_unreachable_storage_is_named_within_seconds(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    closed_port: int,
    restore_logging: None,
) -> None:
    # given: Azurite's connection string, nothing listening on its port
    endpoint = f"http://127.0.0.1:{closed_port}/devstoreaccount1"
    monkeypatch.setenv(
        "EDGELOOP_STORAGE_CONNECTION_STRING",
        f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;BlobEndpoint={endpoint};",
    )

    # when
    started = time.monotonic()
    code = main(["cloud", "train"])
    took = time.monotonic() - started

    # then
    err = capsys.readouterr().err
    assert code == 1
    assert took < 10
    assert f"edgeloop cloud train: error: blob storage at {endpoint} cannot be reached" in err
    assert "Azurite" in err


@pytest.mark.parametrize(("level", "azure_level"), [("INFO", logging.WARNING), ("DEBUG", logging.DEBUG)])
def test_azure_http_logs_only_at_debug(
    monkeypatch: pytest.MonkeyPatch, closed_port: int, level: str, azure_level: int, restore_logging: None
) -> None:
    # given
    monkeypatch.setenv(
        "EDGELOOP_STORAGE_CONNECTION_STRING", f"BlobEndpoint=http://127.0.0.1:{closed_port}/x;"
    )

    # when
    main(["cloud", "--log-level", level, "gate", "--version", "v1"])

    # then
    http_logger = logging.getLogger("azure.core.pipeline.policies.http_logging_policy")
    assert logging.getLogger("azure").level == azure_level
    assert http_logger.isEnabledFor(logging.INFO) == (level == "DEBUG")


def test_every_step_offers_table_output_with_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    for step in ("trigger", "train", "gate", "rollout"):
        with pytest.raises(SystemExit):
            main(["cloud", step, "--help"])
        out = capsys.readouterr().out
        assert "-o {json,table}" in out
        assert "example:\n  edgeloop cloud" in out


def test_an_invalid_cloud_config_is_one_line_per_field(tmp_path: Path) -> None:
    # given
    from edgeloop_cloud.config import CloudConfig

    from edgeloop.cliout import error_lines
    from edgeloop.errors import ConfigError

    path = tmp_path / "cloud.json"
    path.write_text(json.dumps({"model_name": 3, "nope": True}))

    # when
    with pytest.raises(ConfigError) as raised:
        CloudConfig.load(path)
    lines = error_lines(raised.value)

    # then
    assert lines[0] == f"cloud config {str(path)!r} is invalid:"
    assert lines[1].startswith("model_name: Input should be a valid string (got 3)")
    assert lines[2].startswith("nope: Extra inputs are not permitted")
