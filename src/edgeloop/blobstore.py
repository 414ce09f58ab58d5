"""The blob container port, its Azure Blob Storage adapter, an in-memory adapter for tests, and the
layout of the data container shared by the device and the cloud.

``BlobContainer`` is what the uploader and the cloud need of one container: conditional writes
(ETags, create-only), metadata, blob index tags and content type, leases, read-only SAS URLs,
listing by prefix and finding by tags.
``AzureContainer`` wraps ``azure.storage.blob.ContainerClient`` (Azure Blob Storage or Azurite)
and translates its exceptions into ``BlobStoreError`` subclasses without quoting credentials;
``MemoryContainer`` keeps blobs in a dict with the same semantics and can simulate outages and
refusals.

Layout of the data container (``data`` by default)::

    <model>/<version>/<yyyy>/<mm>/<dd>/<device>/<sample_id><suffix>.elenv   sealed sample
    <model>/<version>/<yyyy>/<mm>/<dd>/<device>/<sample_id>.json            metadata sidecar (opt-in)
    predictions/<device>/<yyyy>/<mm>/<dd>/<hh>/<batch_id>.jsonl.gz.elenv    prediction log batch

A sample blob carries its facts as blob metadata and its index tags (``SAMPLE_TAGS``), written
in the same create-only request; the sidecar, where a device still writes one, is written after
the sample, so its presence means the sample blob is complete.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO, Protocol

from edgeloop.clock import Clock, SystemClock
from edgeloop.errors import EdgeLoopError

#: ``if_none_match`` value meaning "only if the blob does not exist yet".
ANY = "*"

# -- errors -----------------------------------------------------------------------------------


class BlobStoreError(EdgeLoopError):
    """A blob storage operation failed; the cause is chained."""


class BlobNotFoundError(BlobStoreError):
    """The blob (or its container) does not exist."""


class PreconditionFailedError(BlobStoreError):
    """A conditional write lost: the ETag changed, or the blob already exists."""


class BlobExistsError(PreconditionFailedError):
    """A create-only write (``if_none_match=ANY``) found a blob already at that name."""


class LeaseHeldError(BlobStoreError):
    """Another holder has the blob's lease, or the lease given is not held."""


class BlobAuthError(BlobStoreError):
    """The store refused the credentials: wrong key, expired or insufficient SAS."""


class BlobUnavailableError(BlobStoreError):
    """The store could not be reached or answered with a server error; worth retrying later."""


# -- the port ---------------------------------------------------------------------------------

#: Blob index tags of a sample blob (``find_by_tags`` queries them): selection strategy, model,
#: model version, device and label state (``unlabelled`` when uploaded).
SAMPLE_TAGS = ("strategy", "model", "model_version", "device", "label_state")
#: At most this many tags per blob; keys up to 128 and values up to 256 characters.
MAX_TAGS = 10
_TAG_UNSAFE = re.compile(r"[^A-Za-z0-9 +./:=_-]")


def tag_value(value: object) -> str:
    """A blob index tag value: the characters tags allow (others become ``_``), at most 256."""
    return _TAG_UNSAFE.sub("_", str(value))[:256]


def tags_query(tags: Mapping[str, str]) -> str:
    """The ``find_by_tags`` expression matching blobs with all of ``tags`` (values quoted).

    Raises:
        ValueError: no tags, or a key or value tags cannot hold.
    """
    if not tags:
        raise ValueError("a tag query needs at least one tag")
    clauses = []
    for key, value in tags.items():
        if not key or _TAG_UNSAFE.search(key) or len(key) > 128:
            raise ValueError(f"tag name {key!r}: 1-128 of letters, digits, space and + - . / : = _")
        if value != tag_value(value):
            raise ValueError(
                f"tag {key!r} value {value!r}: up to 256 of letters, digits, space and + - . / : = _"
            )
        clauses.append(f"\"{key}\" = '{value}'")
    return " AND ".join(clauses)


@dataclass(frozen=True)
class TaggedBlob:
    """A blob found by its tags: its name and the tags the query named (as Azure answers)."""

    name: str
    tags: dict[str, str]


@dataclass(frozen=True)
class BlobInfo:
    """What a listing, a read or a write tells about one blob."""

    name: str
    size: int
    etag: str
    last_modified: datetime
    metadata: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None


