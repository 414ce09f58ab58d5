"""The uploader as an edge module: inputs ``selected`` and ``predictions``, output ``uploaded``,
methods ``getQueue``, ``flush``, ``retryQuarantined`` and ``setCredentials``.

Inputs are accepted on the runtime thread (claim, budget, seal: a few milliseconds a sample);
uploads run on ``outbox.workers`` background threads, each with up to two samples in flight.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from edgeloop.blobstore import BlobStoreError
from edgeloop.clock import Clock
from edgeloop.contracts import Contract, Prediction, SelectedSample, UploadedNotice
from edgeloop.errors import MethodError
from edgeloop.runtime import EdgeModule, InboundMessage, MethodRegistry, ModuleContext
from edgeloop_uploader import observe
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.service import Uploader
from edgeloop_uploader.sources import load_public_key
from edgeloop_uploader.storage import StoreFactory, azure_store_factory

log = logging.getLogger(__name__)

OUTPUT = "uploaded"


class FlushRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    wait_s: float = Field(
        default=0.0, ge=0.0, le=60.0, description="Wait up to this long for an empty queue."
    )


class RetryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sample_ids: list[str] | None = Field(default=None, description="Only these entries; all when omitted.")


class CredentialsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    connection_string: SecretStr | None = Field(default=None, description="A storage connection string.")
    container_sas_url: SecretStr | None = Field(default=None, description="A container SAS URL.")


class UploaderModule(EdgeModule[UploaderConfig]):
    name = "uploader"
    config_model = UploaderConfig

    def __init__(
        self,
        *,
        samples_dir: Path,
        outbox_dir: Path,
        store_factory: StoreFactory = azure_store_factory,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        env_credential: str | None = None,
        env_public_key_file: str | None = None,
        run_workers: bool = True,
        upkeep_interval_s: float = 5.0,
    ) -> None:
        self.samples_dir = Path(samples_dir)
        self.outbox_dir = Path(outbox_dir)
        self.store_factory = store_factory
        self.rng = rng
        self.clock = clock
        self.env_credential = env_credential
        self.env_public_key_file = env_public_key_file
        self.run_workers = run_workers
        self.upkeep_interval_s = upkeep_interval_s
        self.uploader: Uploader | None = None
        self._config = UploaderConfig()
        self._ctx: ModuleContext[UploaderConfig] | None = None
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()
        self._paused = False
        self._next_upkeep = 0.0

    @classmethod
    def from_environment(cls, environ: Mapping[str, str]) -> UploaderModule:
        return cls(
            samples_dir=Path(environ.get("EDGELOOP_SAMPLES_DIR", "/samples")),
            outbox_dir=Path(environ.get("EDGELOOP_OUTBOX_DIR", "/outbox")),
            env_credential=environ.get("EDGELOOP_STORAGE_CONNECTION_STRING") or None,
            env_public_key_file=environ.get("EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE") or None,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def apply_config(self, config: UploaderConfig, previous: UploaderConfig | None) -> None:
        if self.uploader is None:
            load_public_key(config, env_file=self.env_public_key_file)  # refuse a bad key now
            self._config = config
            return
        self.uploader.configure(config, previous)

    def start(self, ctx: ModuleContext[UploaderConfig]) -> None:
        self._ctx = ctx
        clock = self.clock or ctx.clock
        self.uploader = Uploader(
            samples_dir=self.samples_dir,
            outbox_dir=self.outbox_dir,
            device_id=ctx.device_id,
            clock=clock,
            rng=self.rng,
            store_factory=self.store_factory,
            notify=self._send_notices,
            env_credential=self.env_credential,
            env_public_key_file=self.env_public_key_file,
        )
        self.uploader.configure(self._config, None)
        observe.observe_outbox(self.uploader)
        recovered = self.uploader.recover()
        log.info("uploader started: outbox %s, %s", self.outbox_dir, recovered)
        self._next_upkeep = clock.monotonic() + self.upkeep_interval_s
        if self.run_workers:
            for number in range(self._config.outbox.workers):
                worker = threading.Thread(target=self._work, name=f"uploader-{number}", daemon=True)
                worker.start()
                self._workers.append(worker)

    def stop(self) -> None:
        self._stop.set()
        if self.uploader is not None:
            self.uploader.stop_uploads()
        deadline = time.monotonic() + 10.0  # an upload in flight finishes or is retried after restart
        for worker in self._workers:
            worker.join(timeout=max(0.0, deadline - time.monotonic()))
        if self.uploader is not None:
            self.uploader.send_notices()
            self.uploader.close()

    def _send_notices(self, notices: list[UploadedNotice]) -> None:
        if self._ctx is not None:
            self._ctx.send(OUTPUT, notices)

    def _work(self) -> None:
        assert self.uploader is not None
        uploader = self.uploader
        while not self._stop.is_set():
            did = False
            if not self._paused:
                try:
                    did = uploader.upload_ready() > 0
                except Exception:
                    log.exception("upload worker failed; continuing")
            if not did:
                uploader.wake.wait(timeout=0.25)
                uploader.wake.clear()

    # -- events ----------------------------------------------------------------------------
    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        assert self.uploader is not None
        if input_name == "selected":
            samples = [item for item in items if isinstance(item, SelectedSample)]
            if len(samples) < len(items):
                log.warning("input selected: ignoring %s items of other contracts", len(items) - len(samples))
            self.uploader.accept_selected_batch(samples)
        elif input_name == "predictions":
            self.uploader.accept_predictions([p for p in items if isinstance(p, Prediction)])
        else:
            log.warning("no input named %r; items dropped", input_name)

    def tick(self) -> None:
        if self.uploader is None:
            return
        now = self.uploader.clock.monotonic()
        if now >= self._next_upkeep:
            self._next_upkeep = now + self.upkeep_interval_s
            self.uploader.upkeep()

    def set_paused(self, paused: bool) -> None:
        self._paused = paused

    def stats(self) -> dict[str, Any]:
        return self.uploader.stats() if self.uploader is not None else {}

    def warnings(self) -> list[str]:
        return self.uploader.warnings() if self.uploader is not None else []

    # -- methods ---------------------------------------------------------------------------
    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("getQueue", self._get_queue, description="outbox depth, oldest age, bytes, quarantine")
        methods.add(
            "flush", self._flush, FlushRequest, "ship prediction-log batches and retry everything now"
        )
        methods.add(
            "retryQuarantined", self._retry, RetryRequest, "put quarantined entries back in the queue"
        )
        methods.add(
            "setCredentials", self._set_credentials, CredentialsRequest, "replace the storage credential now"
        )

    def _need(self) -> Uploader:
        if self.uploader is None:
            raise MethodError(409, "the uploader is not started yet")
        return self.uploader

    def _get_queue(self, _payload: Any) -> dict[str, Any]:
        return self._need().queue_info()

    def _flush(self, request: FlushRequest) -> dict[str, Any]:
        uploader = self._need()
        uploader.flush()
        deadline = time.monotonic() + request.wait_s
        while request.wait_s and time.monotonic() < deadline and uploader.queue_info()["depth"] > 0:
            time.sleep(0.05)
        return uploader.queue_info()

    def _retry(self, request: RetryRequest) -> dict[str, Any]:
        return {"requeued": self._need().retry_quarantined(request.sample_ids)}

    def _set_credentials(self, request: CredentialsRequest) -> dict[str, Any]:
        given = [s for s in (request.connection_string, request.container_sas_url) if s is not None]
        if len(given) != 1:
            raise MethodError(400, "setCredentials takes exactly one of connection_string, container_sas_url")
        try:
            described = self._need().set_credentials(given[0].get_secret_value())
        except BlobStoreError as exc:
            raise MethodError(400, f"setCredentials: {exc}") from exc
        return {"applied": True, **described}
