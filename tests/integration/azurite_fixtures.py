"""Azurite fixtures for storage tests: import the ones a test module uses.

from tests.integration.azurite_fixtures import azurite, container_sas_url  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edgeloop.devtools.azurite import ACCOUNT_KEY, ACCOUNT_NAME, Azurite


@pytest.fixture
def azurite(tmp_path: Path) -> Iterator[Azurite]:
    """A fresh Azurite on a free loopback port, stopped after the test."""
    server = Azurite(tmp_path / "azurite")
    server.start()
    try:
        yield server
    finally:
        server.stop()


def container_sas_url(server: Azurite, container: str, *, expires_in: float) -> str:
    """A create/write/read SAS URL for one container, expiring ``expires_in`` seconds from now."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    now = datetime.now(UTC)
    token = generate_container_sas(
        account_name=ACCOUNT_NAME,
        container_name=container,
        account_key=ACCOUNT_KEY,
        permission=ContainerSasPermissions(read=True, create=True, write=True, list=True),
        start=now - timedelta(minutes=5),
        expiry=now + timedelta(seconds=expires_in),
    )
    return f"{server.blob_endpoint}/{container}?{token}"
