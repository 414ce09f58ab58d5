"""The uploader's create-only write as one Put Blob request, without the SDK's per-request
machinery.

Through ``BlobClient.upload_blob`` a small create-only write cost 3.3-3.4 CPU ms on the digits
benchmark's machine (against Azurite): a ``BlobClient`` (and its generated client) built for
each name, the request serialized through the generated operation, sixteen pipeline policies
(logging with header redaction, tracing, redirect, retry wrappers), the shared key policy's
header sort and ``requests`` preparing and sending it.
Here the same request (the same headers: metadata, index tags, content type,
``If-None-Match: *``, the service version the SDK speaks) is signed as the SDK's shared key policy
signs it (``SharedKeySigner``; a SAS URL carries its token in the query) and sent through a
``urllib3`` pool: 1.4-1.6 CPU ms; 0.55-0.64 with the signature's header order kept (the SDK
1.8-2.2 in those runs). ``urllib3`` itself was then most of what was left: the request now goes
out through ``httpwire`` (its head one string, the response read without ``http.client``),
0.24-0.47 CPU ms a 1.7 KB write against 1.00-1.11 through ``urllib3``. Every other operation, and a write
that is not create-only, goes through the SDK as before (``AzureContainer``).

What ``azure_store_factory`` arranged for the SDK's requests holds here too: no retries (the
outbox owns the schedule; but a request on a kept connection the server had closed is sent
again on a new one, as ``urllib3`` made sure no such connection was used), the connection and
read timeouts, the proxy for the storage endpoint read from the environment once, and the CA
bundle from ``REQUESTS_CA_BUNDLE``/``CURL_CA_BUNDLE`` (else ``certifi``'s, as ``requests`` uses).
"""

from __future__ import annotations

import base64
import functools
import hmac
import logging
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO
from urllib.parse import quote, urlsplit
from wsgiref.handlers import format_date_time

from edgeloop.blobstore import (
    ANY,
    AzureContainer,
    BlobAuthError,
    BlobExistsError,
    BlobNotFoundError,
    BlobStoreError,
    BlobUnavailableError,
    LeaseHeldError,
)
from edgeloop_uploader.httpwire import HttpClient, ProtocolError, proxy_for

log = logging.getLogger(__name__)

#: Connections kept per endpoint: upload workers, each with up to two requests in flight.
_POOL_SIZE = 8


