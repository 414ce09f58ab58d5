"""The blob store port, its Azure Blob Storage adapter, an in-memory adapter for tests, and the
layout of the data container shared by the device and the cloud.

``BlobStore`` is what the uploader and the cloud need of one container. ``AzureBlobStore`` wraps
``azure.storage.blob.ContainerClient`` and translates its exceptions into ``BlobStoreError``
subclasses; ``MemoryBlobStore`` keeps blobs in a dict and can simulate outages and refusals.

Layout of the data container (``data`` by default)::

    <model>/<version>/<yyyy>/<mm>/<dd>/<device>/<sample_id><suffix>.elenv   sealed sample
    <model>/<version>/<yyyy>/<mm>/<dd>/<device>/<sample_id>.json            metadata sidecar
    predictions/<device>/<yyyy>/<mm>/<dd>/<hh>/<batch_id>.jsonl.gz.elenv    prediction log batch

The sidecar is written after the sample, so its presence means the sample blob is complete.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, BinaryIO, Protocol

from edgeloop.errors import EdgeLoopError

# -- errors -----------------------------------------------------------------------------------


class BlobStoreError(EdgeLoopError):
    """A blob store operation failed."""


class BlobNotFoundError(BlobStoreError):
    """The blob (or its container) does not exist."""


class BlobExistsError(BlobStoreError):
    """A create-only write found a blob already at that name."""


class BlobAuthError(BlobStoreError):
    """The store refused the credentials: wrong key, expired or insufficient SAS."""


class BlobUnavailableError(BlobStoreError):
    """The store could not be reached or answered with a server error; worth retrying later."""


# -- the port ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BlobInfo:
    name: str
    size: int
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None
    etag: str | None = None
    last_modified: datetime | None = None


class BlobStore(Protocol):
    """One container. Every method may raise ``BlobStoreError`` (or a subclass)."""

    @property
    def container(self) -> str: ...

    def ensure_container(self) -> None:
        """Create the container if missing (needs account-level rights; a SAS for one container may not)."""
        ...

    def put(
        self,
        name: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        overwrite: bool = False,
    ) -> BlobInfo:
        """Write a blob in one atomic step. Unless ``overwrite``, the write is conditional
        (``If-None-Match: *``) and raises ``BlobExistsError`` when a blob is already there."""
        ...

    def get(self, name: str) -> bytes: ...

    def download_to(self, name: str, dst: BinaryIO) -> BlobInfo:
        """Stream a blob into ``dst``."""
        ...

    def info(self, name: str) -> BlobInfo:
        """Size, metadata and content type; raises ``BlobNotFoundError``."""
        ...

    def list(self, prefix: str = "") -> Iterator[BlobInfo]: ...

    def delete(self, name: str) -> None: ...


# -- Azure adapter ----------------------------------------------------------------------------


def _translate(exc: Exception, what: str) -> BlobStoreError:
    from azure.core import exceptions as az

    code = getattr(exc, "error_code", None) or ""
    status = getattr(exc, "status_code", None)
    detail = (
        f"{what}: {exc.__class__.__name__}" + (f" {status}" if status else "") + (f" {code}" if code else "")
    )
    if isinstance(exc, az.ResourceExistsError) or code == "BlobAlreadyExists":
        return BlobExistsError(detail)
    if isinstance(exc, az.ResourceModifiedError) and status == 412:
        return BlobExistsError(detail)
    if isinstance(exc, az.ResourceNotFoundError):
        return BlobNotFoundError(detail)
    if isinstance(exc, az.ClientAuthenticationError) or status in (401, 403):
        return BlobAuthError(f"{detail} (credentials wrong, expired or without the right permission)")
    if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError) or (status or 0) >= 500:
        return BlobUnavailableError(f"{detail} (storage unreachable or failing)")
    if isinstance(exc, az.AzureError):
        return BlobStoreError(detail)
    return BlobUnavailableError(f"{what}: {exc.__class__.__name__}: {exc}")


def is_sas_url(credential: str) -> bool:
    return credential.strip().lower().startswith(("https://", "http://"))


class AzureBlobStore:
    """``BlobStore`` over azure-storage-blob. The SDK's own retries are kept short: callers
    (the uploader's outbox) own the retry schedule."""

    def __init__(self, client: Any) -> None:
        self._client = client

    @classmethod
    def from_credential(
        cls,
        credential: str,
        *,
        container: str = "data",
        retry_total: int = 1,
        connection_timeout: float = 5.0,
        read_timeout: float = 60.0,
    ) -> AzureBlobStore:
        """From a container SAS URL (``https://acct.blob.core.windows.net/data?sv=...``; the container
        is the URL's) or a storage connection string (``container`` names it).

        Raises:
            BlobAuthError: the credential is neither, or malformed (the message never quotes it).
        """
        from azure.storage.blob import ContainerClient

        options: dict[str, Any] = {
            "retry_total": retry_total,
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
        }
        try:
            if is_sas_url(credential):
                client = ContainerClient.from_container_url(credential.strip(), **options)
            else:
                client = ContainerClient.from_connection_string(
                    credential.strip(), container_name=container, **options
                )
        except (ValueError, TypeError) as exc:
            raise BlobAuthError(
                "storage credential is neither a container SAS URL (https://...) nor a connection "
                f"string (AccountName=...;AccountKey=...): {exc.__class__.__name__}"
            ) from None
        return cls(client)

    @property
    def container(self) -> str:
        return str(self._client.container_name)

    @property
    def account_url(self) -> str:
        """The endpoint without any SAS token (safe to log)."""
        return str(self._client.url).split("?", 1)[0]

    def ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self._client.create_container()
        except ResourceExistsError:
            return
        except Exception as exc:
            raise _translate(exc, f"create container {self.container!r}") from exc

    def put(
        self,
        name: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        overwrite: bool = False,
    ) -> BlobInfo:
        from azure.storage.blob import ContentSettings

        kwargs: dict[str, Any] = {
            "overwrite": overwrite,
            "metadata": dict(metadata or {}),
            "content_settings": ContentSettings(content_type=content_type) if content_type else None,
        }
        if length is not None:
            kwargs["length"] = length
        if not overwrite:
            kwargs["if_none_match"] = "*"
        try:
            result = self._client.upload_blob(name, data, **kwargs)
        except Exception as exc:
            raise _translate(exc, f"put {name!r}") from exc
        size = length if length is not None else (len(data) if isinstance(data, bytes) else -1)
        return BlobInfo(
            name=name,
            size=size,
            metadata=dict(metadata or {}),
            content_type=content_type,
            etag=str(result.get("etag")) if isinstance(result, Mapping) else None,
        )

    def get(self, name: str) -> bytes:
        out = io.BytesIO()
        self.download_to(name, out)
        return out.getvalue()

    def download_to(self, name: str, dst: BinaryIO) -> BlobInfo:
        try:
            downloader = self._client.download_blob(name)
            downloader.readinto(dst)
            return self._info(name, downloader.properties)
        except Exception as exc:
            raise _translate(exc, f"get {name!r}") from exc

    def info(self, name: str) -> BlobInfo:
        try:
            props = self._client.get_blob_client(name).get_blob_properties()
        except Exception as exc:
            raise _translate(exc, f"info {name!r}") from exc
        return self._info(name, props)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        try:
            for props in self._client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
                yield self._info(props.name, props)
        except Exception as exc:
            raise _translate(exc, f"list {prefix!r}") from exc

    def delete(self, name: str) -> None:
        try:
            self._client.delete_blob(name)
        except Exception as exc:
            raise _translate(exc, f"delete {name!r}") from exc

    @staticmethod
    def _info(name: str, props: Any) -> BlobInfo:
        settings = getattr(props, "content_settings", None)
        return BlobInfo(
            name=name,
            size=int(props.size or 0),
            metadata=dict(props.metadata or {}),
            content_type=getattr(settings, "content_type", None),
            etag=getattr(props, "etag", None),
            last_modified=getattr(props, "last_modified", None),
        )

    def close(self) -> None:
        self._client.close()


# -- in-memory adapter ------------------------------------------------------------------------


@dataclass
class _Stored:
    data: bytes
    metadata: dict[str, str]
    content_type: str | None
    modified: datetime


class MemoryBlobStore:
    """A container in a dict. Tests steer failures: ``outage``, ``auth_failure`` or a
    ``fail_hook(operation, name)`` that may raise any ``BlobStoreError``."""

    def __init__(self, container: str = "data") -> None:
        self._container = container
        self.blobs: dict[str, _Stored] = {}
        self.outage = False
        self.auth_failure = False
        self.fail_hook: Callable[[str, str], None] | None = None
        self.puts: list[str] = []
        self._lock = threading.Lock()

    @property
    def container(self) -> str:
        return self._container

    def _check(self, operation: str, name: str) -> None:
        if self.outage:
            raise BlobUnavailableError(f"{operation} {name!r}: storage unreachable (simulated outage)")
        if self.auth_failure:
            raise BlobAuthError(f"{operation} {name!r}: credentials refused (simulated)")
        if self.fail_hook is not None:
            self.fail_hook(operation, name)

    def ensure_container(self) -> None:
        self._check("create", self._container)

    def put(
        self,
        name: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        overwrite: bool = False,
    ) -> BlobInfo:
        self._check("put", name)
        payload = data if isinstance(data, bytes) else data.read() if length is None else data.read(length)
        with self._lock:
            if not overwrite and name in self.blobs:
                raise BlobExistsError(f"put {name!r}: BlobAlreadyExists")
            self.blobs[name] = _Stored(payload, dict(metadata or {}), content_type, datetime.now(UTC))
            self.puts.append(name)
        return BlobInfo(name, len(payload), dict(metadata or {}), content_type)

    def get(self, name: str) -> bytes:
        self._check("get", name)
        with self._lock:
            stored = self.blobs.get(name)
        if stored is None:
            raise BlobNotFoundError(f"get {name!r}: BlobNotFound")
        return stored.data

    def download_to(self, name: str, dst: BinaryIO) -> BlobInfo:
        dst.write(self.get(name))
        return self.info(name)

    def info(self, name: str) -> BlobInfo:
        self._check("info", name)
        with self._lock:
            stored = self.blobs.get(name)
        if stored is None:
            raise BlobNotFoundError(f"info {name!r}: BlobNotFound")
        return BlobInfo(
            name, len(stored.data), dict(stored.metadata), stored.content_type, None, stored.modified
        )

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        self._check("list", prefix)
        with self._lock:
            names = sorted(n for n in self.blobs if n.startswith(prefix))
        for name in names:
            yield self.info(name)

    def delete(self, name: str) -> None:
        self._check("delete", name)
        with self._lock:
            if self.blobs.pop(name, None) is None:
                raise BlobNotFoundError(f"delete {name!r}: BlobNotFound")


# -- data container layout --------------------------------------------------------------------

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")
SEALED_SUFFIX = ".elenv"
SIDECAR_SUFFIX = ".json"
PREDICTION_LOG_ROOT = "predictions"


def safe_segment(value: str | None, *, default: str = "unknown") -> str:
    """A path segment made of ``[A-Za-z0-9._-]`` (others become ``_``), never empty, ``.`` or ``..``."""
    cleaned = _UNSAFE.sub("_", value or "")[:128]
    return cleaned if cleaned.strip(".") else default


@dataclass(frozen=True)
class SampleBlobName:
    """The parts of a sealed sample's blob name."""

    model: str
    version: str
    day: str
    device_id: str
    sample_id: str
    suffix: str

    @property
    def name(self) -> str:
        return f"{self.folder}/{self.sample_id}{self.suffix}{SEALED_SUFFIX}"

    @property
    def sidecar(self) -> str:
        return f"{self.folder}/{self.sample_id}{SIDECAR_SUFFIX}"

    @property
    def folder(self) -> str:
        return f"{self.model}/{self.version}/{self.day}/{self.device_id}"


def sample_blob_name(
    *,
    model: str | None,
    version: str | None,
    captured_at: datetime,
    device_id: str,
    sample_id: str,
    suffix: str,
) -> SampleBlobName:
    """The deterministic name of a sample: the same sample always maps to the same blob."""
    when = captured_at.astimezone(UTC)
    clean_suffix = "".join("." + safe_segment(p) for p in suffix.split(".") if p) if suffix else ""
    return SampleBlobName(
        model=safe_segment(model),
        version=safe_segment(version),
        day=f"{when:%Y/%m/%d}",
        device_id=safe_segment(device_id),
        sample_id=safe_segment(sample_id),
        suffix=clean_suffix,
    )


def parse_sample_blob_name(name: str) -> SampleBlobName:
    """Split a sealed sample's blob name; the cloud uses it as the context the envelope must match.

    Raises:
        ValueError: not ``<model>/<version>/<yyyy>/<mm>/<dd>/<device>/<sample_id>[.ext].elenv``.
    """
    parts = name.split("/")
    if len(parts) != 7 or not parts[6].endswith(SEALED_SUFFIX):
        raise ValueError(f"{name!r} is not a sealed sample blob name")
    stem = parts[6][: -len(SEALED_SUFFIX)]
    sample_id, dot, rest = stem.partition(".")
    return SampleBlobName(
        model=parts[0],
        version=parts[1],
        day="/".join(parts[2:5]),
        device_id=parts[5],
        sample_id=sample_id,
        suffix=f"{dot}{rest}",
    )


def prediction_log_blob_name(*, device_id: str, hour: datetime, batch_id: str) -> str:
    when = hour.astimezone(UTC)
    return (
        f"{PREDICTION_LOG_ROOT}/{safe_segment(device_id)}/{when:%Y/%m/%d/%H}/"
        f"{safe_segment(batch_id)}.jsonl.gz{SEALED_SUFFIX}"
    )
