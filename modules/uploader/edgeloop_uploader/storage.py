"""The uploader's link to Blob Storage: the store built from the credential in force, and one
backoff shared by every upload while the storage is unreachable or refuses the credential."""

from __future__ import annotations

import logging
import os
import random
import threading
from collections.abc import Callable
from typing import Any

from requests.utils import get_environ_proxies

from edgeloop.blobstore import (
    BlobAuthError,
    BlobContainer,
    BlobNotFoundError,
    BlobStoreError,
    is_sas_url,
)
from edgeloop.clock import Clock
from edgeloop_uploader.backoff import backoff_delay
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.putblob import BlobPut, LeanContainer
from edgeloop_uploader.sources import Credential, resolve_credential

log = logging.getLogger(__name__)

StoreFactory = Callable[[Credential, UploaderConfig], BlobContainer]


def azure_store_factory(credential: Credential, config: UploaderConfig) -> BlobContainer:
    """An ``AzureContainer`` whose requests do not consult the environment each time, and whose
    create-only writes (the uploads) go out as lean Put Blob requests (``putblob``).

    By default ``requests`` reads the proxy variables (every one of ``os.environ``) and looks for
    a ``.netrc`` on every request: a few hundred microseconds of CPU per upload. Here the
    environment is read once, when the store is built (again after a credential change): the
    proxy for the storage endpoint (``HTTPS_PROXY``, ``HTTP_PROXY``, ``NO_PROXY``) and a CA bundle
    (``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``) apply as before; a ``.netrc`` never did belong on
    a storage request. No SDK-level retries: the outbox owns the retry schedule (the SDK's would
    wait 15 s and more).

    Raises:
        BlobAuthError: the credential is neither a SAS URL nor a connection string.
    """
    ca_bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or None
    options: dict[str, Any] = {
        "retry_total": 0,
        "connection_timeout": 5.0,
        "read_timeout": config.storage.timeout_s,
        "connection_verify": ca_bundle or True,
    }
    client = _container_client(credential, config.storage.container, options)
    proxies = get_environ_proxies(str(client.url))
    if proxies:
        client = _container_client(credential, config.storage.container, {**options, "proxies": proxies})
    put = BlobPut.for_client(
        client,
        connection_timeout=options["connection_timeout"],
        read_timeout=options["read_timeout"],
        ca_bundle=ca_bundle,
        proxies=proxies,
    )
    return LeanContainer(client, put)


def _container_client(credential: Credential, container: str, options: dict[str, Any]) -> Any:
    from azure.core.pipeline.transport import RequestsTransport
    from azure.storage.blob import ContainerClient

    secret = credential.secret.strip()
    connection = {k: v for k, v in options.items() if k.startswith(("connection_", "read_"))}
    transport = RequestsTransport(use_env_settings=False, **connection)
    try:
        if is_sas_url(secret):
            return ContainerClient.from_container_url(secret, transport=transport, **options)
        return ContainerClient.from_connection_string(
            secret, container_name=container, transport=transport, **options
        )
    except (ValueError, TypeError) as exc:
        raise BlobAuthError(
            "storage credential is neither a container SAS URL (https://...) nor a connection "
            f"string (AccountName=...;AccountKey=...): {exc.__class__.__name__}"
        ) from None


