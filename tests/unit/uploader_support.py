"""Builders shared by the uploader's unit tests (not a test module itself)."""

from __future__ import annotations

import hashlib
import random
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.service import Uploader
from edgeloop_uploader.sources import Credential

from edgeloop.blobstore import BlobContainer, MemoryContainer
from edgeloop.clock import FakeClock
from edgeloop.contracts import FrameRef, LabelScore, Prediction, SelectedSample, UploadedNotice
from edgeloop.envelope import EnvelopeContext, PrivateKeyring, PublicKey, generate_private_key, open_bytes

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@cache
def private_key(n: int = 0) -> rsa.RSAPrivateKey:
    return generate_private_key()


def public_pem(n: int = 0) -> str:
    return PublicKey(private_key(n).public_key(), "").pem().decode("ascii")


def key_id(n: int = 0) -> str:
    return PublicKey.from_pem(public_pem(n)).key_id


def keyring(*ns: int) -> PrivateKeyring:
    ring = PrivateKeyring()
    for n in ns or (0,):
        ring.add(private_key(n))
    return ring


def prediction(sample_id: str, *, file_ref: str | None = None, data: bytes | None = None) -> Prediction:
    frame = FrameRef(
        sample_id=sample_id,
        source_id="cam0",
        seq=1,
        captured_at=datetime(2026, 1, 5, 12, 30, tzinfo=UTC),
        kind="image" if file_ref else "vector",
        file_ref=file_ref,
        content_type="image/jpeg" if file_ref else None,
        bytes=len(data) if data is not None else None,
        sha256=hashlib.sha256(data).hexdigest() if data is not None else None,
        vector=None if file_ref else [0.5, 1.5],
    )
    return Prediction(
        sample_id=sample_id,
        frame=frame,
        status="ok",
        model_name="digits",
        model_version="3",
        label="7",
        confidence=0.41,
        margin=0.05,
        top_k=[LabelScore(label="7", score=0.41), LabelScore(label="1", score=0.36)],
        scores=[0.41, 0.36, 0.23],
        scored_at=datetime(2026, 1, 5, 12, 30, 1, tzinfo=UTC),
        traceparent=TRACEPARENT,
    )


def selected(
    samples_dir: Path, sample_id: str, data: bytes | None = None, *, priority: int = 0, write: bool = True
) -> SelectedSample:
    data = data if data is not None else f"jpeg bytes of {sample_id}".encode() * 20
    file_ref = f"frames/{sample_id}.jpg"
    if write:
        (samples_dir / "frames").mkdir(parents=True, exist_ok=True)
        (samples_dir / file_ref).write_bytes(data)
    return SelectedSample(
        sample_id=sample_id,
        prediction=prediction(sample_id, file_ref=file_ref, data=data),
        strategy="uncertainty",
        reason="margin 0.05 < 0.1",
        priority=priority,
        selected_at=datetime(2026, 1, 5, 12, 30, 2, tzinfo=UTC),
        traceparent=TRACEPARENT,
    )


class Harness:
    """An ``Uploader`` over a memory store and a fake clock, driven step by step."""

    def __init__(self, tmp_path: Path, *, config: dict[str, Any] | None = None, key: int | None = 0) -> None:
        self.tmp_path = tmp_path
        self.samples = tmp_path / "samples"
        self.samples.mkdir(parents=True, exist_ok=True)
        self.outbox = tmp_path / "outbox"
        self.clock = FakeClock()
        self.store = MemoryContainer()
        self.credentials: list[Credential] = []
        self.notices: list[UploadedNotice] = []
        doc: dict[str, Any] = {"retry": {"initial_backoff_s": 1.0, "max_backoff_s": 8.0, "max_attempts": 3}}
        if key is not None:
            doc["encryption"] = {"public_key_pem": public_pem(key)}
        for section, values in (config or {}).items():
            if isinstance(values, dict):
                doc.setdefault(section, {}).update(values)
            else:
                doc[section] = values
        self.config = UploaderConfig.model_validate(doc)
        self.uploader = self.new_uploader()
        self.uploader.configure(self.config, None)
        self.uploader.recover()

    def _factory(self, credential: Credential, _config: UploaderConfig) -> BlobContainer:
        self.credentials.append(credential)
        return self.store

    def new_uploader(self) -> Uploader:
        return Uploader(
            samples_dir=self.samples,
            outbox_dir=self.outbox,
            device_id="dev-1",
            clock=self.clock,
            rng=random.Random(7),
            store_factory=self._factory,
            notify=self.notices.extend,
            env_credential="DefaultEndpointsProtocol=http;AccountName=test;AccountKey=dGVzdA==",
        )

    def restart(self) -> None:
        self.uploader.close()
        self.uploader = self.new_uploader()
        self.uploader.configure(self.config, None)
        self.uploader.recover()

    def reconfigure(self, **sections: dict[str, Any]) -> None:
        doc = self.config.model_dump(mode="python")
        for name, values in sections.items():
            doc[name].update(values)
        for name in ("storage",):
            for secret in ("connection_string", "container_sas_url"):
                value = doc[name].get(secret)
                if value is not None and hasattr(value, "get_secret_value"):
                    doc[name][secret] = value.get_secret_value()
        previous, self.config = self.config, UploaderConfig.model_validate(doc)
        self.uploader.configure(self.config, previous)

    def pump(self, limit: int = 1000) -> int:
        """Upload until nothing is ready; returns how many batches were tried."""
        done = 0
        while done < limit and self.uploader.upload_ready():
            done += 1
        return done

    def open_sample(self, sample_id: str, *, ring: PrivateKeyring | None = None) -> bytes:
        name = next(n for n in self.store.blobs if n.endswith(".elenv") and f"/{sample_id}." in n)
        content_type = self.store.blobs[name].metadata["content_type"]
        expected = EnvelopeContext(sample_id=sample_id, device_id="dev-1", content_type=content_type)
        return open_bytes(self.store.blobs[name].data, keyring=ring or keyring(0), expected=expected)
