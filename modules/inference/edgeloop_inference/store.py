"""The model cache: fetch a model file by URL, check its hash and signature, keep a few.

Files live in ``<models dir>/cache/<sha256>.onnx``: a model already in the cache (its hash
re-checked) is not fetched again, so a restarted module comes back without the network.
Fetching goes through a ``Fetcher`` port: ``UrlFetcher`` handles https, http and file URLs with
the standard library; tests may pass another.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import unquote, urlsplit

from edgeloop import signing
from edgeloop.clock import Clock
from edgeloop.errors import EdgeLoopError
from edgeloop_inference.config import ModelSpec, redact_url
from edgeloop_inference.session import ModelRejectedError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20


class FetchError(EdgeLoopError):
    """A model file could not be fetched (unreachable, refused, too large)."""


class Fetcher(Protocol):
    def fetch(self, url: str, dest: Path, *, timeout: float, max_bytes: int) -> None:
        """Write the resource at ``url`` to ``dest``. Raises ``FetchError``."""
        ...


class UrlFetcher:
    """https / http / file with ``urllib``; refuses bodies over ``max_bytes``."""

    def fetch(self, url: str, dest: Path, *, timeout: float, max_bytes: int) -> None:
        shown = redact_url(url)
        parts = urlsplit(url)
        try:
            if parts.scheme == "file":
                source = Path(unquote(parts.path))
                size = source.stat().st_size
                if size > max_bytes:
                    raise FetchError(
                        f"{shown} is {size} bytes, over the {max_bytes}-byte limit (max_model_mb)"
                    )
                shutil.copyfile(source, dest)
                return
            request = urllib.request.Request(url, headers={"x-ms-version": "2021-08-06"})
            with urllib.request.urlopen(request, timeout=timeout) as response, dest.open("wb") as out:
                written = 0
                while chunk := response.read(_CHUNK):
                    written += len(chunk)
                    if written > max_bytes:
                        raise FetchError(f"{shown} is over the {max_bytes}-byte limit (max_model_mb)")
                    out.write(chunk)
        except urllib.error.HTTPError as exc:
            raise FetchError(f"{shown} answered HTTP {exc.code} {exc.reason}") from exc
        except urllib.error.URLError as exc:
            raise FetchError(f"cannot reach {shown}: {exc.reason}") from exc
        except (OSError, ValueError) as exc:
            raise FetchError(f"cannot fetch {shown}: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


#: What to do about a model that cannot be verified, named in every refusal.
UNSIGNED_HINT = (
    "set public_key (or public_key_file) to the registry's model-signing public key, or "
    "allow_unsigned: true to serve unsigned models"
)


def verify_model(
    data: bytes,
    *,
    sha256: str,
    signature: str | None,
    public_key: bytes | None,
    allow_unsigned: bool = False,
) -> str | None:
    """Check the bytes against the expected hash and the Ed25519 signature.

    Signed models are required: without a public key or without a signature the model is
    refused unless ``allow_unsigned``. A signature that does not verify is refused always.
    Returns the key id that verified it (None for an unsigned model that was allowed).
    Raises ``ModelRejectedError`` with the reason.
    """
    actual = sha256_hex(data)
    if actual != sha256:
        raise ModelRejectedError(f"sha256 mismatch: the file hashes to {actual}, the twin says {sha256}")
    if public_key is None:
        if allow_unsigned:
            return None
        raise ModelRejectedError(
            f"signed models are required and no public key is configured: {UNSIGNED_HINT}"
        )
    if not signature:
        if allow_unsigned:
            return None
        raise ModelRejectedError(
            f"the model has no signature and signed models are required: {UNSIGNED_HINT}"
        )
    try:
        signing.verify(public_key, data, signature)
    except signing.SignatureError as exc:
        raise ModelRejectedError(
            f"bad signature: {exc} (signed by another key than {signing.key_id(public_key)}, or altered)"
        ) from exc
    return signing.key_id(public_key)


@dataclass(frozen=True)
class FetchSettings:
    timeout_s: float = 60.0
    attempts: int = 3
    max_bytes: int = 512 * 1024 * 1024
    backoff_s: float = 1.0


class ModelStore:
    """``<root>/cache/<sha256>.onnx`` files, fetched on demand."""

    def __init__(self, root: Path, *, fetcher: Fetcher, clock: Clock) -> None:
        self.root = Path(root)
        self.cache = self.root / "cache"
        self._fetcher = fetcher
        self._clock = clock

    def path_for(self, sha256: str) -> Path:
        return self.cache / f"{sha256}.onnx"

    def obtain(self, spec: ModelSpec, settings: FetchSettings) -> bytes:
        """The model's bytes, from the cache or fetched; the hash is checked either way.

        Raises:
            ModelRejectedError: unreachable after every attempt, too large, or wrong hash.
        """
        path = self.path_for(spec.sha256)
        if path.exists():
            data = path.read_bytes()
            if sha256_hex(data) == spec.sha256:
                log.info("model %s %s found in the cache", spec.name, spec.version)
                return data
            log.warning("cached %s is corrupt; fetching it again", path.name)
            path.unlink(missing_ok=True)
        data = self._fetch(spec, settings)
        actual = sha256_hex(data)
        if actual != spec.sha256:
            raise ModelRejectedError(
                f"sha256 mismatch: {redact_url(spec.url)} hashes to {actual}, the twin says {spec.sha256}"
            )
        self.cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(data)
        os.replace(tmp, path)
        return data

    def _fetch(self, spec: ModelSpec, settings: FetchSettings) -> bytes:
        self.cache.mkdir(parents=True, exist_ok=True)
        part = self.cache / f"{spec.sha256}.part"
        last: FetchError | None = None
        for attempt in range(1, settings.attempts + 1):
            try:
                self._fetcher.fetch(spec.url, part, timeout=settings.timeout_s, max_bytes=settings.max_bytes)
                data = part.read_bytes()
                return data
            except FetchError as exc:
                last = exc
                log.warning(
                    "fetch of model %s %s failed (attempt %d/%d): %s",
                    spec.name,
                    spec.version,
                    attempt,
                    settings.attempts,
                    exc,
                )
                if attempt < settings.attempts:
                    self._clock.sleep(settings.backoff_s * 2 ** (attempt - 1))
            finally:
                part.unlink(missing_ok=True)
        raise ModelRejectedError(f"download failed after {settings.attempts} attempt(s): {last}")

    def prune(self, keep: set[str], *, keep_count: int) -> list[str]:
        """Delete cached models beyond ``keep_count``, oldest first, never those in ``keep``."""
        if not self.cache.exists():
            return []
        files = sorted(self.cache.glob("*.onnx"), key=lambda p: p.stat().st_mtime, reverse=True)
        removed = []
        for path in files[keep_count:]:
            if path.stem not in keep:
                path.unlink(missing_ok=True)
                removed.append(path.stem)
        return removed