class BlobContainer(Protocol):
    """One blob container (``data``, ``models``, ``runs``). Every method may raise
    ``BlobStoreError`` (or a subclass)."""

    @property
    def name(self) -> str:
        """The container's name."""
        ...

    def ensure_container(self) -> None:
        """Create the container if missing (needs account-level rights; a SAS for one container may not)."""
        ...

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        """Blobs whose names start with ``prefix``, in name order."""
        ...

    def read(self, blob: str) -> tuple[bytes, BlobInfo]:
        """The blob's bytes and properties. Raises BlobNotFoundError."""
        ...

    def download_to(self, blob: str, dst: BinaryIO) -> BlobInfo:
        """Stream a blob into ``dst``. Raises BlobNotFoundError."""
        ...

    def info(self, blob: str) -> BlobInfo:
        """Size, metadata, content type and ETag. Raises BlobNotFoundError."""
        ...

    def exists(self, blob: str) -> bool: ...

    def find_by_tags(self, query: str) -> Iterator[TaggedBlob]:
        """Blobs of this container whose index tags match ``query`` (see ``tags_query``)."""
        ...

    def write(
        self,
        blob: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        lease_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        """Write (create or replace) in one atomic step and return the new ETag; ``tags`` are
        the blob's index tags, set in the same request.

        ``if_match=etag`` replaces only that version (else PreconditionFailedError);
        ``if_none_match=ANY`` creates only (else BlobExistsError). LeaseHeldError when the blob
        is leased and ``lease_id`` does not match.
        """
        ...

    def delete(self, blob: str) -> None: ...

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


# -- Azure adapter ----------------------------------------------------------------------------


def _translate(exc: Exception, what: str, *, create_only: bool = False) -> BlobStoreError:
    """The port's error for an SDK exception; names the operation, never the credential."""
    from azure.core import exceptions as az

    raw_code = getattr(exc, "error_code", None) or ""
    code = str(getattr(raw_code, "value", raw_code))  # the SDK gives a StorageErrorCode (a str enum)
    status = getattr(exc, "status_code", None)
    detail = (
        f"{what}: {exc.__class__.__name__}" + (f" {status}" if status else "") + (f" {code}" if code else "")
    )
    if isinstance(exc, az.ResourceNotFoundError):
        return BlobNotFoundError(detail)
    if "Lease" in code:
        return LeaseHeldError(detail)
    if isinstance(exc, az.ResourceExistsError) or code == "BlobAlreadyExists":
        return BlobExistsError(detail)
    if status == 412:
        return BlobExistsError(detail) if create_only else PreconditionFailedError(detail)
    if isinstance(exc, az.ClientAuthenticationError) or status in (401, 403):
        return BlobAuthError(f"{detail} (credentials wrong, expired or without the right permission)")
    if status == 409:
        return PreconditionFailedError(detail)
    if isinstance(exc, az.ServiceRequestError | az.ServiceResponseError) or (status or 0) >= 500:
        return BlobUnavailableError(f"{detail} (storage unreachable or failing)")
    if isinstance(exc, az.AzureError):
        return BlobStoreError(detail)
    return BlobUnavailableError(f"{what}: {exc.__class__.__name__}: {exc}")


def is_sas_url(credential: str) -> bool:
    return credential.strip().lower().startswith(("https://", "http://"))


class AzureContainer:
    """``BlobContainer`` over azure-storage-blob (Azure Blob Storage or Azurite)."""

    def __init__(self, client: Any, *, clock: Clock | None = None) -> None:
        self._client = client
        self._clock = clock or SystemClock()

    @classmethod
    def from_credential(
        cls,
        credential: str,
        *,
        container: str = "data",
        retry_total: int | None = 1,
        connection_timeout: float | None = 5.0,
        read_timeout: float | None = 60.0,
        clock: Clock | None = None,
    ) -> AzureContainer:
        """From a container SAS URL (``https://acct.blob.core.windows.net/data?sv=...``; the container
        is the URL's) or a storage connection string (``container`` names it).

        The SDK's own retries are kept short by default: callers (the uploader's outbox) own the
        retry schedule. ``None`` leaves an option at the SDK's default.

        Raises:
            BlobAuthError: the credential is neither, or malformed (the message never quotes it).
        """
        from azure.storage.blob import ContainerClient

        settings = {
            "retry_total": retry_total,
            "connection_timeout": connection_timeout,
            "read_timeout": read_timeout,
        }
        options: dict[str, Any] = {k: v for k, v in settings.items() if v is not None}
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
        return cls(client, clock=clock)

    @classmethod
    def from_connection_string(
        cls, conn_str: str, container: str, *, create: bool = True, clock: Clock | None = None
    ) -> AzureContainer:
        """With the SDK's default retries and timeouts; creates the container unless ``create`` is off."""
        store = cls.from_credential(
            conn_str,
            container=container,
            retry_total=None,
            connection_timeout=None,
            read_timeout=None,
            clock=clock,
        )
        if create:
            store.ensure_container()
        return store

    @property
    def name(self) -> str:
        return str(self._client.container_name)

    @property
    def account_url(self) -> str:
        """The endpoint without any SAS token (safe to log)."""
        return str(self._client.url).split("?", 1)[0]

    def _what(self, operation: str, blob: str) -> str:
        return f"{operation} {self.name}/{blob}"

    def ensure_container(self) -> None:
        from azure.core.exceptions import ResourceExistsError

        try:
            self._client.create_container()
        except ResourceExistsError:
            return
        except Exception as exc:
            raise _translate(exc, f"create container {self.name!r}") from exc

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        try:
            for props in self._client.list_blobs(name_starts_with=prefix or None, include=["metadata"]):
                yield self._info(props.name, props)
        except Exception as exc:
            raise _translate(exc, self._what("list", prefix)) from exc

    def read(self, blob: str) -> tuple[bytes, BlobInfo]:
        try:
            downloader = self._client.download_blob(blob)
            data = downloader.readall()
            return data, self._info(blob, downloader.properties)
        except Exception as exc:
            raise _translate(exc, self._what("read", blob)) from exc

    def download_to(self, blob: str, dst: BinaryIO) -> BlobInfo:
        try:
            downloader = self._client.download_blob(blob)
            downloader.readinto(dst)
            return self._info(blob, downloader.properties)
        except Exception as exc:
            raise _translate(exc, self._what("read", blob)) from exc

    def info(self, blob: str) -> BlobInfo:
        try:
            props = self._client.get_blob_client(blob).get_blob_properties()
        except Exception as exc:
            raise _translate(exc, self._what("info", blob)) from exc
        return self._info(blob, props)

    def exists(self, blob: str) -> bool:
        try:
            self.info(blob)
        except BlobNotFoundError:
            return False
        return True

    def write(
        self,
        blob: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        lease_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        from azure.core import MatchConditions
        from azure.storage.blob import ContentSettings

        create_only = if_match is None and if_none_match is not None
        kwargs: dict[str, Any] = {"overwrite": not create_only, "metadata": dict(metadata or {}) or None}
        if lease_id is not None:
            kwargs["lease"] = lease_id
        if tags:
            kwargs["tags"] = dict(tags)
        if length is not None:
            kwargs["length"] = length
        if if_match is not None:
            kwargs.update(etag=if_match, match_condition=MatchConditions.IfNotModified)
        elif create_only:
            kwargs["if_none_match"] = if_none_match
        if content_type:
            kwargs["content_settings"] = ContentSettings(content_type=content_type)
        try:
            result = self._client.get_blob_client(blob).upload_blob(data, **kwargs)
        except Exception as exc:
            raise _translate(exc, self._what("write", blob), create_only=create_only) from exc
        return str(result["etag"])

    def find_by_tags(self, query: str) -> Iterator[TaggedBlob]:
        try:
            for found in self._client.find_blobs_by_tags(query):
                yield TaggedBlob(name=found.name, tags=dict(found.tags or {}))
        except Exception as exc:
            raise _translate(exc, f"find blobs in {self.name} by tags") from exc

    def delete(self, blob: str) -> None:
        try:
            self._client.delete_blob(blob)
        except Exception as exc:
            raise _translate(exc, self._what("delete", blob)) from exc

    def acquire_lease(self, blob: str, *, duration_s: int) -> str:
        client = self._client.get_blob_client(blob)
        try:
            client.upload_blob(b"", overwrite=False)
        except Exception as exc:
            error = _translate(exc, self._what("create", blob), create_only=True)
            if not isinstance(error, BlobExistsError):
                raise error from exc
        try:
            return str(client.acquire_lease(lease_duration=duration_s).id)
        except Exception as exc:
            raise LeaseHeldError(
                f"blob {self.name}/{blob} is leased by another holder ({_translate(exc, 'lease')})"
            ) from exc

    def renew_lease(self, blob: str, lease_id: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        try:
            BlobLeaseClient(self._client.get_blob_client(blob), lease_id=lease_id).renew()
        except Exception as exc:
            raise LeaseHeldError(
                f"cannot renew lease on {self.name}/{blob} ({_translate(exc, 'renew')})"
            ) from exc

    def release_lease(self, blob: str, lease_id: str) -> None:
        from azure.storage.blob import BlobLeaseClient

        try:
            BlobLeaseClient(self._client.get_blob_client(blob), lease_id=lease_id).release()
        except Exception as exc:
            raise _translate(exc, self._what("release lease on", blob)) from exc

    def read_url(self, blob: str, *, expires_in: timedelta) -> str:
        from azure.storage.blob import BlobSasPermissions, generate_blob_sas

        account_key = getattr(self._client.credential, "account_key", None)
        if account_key is None:
            raise BlobAuthError(
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

    @staticmethod
    def _info(name: str, props: Any) -> BlobInfo:
        settings = getattr(props, "content_settings", None)
        return BlobInfo(
            name=name,
            size=int(props.size or 0),
            etag=str(props.etag),
            last_modified=props.last_modified,
            metadata=dict(props.metadata or {}),
            content_type=getattr(settings, "content_type", None),
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
    etag: str
    tags: dict[str, str] = field(default_factory=dict)

    def info(self, name: str) -> BlobInfo:
        return BlobInfo(
            name, len(self.data), self.etag, self.modified, dict(self.metadata), self.content_type
        )


@dataclass
class _Lease:
    lease_id: str
    expires: float | None
    duration_s: int


class MemoryContainer:
    """A container in a dict, with the same conditional-write and lease semantics as Azure.

    Tests steer failures: ``outage``, ``auth_failure`` or a ``fail_hook(operation, name)`` that
    may raise any ``BlobStoreError``. ``puts`` lists the names written, in order.
    """

    def __init__(self, name: str = "data", *, clock: Clock | None = None) -> None:
        self._name = name
        self._clock = clock or SystemClock()
        self.blobs: dict[str, _Stored] = {}
        self._leases: dict[str, _Lease] = {}
        self.outage = False
        self.auth_failure = False
        self.fail_hook: Callable[[str, str], None] | None = None
        self.puts: list[str] = []
        self._lock = threading.Lock()
        self._counter = itertools.count(1)

    @property
    def name(self) -> str:
        return self._name

    def _check(self, operation: str, name: str) -> None:
        if self.outage:
            raise BlobUnavailableError(f"{operation} {name!r}: storage unreachable (simulated outage)")
        if self.auth_failure:
            raise BlobAuthError(f"{operation} {name!r}: credentials refused (simulated)")
        if self.fail_hook is not None:
            self.fail_hook(operation, name)

    def _etag(self, data: bytes) -> str:
        return f'"0x{hashlib.sha256(data).hexdigest()[:12]}{next(self._counter):04x}"'

    def _stored(self, operation: str, blob: str) -> _Stored:
        self._check(operation, blob)
        with self._lock:
            stored = self.blobs.get(blob)
        if stored is None:
            raise BlobNotFoundError(f"{operation} {self._name}/{blob}: BlobNotFound")
        return stored

    def ensure_container(self) -> None:
        self._check("create", self._name)

    def list(self, prefix: str = "") -> Iterator[BlobInfo]:
        self._check("list", prefix)
        with self._lock:
            infos = [
                stored.info(name) for name, stored in sorted(self.blobs.items()) if name.startswith(prefix)
            ]
        return iter(infos)

    def read(self, blob: str) -> tuple[bytes, BlobInfo]:
        stored = self._stored("get", blob)
        return stored.data, stored.info(blob)

    def download_to(self, blob: str, dst: BinaryIO) -> BlobInfo:
        data, info = self.read(blob)
        dst.write(data)
        return info

    def info(self, blob: str) -> BlobInfo:
        return self._stored("info", blob).info(blob)

    def exists(self, blob: str) -> bool:
        self._check("info", blob)
        with self._lock:
            return blob in self.blobs

    def write(
        self,
        blob: str,
        data: bytes | BinaryIO,
        *,
        length: int | None = None,
        metadata: Mapping[str, str] | None = None,
        content_type: str | None = None,
        if_match: str | None = None,
        if_none_match: str | None = None,
        lease_id: str | None = None,
        tags: Mapping[str, str] | None = None,
    ) -> str:
        self._check("put", blob)
        _check_tags(tags or {})
        payload = (
            bytes(data) if isinstance(data, bytes) else data.read() if length is None else data.read(length)
        )
        with self._lock:
            current = self.blobs.get(blob)
            if if_match is None and if_none_match is not None and current is not None:
                raise BlobExistsError(f"put {self._name}/{blob}: BlobAlreadyExists")
            if if_match is not None and (current is None or current.etag != if_match):
                raise PreconditionFailedError(
                    f"put {self._name}/{blob}: ConditionNotMet (ETag {if_match} is stale)"
                )
            self._check_lease(blob, lease_id)
            stored = _Stored(
                payload,
                dict(metadata or {}),
                content_type,
                self._clock.now(),
                self._etag(payload),
                dict(tags or {}),
            )
            self.blobs[blob] = stored
            self.puts.append(blob)
            return stored.etag

    def find_by_tags(self, query: str) -> Iterator[TaggedBlob]:
        self._check("find", query)
        wanted = _parse_tags_query(query)
        with self._lock:
            found = [
                TaggedBlob(name, {key: stored.tags[key] for key in wanted})
                for name, stored in sorted(self.blobs.items())
                if all(stored.tags.get(key) == value for key, value in wanted.items())
            ]
        return iter(found)

    def delete(self, blob: str) -> None:
        self._check("delete", blob)
        with self._lock:
            self._check_lease(blob, None)
            if self.blobs.pop(blob, None) is None:
                raise BlobNotFoundError(f"delete {self._name}/{blob}: BlobNotFound")

    def _check_lease(self, blob: str, lease_id: str | None) -> None:
        held = self._live_lease(blob)
        if held is not None and held.lease_id != lease_id:
            raise LeaseHeldError(f"blob {self._name}/{blob} is leased by another holder")

    def _live_lease(self, blob: str) -> _Lease | None:
        lease = self._leases.get(blob)
        if lease is not None and lease.expires is not None and self._clock.monotonic() >= lease.expires:
            del self._leases[blob]
            return None
        return lease

    def _expiry(self, duration_s: int) -> float | None:
        return None if duration_s < 0 else self._clock.monotonic() + duration_s

    def acquire_lease(self, blob: str, *, duration_s: int) -> str:
        self._check("lease", blob)
        with self._lock:
            if blob not in self.blobs:
                self.blobs[blob] = _Stored(b"", {}, None, self._clock.now(), self._etag(b""))
            if self._live_lease(blob) is not None:
                raise LeaseHeldError(f"blob {self._name}/{blob} is leased by another holder")
            lease = _Lease(str(uuid.uuid4()), self._expiry(duration_s), duration_s)
            self._leases[blob] = lease
            return lease.lease_id

    def renew_lease(self, blob: str, lease_id: str) -> None:
        self._check("lease", blob)
        with self._lock:
            held = self._live_lease(blob)
            if held is None or held.lease_id != lease_id:
                raise LeaseHeldError(f"lease {lease_id} on {self._name}/{blob} is not held")
            held.expires = self._expiry(held.duration_s)

    def release_lease(self, blob: str, lease_id: str) -> None:
        self._check("lease", blob)
        with self._lock:
            held = self._leases.get(blob)
            if held is not None and held.lease_id == lease_id:
                del self._leases[blob]

    def read_url(self, blob: str, *, expires_in: timedelta) -> str:
        expiry = (self._clock.now() + expires_in).strftime("%Y-%m-%dT%H:%M:%SZ")
        return f"memory://{self._name}/{blob}?sp=r&se={expiry}"

    def close(self) -> None:
        return None


_QUERY_CLAUSE = re.compile(r"""^\s*"([^"]+)"\s*=\s*'([^']*)'\s*$""")


def _parse_tags_query(query: str) -> dict[str, str]:
    """The tags an equality query (``"a" = 'x' AND "b" = 'y'``) asks for; other forms are refused."""
    wanted: dict[str, str] = {}
    for clause in re.split(r"\s+AND\s+", query.strip(), flags=re.IGNORECASE):
        match = _QUERY_CLAUSE.match(clause)
        if match is None:
            raise BlobStoreError(f"tag query {query!r}: only \"name\" = 'value' clauses joined by AND")
        wanted[match.group(1)] = match.group(2)
    return wanted


def _check_tags(tags: Mapping[str, str]) -> None:
    """Refuse tags Azure would refuse (the memory store behaves as the real one)."""
    if len(tags) > MAX_TAGS:
        raise BlobStoreError(f"{len(tags)} blob index tags; at most {MAX_TAGS}")
    for key, value in tags.items():
        if not key or len(key) > 128 or _TAG_UNSAFE.search(key) or value != tag_value(value):
            raise BlobStoreError(f"blob index tag {key!r}={value!r} has characters or a length tags refuse")


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
