"""The model registry in Blob Storage: immutable versions, model cards, a ``champion`` alias.

Layout in the models container::

    <name>/<version>/model.onnx     the signed model (written once, never replaced)
    <name>/<version>/card.json      its model card (metrics, sha256, signature, lineage, manifest, gate)
    <name>/<version>/decision.json  the gate decision and what became of it (promoted or not)
    <name>/champion.json            the alias: which version devices should run

Versions are ``v1``, ``v2``...; a version is claimed by creating its ``model.onnx`` with
"if none match", so two trainers never share one. The alias changes only with an ETag
condition: of two promoters racing from the same champion, exactly one wins.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from dataclasses import dataclass
from typing import Any

from edgeloop import signing
from edgeloop.clock import Clock, SystemClock
from edgeloop_cloud.errors import BlobNotFoundError, PreconditionFailedError, RegistryError
from edgeloop_cloud.storage import ANY, BlobContainer

log = logging.getLogger(__name__)

CARD_SCHEMA = "edgeloop.model-card/1"
ALIAS_SCHEMA = "edgeloop.alias/1"
_VERSION = re.compile(r"^v(\d+)$")


def _json(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=True, default=str) + "\n").encode()


@dataclass(frozen=True)
class Champion:
    """The alias as read, with the ETag a promoter must quote to change it."""

    name: str
    version: str
    sha256: str
    signature: str
    key_id: str
    model_blob: str
    etag: str
    doc: dict[str, Any]


class Registry:
    """Versions, cards and the champion alias of models in one container."""

    def __init__(self, container: BlobContainer, *, clock: Clock | None = None) -> None:
        self.container = container
        self._clock = clock or SystemClock()

    @staticmethod
    def model_blob(name: str, version: str) -> str:
        return f"{name}/{version}/model.onnx"

    @staticmethod
    def card_blob(name: str, version: str) -> str:
        return f"{name}/{version}/card.json"

    @staticmethod
    def alias_blob(name: str) -> str:
        return f"{name}/champion.json"

    def versions(self, name: str) -> list[str]:
        """Existing versions, oldest first."""
        found = set()
        for info in self.container.list(f"{name}/"):
            parts = info.name.split("/")
            if len(parts) == 3 and parts[2] == "model.onnx" and _VERSION.match(parts[1]):
                found.add(parts[1])
        return sorted(found, key=lambda v: int(v[1:]))

    def claim_version(self, name: str, model: bytes | None = None, *, attempts: int = 20) -> str:
        """Create the next version's ``model.onnx`` (placeholder unless ``model``) and return it.

        Raises:
            RegistryError: no free version after ``attempts`` tries.
        """
        existing = self.versions(name)
        number = int(existing[-1][1:]) if existing else 0
        for _ in range(attempts):
            number += 1
            version = f"v{number}"
            try:
                self.container.write(
                    self.model_blob(name, version),
                    model or b"",
                    if_none_match=ANY,
                    content_type="application/octet-stream",
                )
                return version
            except PreconditionFailedError:
                continue
        raise RegistryError(f"no free version for model {name!r} after {attempts} attempts")

    def publish(
        self, name: str, version: str, model: bytes, *, private_key_pem: bytes, card: dict[str, Any]
    ) -> dict[str, Any]:
        """Store the signed model of a claimed version and write its card; returns the card.

        The model bytes replace the placeholder written by ``claim_version`` only while it is
        still empty, so a published version is never rewritten.
        """
        blob = self.model_blob(name, version)
        _, info = self.container.read(blob)
        if info.size:
            raise RegistryError(f"version {name}/{version} is already published; versions are immutable")
        sha = hashlib.sha256(model).hexdigest()
        public = signing.public_key_pem(private_key_pem)
        full_card = {
            **card,
            "schema": CARD_SCHEMA,
            "name": name,
            "version": version,
            "created_at": self._clock.now().isoformat(),
            "model_blob": blob,
            "sha256": sha,
            "size_bytes": len(model),
            "signature": {
                "algorithm": "Ed25519",
                "key_id": signing.key_id(public),
                "value": signing.sign(private_key_pem, model),
            },
        }
        self.container.write(
            blob, model, if_match=info.etag, metadata={"sha256": sha}, content_type="application/octet-stream"
        )
        self.container.write(
            self.card_blob(name, version),
            _json(full_card),
            if_none_match=ANY,
            content_type="application/json",
        )
        return full_card

    def card(self, name: str, version: str) -> dict[str, Any]:
        try:
            data, _ = self.container.read(self.card_blob(name, version))
        except BlobNotFoundError as exc:
            raise RegistryError(f"model {name}/{version} has no card") from exc
        return dict(json.loads(data))

    def read_model(self, name: str, version: str) -> bytes:
        """The model bytes, checked against the card's sha256. Raises RegistryError."""
        card = self.card(name, version)
        data, _ = self.container.read(self.model_blob(name, version))
        if hashlib.sha256(data).hexdigest() != card["sha256"]:
            raise RegistryError(f"model {name}/{version} does not match the sha256 in its card")
        return data

    def record_decision(self, name: str, version: str, decision: dict[str, Any]) -> None:
        self.container.write(
            f"{name}/{version}/decision.json", _json(decision), content_type="application/json"
        )

    def champion(self, name: str) -> Champion | None:
        """The current champion, or None before the first promotion."""
        try:
            data, info = self.container.read(self.alias_blob(name))
        except BlobNotFoundError:
            return None
        doc = json.loads(data)
        return Champion(
            name=name,
            version=doc["version"],
            sha256=doc["sha256"],
            signature=doc["signature"],
            key_id=doc["key_id"],
            model_blob=doc["model_blob"],
            etag=info.etag,
            doc=doc,
        )

    def release(self, name: str, version: str) -> Champion:
        """A published version described like the alias (no ETag): what a rollout sends."""
        card = self.card(name, version)
        return Champion(
            name=name,
            version=version,
            sha256=card["sha256"],
            signature=card["signature"]["value"],
            key_id=card["signature"]["key_id"],
            model_blob=card["model_blob"],
            etag="",
            doc=card,
        )

    def promote(self, name: str, version: str, *, expected: Champion | None, reason: str = "") -> bool:
        """Point the alias at ``version`` if it still is what the caller compared against.

        ``expected`` is the champion the gate compared with (None: there was none). Returns
        False when another promoter changed the alias first (the ETag no longer matches).
        """
        card = self.card(name, version)
        doc = {
            "schema": ALIAS_SCHEMA,
            "name": name,
            "version": version,
            "model_blob": card["model_blob"],
            "sha256": card["sha256"],
            "signature": card["signature"]["value"],
            "key_id": card["signature"]["key_id"],
            "previous_version": expected.version if expected else None,
            "promoted_at": self._clock.now().isoformat(),
            "reason": reason,
        }
        try:
            self.container.write(
                self.alias_blob(name),
                _json(doc),
                content_type="application/json",
                if_match=expected.etag if expected else None,
                if_none_match=None if expected else ANY,
            )
        except PreconditionFailedError:
            log.warning("promotion of %s/%s lost: the champion alias changed meanwhile", name, version)
            return False
        log.info("promoted %s/%s (was %s)", name, version, expected.version if expected else "none")
        return True