class StorageLink:
    """Thread-safe: workers ask ``ready()``, report ``failed``/``succeeded``; the runtime thread
    reconfigures and replaces credentials."""

    def __init__(
        self, *, factory: StoreFactory, clock: Clock, rng: random.Random, env_credential: str | None
    ) -> None:
        self.factory = factory
        self.clock = clock
        self.rng = rng
        self.env_credential = env_credential
        self.config = UploaderConfig()
        self._lock = threading.Lock()
        self._store: BlobContainer | None = None
        self._credential: Credential | None = None
        self._override: Credential | None = None
        self._failures = 0
        self._retry_at = 0.0
        self.error: str | None = None
        self.secret_problems: list[str] = []

    def configure(self, config: UploaderConfig, *, changed: bool) -> None:
        """A new config; ``changed`` when its ``storage`` section differs (a twin change of
        credentials replaces one given by ``setCredentials``)."""
        self.config = config
        if changed:
            self._override = None
        self.refresh(force=changed)

    def replace(self, secret: str) -> dict[str, str]:
        """Use ``secret`` from now on. Raises ``BlobAuthError`` when it is malformed."""
        credential = Credential(secret.strip(), "method:setCredentials")
        store = self.factory(credential, self.config)
        with self._lock:
            self._override = credential
            self._install(store, credential)
        log.info("storage credentials replaced (%s)", credential.kind)
        return credential.describe()

    @property
    def missing(self) -> bool:
        return self._store is None

    def refresh(self, *, force: bool = False) -> None:
        """Build the store again if the credential in force changed (or ``force``)."""
        found = resolve_credential(self.config, override=self._override, env_value=self.env_credential)
        credential = found.credential
        with self._lock:
            self.secret_problems = found.problems
            if credential is None:
                self._store, self._credential = None, None
                why = "; ".join(found.problems) or "none configured"
                self.error = (
                    "no storage credentials (twin storage.*, storage.credentials_file, "
                    f"storage.credential_env or EDGELOOP_STORAGE_CONNECTION_STRING): {why}"
                )
                return
            if not force and self._credential is not None and credential.secret == self._credential.secret:
                return
            try:
                store = self.factory(credential, self.config)
            except BlobStoreError as exc:
                self._store, self._credential = None, credential
                self.error = f"storage credential from {credential.source} refused: {exc}"
                log.error("%s", self.error)
                return
            self._install(store, credential)

    def _install(self, store: BlobContainer, credential: Credential) -> None:
        self._store, self._credential = store, credential
        self._failures, self._retry_at, self.error = 0, 0.0, None
        log.info("storage: %s from %s, container %s", credential.kind, credential.source, store.name)
        self._create_container(store, credential)

    def _create_container(self, store: BlobContainer, credential: Credential) -> None:
        if self.config.storage.create_container and credential.kind == "connection_string":
            try:
                store.ensure_container()
            except BlobStoreError as exc:
                log.warning("could not create container %s: %s", store.name, exc)

    def ready(self) -> BlobContainer | None:
        """The store, unless there is none or the shared backoff is running."""
        with self._lock:
            if self._store is None or self.clock.monotonic() < self._retry_at:
                return None
            return self._store

    def failed(self, exc: BlobStoreError) -> None:
        """The storage (not an entry) failed: back off every upload."""
        with self._lock:
            self._failures += 1
            delay = backoff_delay(self._failures, self.config.retry, self.rng)
            self._retry_at = self.clock.monotonic() + delay
            self.error = str(exc)
        log.warning("storage failing (%s); next try in %.1fs", exc, delay)
        if isinstance(exc, BlobAuthError) and self._override is None:
            self.refresh()  # a rotated secret file or environment is picked up here
        elif isinstance(exc, BlobNotFoundError):  # the container is missing: created at start only
            with self._lock:  # if the storage answered then, so try again now
                store, credential = self._store, self._credential
            if store is not None and credential is not None:
                self._create_container(store, credential)

    def succeeded(self) -> None:
        if self._failures:
            with self._lock:
                self._failures, self.error = 0, None
            log.info("storage reachable again")

    def retry_now(self) -> None:
        with self._lock:
            self._retry_at = 0.0

    def problems(self) -> list[str]:
        """What an operator should fix: an unreadable secret, a SAS expired, expiring or read-only,
        the storage refusing uploads."""
        with self._lock:
            credential, error, secrets = self._credential, self.error, list(self.secret_problems)
        found = [f"storage: {p}" for p in secrets]
        if credential is not None:
            found.extend(f"storage: {p}" for p in credential.sas_problems(self.clock.now()))
        if error is not None:
            found.append(f"storage: {error}")
        return found

    def status(self) -> dict[str, Any]:
        with self._lock:
            return {
                "credential": self._credential.describe() if self._credential else None,
                "container": self._store.name if self._store else None,
                "error": self.error,
                "retry_in_s": round(max(0.0, self._retry_at - self.clock.monotonic()), 1),
            }