class BlobPut:
    """Create-only Put Blob requests for one container; thread-safe (the pool is)."""

    def __init__(
        self,
        *,
        container_url: str,
        api_version: str,
        user_agent: str,
        signer: SharedKeySigner | None,
        connection_timeout: float,
        read_timeout: float,
        ca_bundle: str | None,
        proxies: Mapping[str, str] | None = None,
    ) -> None:
        """``container_url``: the container's URL (a SAS URL with its token); ``signer``: None
        when the URL carries a SAS token."""
        base, _, query = container_url.partition("?")
        self._base = base.rstrip("/")
        self._path = urlsplit(self._base).path
        self._query = f"?{query}" if query else ""
        self._signer = signer
        self._ca_bundle = ca_bundle
        self._fixed = {"User-Agent": user_agent, "Accept": "application/xml", "x-ms-version": api_version}
        scheme = urlsplit(self._base).scheme
        self._http = HttpClient(
            self._base,
            connect_timeout=connection_timeout,
            read_timeout=read_timeout,
            ca_bundle=ca_bundle or (_default_ca_bundle() if scheme == "https" else None),
            proxy=proxy_for(scheme, proxies or {}),
            pool_size=_POOL_SIZE,
        )

    @classmethod
    def for_client(
        cls,
        client: Any,
        *,
        connection_timeout: float,
        read_timeout: float,
        ca_bundle: str | None,
        proxies: Mapping[str, str] | None = None,
    ) -> BlobPut | None:
        """For an SDK ``ContainerClient``; None when the client is signed some other way (a
        token credential) or the SDK no longer exposes what the request needs."""
        policy = getattr(client, "_credential_policy", None)
        config = getattr(client, "_config", None)
        user_agent = getattr(getattr(config, "user_agent_policy", None), "user_agent", None)
        api_version = getattr(client, "api_version", None)
        if not isinstance(user_agent, str) or not isinstance(api_version, str):
            return None
        signer = None
        if policy is not None:
            signer = SharedKeySigner.for_policy(policy)
            if signer is None:
                return None
        return cls(
            container_url=str(client.url),
            api_version=api_version,
            user_agent=user_agent,
            signer=signer,
            connection_timeout=connection_timeout,
            read_timeout=read_timeout,
            ca_bundle=ca_bundle,
            proxies=proxies,
        )

    def url(self, blob: str) -> str:
        """The blob's URL, quoted as the SDK quotes a blob name."""
        return f"{self._base}/{_quote_name(blob)}{self._query}"

    def headers(
        self,
        quoted: str,
        length: int,
        metadata: Mapping[str, str],
        content_type: str | None,
        tags: Mapping[str, str],
    ) -> dict[str, str]:
        """The request's headers, signed; ``quoted``: the blob's name as in its URL."""
        headers = {
            **self._fixed,
            "Content-Length": str(length),
            **{f"x-ms-meta-{name}": value for name, value in metadata.items()},
            "x-ms-blob-type": "BlockBlob",
            "If-None-Match": ANY,
            "Content-Type": "application/octet-stream",
            "x-ms-date": format_date_time(None),
            # any unique id: uuid1 (the SDK's) takes libuuid's clock lock, ~70 us a request
            "x-ms-client-request-id": str(uuid.uuid4()),
        }
        if content_type:
            headers["x-ms-blob-content-type"] = content_type
        if tags:
            headers["x-ms-tags"] = tags_header(tags)
        if self._signer is not None:
            headers["Authorization"] = self._signer.authorization("PUT", f"{self._path}/{quoted}", headers)
        return headers

    def put(
        self,
        blob: str,
        data: bytes,
        *,
        metadata: Mapping[str, str],
        content_type: str | None,
        tags: Mapping[str, str],
        what: str,
    ) -> str:
        """Create ``blob``; its ETag. ``what`` names the operation in errors.

        Raises:
            BlobExistsError: a blob is at that name.
            BlobStoreError: the write failed (a subclass says how).
        """
        quoted = _quote_name(blob)
        headers = self.headers(quoted, len(data), metadata, content_type, tags)
        try:
            target = f"{self._path}/{quoted}{self._query}"
            response = self._http.request("PUT", target, _fields(headers), data)
        except ProtocolError as exc:
            # an answer this client cannot read: a plain store error, which sends the write
            # through the SDK (and the SDK's every later one, should the SDK's be accepted)
            raise BlobStoreError(f"{what}: the storage's answer could not be read ({exc})") from None
        except OSError as exc:
            # the CA bundle is looked for only when a request failed, not at every upload
            if self._ca_bundle and not os.path.exists(self._ca_bundle):
                raise BlobUnavailableError(f"{what}: CA bundle {self._ca_bundle} not found") from None
            reason = f"{exc.__class__.__name__} (storage unreachable or failing)"
            raise BlobUnavailableError(f"{what}: {reason}") from None
        if response.status == 201:
            return response.headers.get("etag", "")
        raise status_error(response.status, response.headers.get("x-ms-error-code", ""), what)

    def close(self) -> None:
        self._http.close()


class SharedKeySigner:
    """The Shared Key ``Authorization`` of a request without a query, as the SDK's
    ``SharedKeyCredentialPolicy`` computes it. The policy orders the ``x-ms-`` headers as the
    service collates them (``_storage_header_sort``, a character-by-character comparison in
    Python: most of the policy's 0.2-0.5 ms a request); here that order is worked out once for
    each set of header names (an upload's names come from a handful of sets) and kept."""

    #: The standard headers signed, in order (the policy's list).
    STANDARD = (
        "content-encoding",
        "content-language",
        "content-length",
        "content-md5",
        "content-type",
        "date",
        "if-modified-since",
        "if-match",
        "if-none-match",
        "if-unmodified-since",
        "byte_range",
    )
    _ORDERS_KEPT = 256

    def __init__(
        self,
        account_name: str,
        account_key: str,
        sort: Callable[[list[tuple[str, str]]], list[tuple[str, str]]],
    ) -> None:
        self._account = account_name
        self._key = base64.b64decode(account_key)
        self._sort = sort
        self._orders: dict[tuple[str, ...], list[str]] = {}

    @classmethod
    def for_policy(cls, policy: Any) -> SharedKeySigner | None:
        """For the SDK's shared key policy; None for another kind, or when the SDK no longer
        has the header order this signs with."""
        try:
            from azure.storage.blob._shared.authentication import (
                SharedKeyCredentialPolicy,
                _storage_header_sort,
            )
        except ImportError:
            return None
        if not isinstance(policy, SharedKeyCredentialPolicy):
            return None
        return cls(str(policy.account_name), str(policy.account_key), _storage_header_sort)

    def authorization(self, method: str, path: str, headers: Mapping[str, str]) -> str:
        """``path``: the request's URL path, quoted as sent."""
        signed: dict[str, str] = {}
        storage: dict[str, str] = {}
        for name, value in headers.items():  # one pass: each name lowered once
            low = name.lower()
            if value:
                signed[low] = value
            if name.startswith("x-ms-"):
                storage[low] = value
        if signed.get("content-length") == "0":
            del signed["content-length"]
        names = tuple(storage)
        order = self._orders.get(names)
        if order is None:
            order = [name for name, _ in self._sort([(name, "") for name in names])]
            if len(self._orders) >= self._ORDERS_KEPT:
                self._orders.clear()
            self._orders[names] = order
        text = "".join(
            (
                f"{method}\n",
                "\n".join([signed.get(name, "") for name in self.STANDARD]),
                "\n",
                "".join([f"{name}:{storage[name]}\n" for name in order]),
                f"/{self._account}{path}",
            )
        )
        digest = hmac.digest(self._key, text.encode("utf-8"), "sha256")
        return f"SharedKey {self._account}:{base64.b64encode(digest).decode('ascii')}"


