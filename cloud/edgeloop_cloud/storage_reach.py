"""Is the storage account of a connection string reachable? Asked once, in seconds, before a
command starts: the storage SDK would otherwise retry for about 90 s in silence.

Only a TCP connection to the blob endpoint is tried (no request, no credentials checked).
"""

from __future__ import annotations

import socket
import urllib.parse
from dataclasses import dataclass

from edgeloop.errors import EdgeLoopError

_DEV_STORAGE = "http://127.0.0.1:10000/devstoreaccount1"


class StorageUnreachableError(EdgeLoopError):
    """The blob endpoint refused or did not answer the connection."""


@dataclass(frozen=True)
class BlobEndpoint:
    url: str
    host: str
    port: int


def blob_endpoint(connection_string: str) -> BlobEndpoint | None:
    """The blob endpoint a storage connection string names; None when it names none."""
    fields = {}
    for part in connection_string.split(";"):
        key, sep, value = part.partition("=")
        if sep:
            fields[key.strip().lower()] = value.strip()
    if fields.get("usedevelopmentstorage", "").lower() == "true":
        url = _DEV_STORAGE
    elif "blobendpoint" in fields:
        url = fields["blobendpoint"]
    elif "accountname" in fields:
        scheme = fields.get("defaultendpointsprotocol", "https")
        url = f"{scheme}://{fields['accountname']}.blob.{fields.get('endpointsuffix', 'core.windows.net')}"
    else:
        return None
    parsed = urllib.parse.urlsplit(url)
    if not parsed.hostname:
        return None
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return BlobEndpoint(url, parsed.hostname, port)


def check_reachable(connection_string: str, timeout: float = 3.0) -> None:
    """Raises ``StorageUnreachableError`` naming the endpoint tried and why it failed."""
    endpoint = blob_endpoint(connection_string)
    if endpoint is None:
        return
    try:
        with socket.create_connection((endpoint.host, endpoint.port), timeout=timeout):
            return
    except OSError as exc:
        reason = "no answer" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        hint = (
            "is Azurite running? 'edgeloop dev status -o table' shows where 'dev up' started it"
            if endpoint.host in ("127.0.0.1", "localhost")
            else "check EDGELOOP_STORAGE_CONNECTION_STRING and the network"
        )
        raise StorageUnreachableError(
            f"blob storage at {endpoint.url} cannot be reached ({reason} within {timeout:g}s); {hint}"
        ) from exc
