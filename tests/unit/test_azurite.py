"""The Azurite launcher against the real emulator."""

from __future__ import annotations

from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from edgeloop.devtools.azurite import Azurite, AzuriteError, find_azurite


@pytest.mark.integration
def test_azurite_starts_serves_blobs_and_keeps_them_across_a_restart(tmp_path: Path) -> None:
    azurite = Azurite(tmp_path / "azurite")
    with azurite:
        client = BlobServiceClient.from_connection_string(azurite.connection_string)
        client.create_container("data").upload_blob("a.txt", b"hello")
    assert not azurite.running
    with azurite:
        client = BlobServiceClient.from_connection_string(azurite.connection_string)
        assert client.get_blob_client("data", "a.txt").download_blob().readall() == b"hello"


def test_missing_azurite_names_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EDGELOOP_AZURITE", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    # the checkout's own node_modules would be found; hide it by pointing the search elsewhere
    import edgeloop.devtools.azurite as mod

    monkeypatch.setattr(mod, "__file__", str(tmp_path / "a" / "b" / "c" / "azurite.py"))
    with pytest.raises(AzuriteError, match="npm install"):
        find_azurite(tmp_path)
