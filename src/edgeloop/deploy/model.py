"""The initial model: the registry's champion when there is one, else a file published now.

Either way the model must verify with the signing key the device is given: a champion signed
by another key, or bytes that do not match their card, stop the preparation with the reason.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from edgeloop import signing
from edgeloop.errors import EdgeLoopError


class InitialModelError(EdgeLoopError):
    """No usable initial model: none given, unreadable, or its signature does not match."""


@dataclass(frozen=True)
class InitialModel:
    desired: dict[str, Any]  # the inference twin's ``model`` (url holds a read-only SAS)
    origin: str  # "champion" or "published"


def initial_model(
    models: Any,
    *,
    name: str,
    model_file: Path | None,
    signing_private: bytes,
    sas_valid: timedelta,
) -> InitialModel:
    """``models`` is the models container (a ``BlobContainer``).

    Raises:
        InitialModelError: with the reason.
    """
    from edgeloop_cloud.registry import Registry, RegistryError
    from edgeloop_cloud.rollout import desired_model

    registry = Registry(models)
    public = signing.public_key_pem(signing_private)
    champion = registry.champion(name)
    origin = "champion"
    try:
        if champion is None:
            if model_file is None:
                raise InitialModelError(
                    f"the registry has no champion for model {name!r}: "
                    "give the initial model with --model FILE"
                )
            data = _read(model_file)
            version = registry.claim_version(name)
            registry.publish(name, version, data, private_key_pem=signing_private, card={"source": "deploy"})
            champion = registry.release(name, version)
            origin = "published"
        data = registry.read_model(name, champion.version)
    except RegistryError as exc:
        raise InitialModelError(f"model {name!r}: {exc}") from exc
    _verify(data, champion.sha256, champion.signature, public, f"{name} {champion.version}")
    return InitialModel(desired_model(registry, champion, sas_hours=sas_valid.total_seconds() / 3600), origin)


def _read(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InitialModelError(f"cannot read --model {path}: {exc.strerror or exc}") from exc
    if not data:
        raise InitialModelError(f"--model {path} is empty")
    return data


def _verify(data: bytes, sha256: str, signature: str, public: bytes, what: str) -> None:
    if hashlib.sha256(data).hexdigest() != sha256:
        raise InitialModelError(f"model {what}: the stored bytes do not match its sha256 {sha256}")
    try:
        signing.verify(public, data, signature)
    except signing.SignatureError as exc:
        raise InitialModelError(
            f"model {what}: its signature does not verify with signing key {signing.key_id(public)} "
            f"({exc}); it was signed with another key: use that key's folder (--keys) or publish again"
        ) from exc