def _fields(headers: Mapping[str, str]) -> str:
    """The header lines of a request. A name or value that would break a line (CR, LF) or is not
    Latin-1 is refused as ``http.client`` refuses it: ``ValueError``."""
    text = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
    if text.count("\n") != len(headers) or text.count("\r") != len(headers):
        raise ValueError("a request header holds a line break")
    return text


def _quote_name(blob: str) -> str:
    """A blob name as the SDK quotes it in a URL."""
    return quote(blob, safe="~/")


def tags_header(tags: Mapping[str, str]) -> str:
    """``x-ms-tags``: the index tags, URL-encoded as the SDK encodes them."""
    return "&".join(f"{_quote_tag(key)}={_quote_tag(value)}" for key, value in tags.items())


@functools.lru_cache(maxsize=4096)
def _quote_tag(text: str) -> str:
    """A tag's name or value quoted: a handful of them (strategy, model, version, device, label
    state) recur in every request, and ``quote`` is most of what the header costs."""
    return quote(text, safe=".-")


def status_error(status: int, code: str, what: str) -> BlobStoreError:
    """The port's error for a create-only write the storage refused (as ``AzureContainer``
    translates the SDK's exceptions)."""
    detail = f"{what}: HTTP {status}" + (f" {code}" if code else "")
    if status == 404:
        return BlobNotFoundError(detail)
    if "Lease" in code:
        return LeaseHeldError(detail)
    if status in (409, 412) or code == "BlobAlreadyExists":
        return BlobExistsError(detail)
    if status in (401, 403):
        return BlobAuthError(f"{detail} (credentials wrong, expired or without the right permission)")
    if status >= 500:
        return BlobUnavailableError(f"{detail} (storage unreachable or failing)")
    return BlobStoreError(detail)


def _default_ca_bundle() -> str | None:
    try:
        import certifi
    except ImportError:  # the system's store
        return None
    return str(certifi.where())


class LeanContainer(AzureContainer):
    """``AzureContainer`` whose create-only writes of bytes go out as ``BlobPut`` requests."""

    def __init__(self, client: Any, put: BlobPut | None) -> None:
        super().__init__(client)
        self._put = put
        self._pool = put  # closed at the end even when the lean path was given up

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
        put = self._put
        if (
            put is not None
            and isinstance(data, bytes)
            and if_none_match == ANY
            and if_match is None
            and lease_id is None
            and (length is None or length == len(data))
        ):
            try:
                return put.put(
                    blob,
                    data,
                    metadata=metadata or {},
                    content_type=content_type,
                    tags=tags or {},
                    what=f"write {self.name}/{blob}",
                )
            except BlobStoreError as exc:
                # Refused as unauthenticated or malformed, or answered in a way the lean client
                # cannot read: the lean request itself may be what fails (its signature, a
                # header, the client). The SDK sends the same create;
                # should the SDK's be accepted, the lean path is not used again for this store,
                # should it be refused too, that refusal is the answer.
                if not isinstance(exc, BlobAuthError) and type(exc) is not BlobStoreError:
                    raise
                refused = exc
            created = super().write(
                blob, data, metadata=metadata, content_type=content_type, if_none_match=ANY, tags=tags
            )
            log.warning(
                "a lean Put Blob failed (%s) where the SDK's was accepted: uploads go through the SDK "
                "from now on",
                refused,
            )
            self._put = None
            return created
        return super().write(
            blob,
            data,
            length=length,
            metadata=metadata,
            content_type=content_type,
            if_match=if_match,
            if_none_match=if_none_match,
            lease_id=lease_id,
            tags=tags,
        )

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
        super().close()
