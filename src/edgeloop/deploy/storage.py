"""Containers and SAS tokens for a device, from an account-level connection string.

The device gets a SAS on the data container that can create and write blobs only (no read, no
list, no delete), with an expiry. Renewal: run ``edgeloop deploy prepare --renew-sas`` before it
expires and replace the device's secret file (or call the uploader's ``setCredentials``); the
uploader reads the file again when the storage refuses the old token.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from edgeloop.blobstore import AzureContainer, BlobStoreError
from edgeloop.errors import EdgeLoopError


class StorageSetupError(EdgeLoopError):
    """The storage account cannot be used as given (bad connection string, no account key...)."""


@dataclass(frozen=True)
class Account:
    """What a connection string says about the account (the key stays in memory only)."""

    name: str
    key: str
    connection_string: str


def parse_account(connection_string: str) -> Account:
    """Raises ``StorageSetupError`` naming the missing field (never quoting the key)."""
    fields = dict(part.split("=", 1) for part in connection_string.strip().split(";") if "=" in part)
    missing = [k for k in ("AccountName", "AccountKey") if not fields.get(k)]
    if missing:
        raise StorageSetupError(
            f"the storage connection string has no {' and no '.join(missing)}: an account-level "
            "connection string is needed to create containers and sign SAS tokens "
            "(az storage account show-connection-string)"
        )
    return Account(fields["AccountName"], fields["AccountKey"], connection_string.strip())


def ensure_container(account: Account, name: str) -> AzureContainer:
    """The container, created when missing. Raises ``StorageSetupError``."""
    try:
        return AzureContainer.from_connection_string(account.connection_string, name, create=True)
    except BlobStoreError as exc:
        raise StorageSetupError(f"cannot create or open container {name!r}: {exc}") from exc


@dataclass(frozen=True)
class DeviceSas:
    url: str
    expires_at: datetime
    permissions: str


def device_sas(account: Account, container: AzureContainer, *, now: datetime, valid: timedelta) -> DeviceSas:
    """A container SAS URL that creates and writes blobs only, valid from 5 minutes ago."""
    from azure.storage.blob import ContainerSasPermissions, generate_container_sas

    expires = now + valid
    permission = ContainerSasPermissions(create=True, write=True)
    token = generate_container_sas(
        account_name=account.name,
        container_name=container.name,
        account_key=account.key,
        permission=permission,
        start=now - timedelta(minutes=5),
        expiry=expires,
    )
    return DeviceSas(f"{container.account_url}?{token}", expires, str(permission))
