"""The blob container port the cloud side needs: conditional writes (ETags), leases, read-only SAS.

The registry's ``champion`` alias and the run ledger rely on optimistic concurrency and leases,
so this port is a little richer than a plain put/get store. ``MemoryContainer`` is the
in-memory adapter for tests; ``AzureContainer`` wraps ``azure.storage.blob.ContainerClient``
(Azure Blob Storage or Azurite) and translates its exceptions into ``edgeloop_cloud.errors``.
"""

from __future__ import annotations

import hashlib
import itertools
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from edgeloop.clock import Clock, SystemClock
from edgeloop_cloud.errors import (
    BlobNotFoundError,
    LeaseHeldError,
    PreconditionFailedError,
    StorageError,
)

#: ``if_none_match`` value meaning "only if the blob does not exist yet".
ANY = "*"


@dataclass(frozen=True)
class BlobInfo:
    """What a listing or a read tells about one blob."""

    name: str
    etag: str
    size: int
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)


class BlobContainer(Protocol):
    """One blob container (``data``, ``models``, ``runs``)."""

    name: str

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Blobs whose names start with ``prefix``, in name order."""
        ...

    def read(self, blob: str) -> tuple[bytes, BlobInfo]:
        """The blob's bytes and properties. Raises BlobNotFoundError, StorageError."""
        ...

    def info(self, blob: str) -> BlobInfo | None:
        """The blob's properties, or None when it does not exist."""
        ...

    def write(
        self,
        blob: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        lease_id: str | None = None,
        content_type: str | None = None,
    ) -> str:
        """Write (create or replace) and return the new ETag.

        ``if_match=etag`` replaces only that version; ``if_none_match=ANY`` creates only.
        Raises PreconditionFailedError when the condition fails, LeaseHeldError when the blob
        is leased and ``lease_id`` does not match.
        """
        ...

    def acquire_lease(self, blob: str, *, duration_s: int) -> str:
        """Lease ``blob`` (created empty if missing) and return the lease id.

        ``duration_s`` is 15-60 seconds or -1 (infinite). Raises LeaseHeldError.
        """
        ...

    def renew_lease(self, blob: str, lease_id: str) -> None: ...

    def release_lease(self, blob: str, lease_id: str) -> None: ...

    def read_url(self, blob: str, *, expires_in: timedelta) -> str:
        """A URL that lets its holder read only this blob until the expiry (a read-only SAS)."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def _etag(data: bytes, counter: int) -> str:
    return f'"0x{hashlib.sha256(data).hexdigest()[:12]}{counter:04x}"'


class MemoryContainer:
    """An in-memory container with the same conditional-write and lease semantics as Azure."""

    def __init__(self, name: str, *, clock: Clock | None = None) -> None:
        self.name = name
        self._clock = clock or SystemClock()
        self._blobs: dict[str, tuple[bytes, BlobInfo]] = {}
        self._leases: dict[str, tuple[str, float | None, int]] = {}
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        with self._lock:
            infos = [info for name, (_, info) in sorted(self._blobs.items()) if name.startswith(prefix)]
        return iter(infos)

    def read(self, blob: str) -> tuple[bytes, BlobInfo]:
        with self._lock:
            if blob not in self._blobs:
                raise BlobNotFoundError(f"blob {self.name}/{blob} does not exist")
            return self._blobs[blob]

    def info(self, blob: str) -> BlobInfo | None:
        with self._lock:
            entry = self._blobs.get(blob)
        return entry[1] if entry else None

    def write(
        self,
        blob: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        lease_id: str | None = None,
        content_type: str | None = None,
    ) -> str:
        with self._lock:
            current = self._blobs.get(blob)
            if if_none_match == ANY and current is not None:
                raise PreconditionFailedError(f"blob {self.name}/{blob} already exists")
            if if_match is not None and (current is None or current[1].etag != if_match):
                raise PreconditionFailedError(f"blob {self.name}/{blob} changed (ETag {if_match} is stale)")
            self._check_lease(blob, lease_id)
            info = BlobInfo(
                name=blob,
                etag=_etag(data, next(self._counter)),
                size=len(data),
                last_modified=self._clock.now(),
                metadata=dict(metadata or {}),
            )
            self._blobs[blob] = (bytes(data), info)
            return info.etag

    def _check_lease(self, blob: str, lease_id: str | None) -> None:
        held = self._live_lease(blob)
        if held is not None and held != lease_id:
            raise LeaseHeldError(f"blob {self.name}/{blob} is leased by another holder")

    def _live_lease(self, blob: str) -> str | None:
        lease = self._leases.get(blob)
        if lease is None:
            return None
        lease_id, expires, _ = lease
        if expires is not None and self._clock.monotonic() >= expires:
            del self._leases[blob]
            return None
        return lease_id

    def acquire_lease(self, blob: str, *, duration_s: int) -> str:
        with self._lock:
            if blob not in self._blobs:
                data = b""
                info = BlobInfo(blob, _etag(data, next(self._counter)), 0, self._clock.now(), {})
                self._blobs[blob] = (data, info)
            if self._live_lease(blob) is not None:
                raise LeaseHeldError(f"blob {self.name}/{blob} is leased by another holder")
            lease_id = str(uuid.uuid4())
            expires = None if duration_s < 0 else self._clock.monotonic() + duration_s
            self._leases[blob] = (lease_id, expires, duration_s)
            return lease_id

    def renew_lease(self, blob: str, lease_id: str) -> None:
        with self._lock:
            held = self._leases.get(blob)
            if held is None or held[0] != lease_id or self._live_lease(blob) != lease_id:
                raise LeaseHeldError(f"lease {lease_id} on {self.name}/{blob} is not held")
            duration = held[2]
            expires = None if duration < 0 else self._clock.monotonic() + duration
            self._leases[blob] = (lease_id, expires, duration)

    def release_lease(self, blob: str, lease_id: str) -> None:
        with self._lock:
            held = self._leases.get(blob)
            if held is not None and held[0] == lease_id:
                del self._leases[blob]

    def read_url(self, blob: str, *, expires_in: timedelta) -> str:
        expiry = (self._clock.now() + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"memory://{self.name}/{blob}?sp=r&se={expiry}"

    def close(self) -> None:
        return None


class AzureContainer:
    """A container in Azure Blob Storage or Azurite, through ``azure-storage-blob``."""

    def __init__(self, client: Any, *, clock: Clock | None = None) -> None:
        self._client = client
        self.name: str = client.container_name
        self._clock = clock or SystemClock()

    @classmethod
    def from_connection_string(cls, conn_str: str, container: str, *, create: bool = True) -> AzureContainer:
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import ContainerClient

        client = ContainerClient.from_connection_string(conn_str, container)
        if create:
            try:
                client.create_container()
            except ResourceExistsError:
                pass
            except Exception as exc:
                raise StorageError(f"cannot create container {container!r}: {exc}") from exc
        return cls(client)

    @staticmethod
    def _info(props: Any) -> BlobInfo:
        return BlobInfo(
            name=props.name,
            etag=props.etag,
            size=int(props.size or 0),
            last_modified=props.last_modified,
            metadata=dict(props.metadata or {}),
        )

    def _translate(self, blob: str, exc: Exception) -> StorageError:
        from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

        if isinstance(exc, ResourceNotFoundError):
            return BlobNotFoundError(f"blob {self.name}/{blob} does not exist")
        code = getattr(exc, "error_code", None) or ""
        if "Lease" in str(code):
            return LeaseHeldError(f"blob {self.name}/{blob}: {code}")
        if isinstance(exc, ResourceExistsError) or (
            isinstance(exc, HttpResponseError) and getattr(exc, "status_code", None) in (409, 412)
        ):
            return PreconditionFailedError(f"blob {self.name}/{blob}: condition failed ({code or exc})")
        return StorageError(f"blob {self.name}/{blob}: {exc}")

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        try:
            items = [
                self._info(p)
                for p in self._client.list_blobs(name_starts_with=prefix or None, include=["metadata"])
            ]
        except Exception as exc:
            raise self._translate(prefix, exc) from exc
        return iter(sorted(items, key=lambda i: i.name))

    def read(self, blob: str) -> tuple[bytes, BlobInfo]:
        try:
            downloader = self._client.download_blob(blob)
            data = downloader.readall()
            return data, self._info(downloader.properties)
        except Exception as exc:
            raise self._translate(blob, exc) from exc

    def info(self, blob: str) -> BlobInfo | None:
        try:
            return self._info(self._client.get_blob_client(blob).get_blob_properties())
        except Exception as exc:
            error = self._translate(blob, exc)
            if isinstance(error, BlobNotFoundError):
                return None
            raise error from exc

    def write(
        self,
        blob: str,
        data: bytes,
        *,
        metadata: dict[str, str] | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        lease_id: str | None = None,
        content_type: str | None = None,
    ) -> str:
        from azure.core import MatchConditions
        from azure.storage.blob import ContentSettings

        kwargs: dict[str, Any] = {"overwrite": True, "metadata": metadata or None, "lease": lease_id}
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        elif if_none_match == ANY:
            kwargs["overwrite"] = False
        if content_type:
            kwargs["content_settings"] = ContentSettings(content_type=content_type)
        try:
            result = self._client.get_blob_client(blob).upload_blob(data, **kwargs)
        except Exception as exc:
            raise self._translate(blob, exc) from exc
        return str(result["etag"])

    def acquire_lease(self, blob: str, *, duration_s: int) -> str:
        from azure.core.exceptions import ResourceExistsError

        client = self._client.get_blob_client(blob)
        try:
            client.upload_blob(b"", overwrite=False)
        except ResourceExistsError:
            pass
        except Exception as exc:
            raise self._translate(blob, exc) from exc
        try:
            return str(client.acquire_lease(lease_duration=duration_s).id)
        except Exception as exc:
            raise LeaseHeldError(f"blob {self.name}/{blob} is leased by another holder ({exc})") from exc

    def renew_lease(self, blob: str, lease_id: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        try:
            BlobLeaseClient(self._client.get_blob_client(blob), lease_id=lease_id).renew()
        except Exception as exc:
            raise LeaseHeldError(f"cannot renew lease on {self.name}/{blob}: {exc}") from exc

    def release_lease(self, blob: str, lease_id: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        try:
            BlobLeaseClient(self._client.get_blob_client(blob), lease_id=lease_id).release()
        except Exception as exc:
            raise self._translate(blob, exc) from exc

    def read_url(self, blob: str, *, expires_in: timedelta) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        credential = self._client.credential
        account_key = getattr(credential, "account_key", None)
        if account_key is None:
            raise StorageError(
                f"cannot sign a read-only SAS for {self.name}/{blob}: the storage connection has no "
                "account key (use a connection string with AccountKey)"
            )
        token = generate_blob_sas(
            account_name=self._client.account_name,
            container_name=self.name,
            blob_name=blob,
            account_key=account_key,
            permission=BlobSasPermissions(read=True),
            expiry=self._clock.now() + expires_in,
        )
        return f"{self._client.get_blob_client(blob).url}?{token}"

    def close(self) -> None:
        self._client.close()
