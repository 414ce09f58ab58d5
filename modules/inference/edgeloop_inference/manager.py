"""Which model serves, which one served before, and loading new ones beside them.

Loads run on one loader thread so scoring never waits for a download. A new model becomes
current only after it was fetched, hash- and signature-checked, loaded and self-tested; the
switch is one reference swap that the scoring thread reads once per batch, so each batch is
scored by exactly one model. The model it replaced is kept for ``rollback``. On any failure
the current model stays and the failure is reported.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeloop import signing
from edgeloop.clock import Clock
from edgeloop.errors import MethodError
from edgeloop_inference.config import InferenceConfig, ModelSpec, redact_url
from edgeloop_inference.providers import choose_providers
from edgeloop_inference.session import LoadedModel, ModelIdentity, ModelRejectedError, load_model
from edgeloop_inference.store import FetchSettings, ModelStore, sha256_hex, verify_model

log = logging.getLogger(__name__)

#: Load requests that come from the twin (the latest one wins).
_TWIN_REASONS = ("twin", "reconfigure")
#: Loads that keep a recorded rollback in force (start-up); any other swap ends it.
_KEEPS_ROLLBACK = ("initial", "restore")


@dataclass(frozen=True)
class LoadRequest:
    """A twin/method model (``spec``) or a local file (``path``), with the settings to load it."""

    config: InferenceConfig
    public_key: bytes | None
    spec: ModelSpec | None = None
    path: Path | None = None
    reason: str = "twin"

    @property
    def label(self) -> str:
        if self.spec is not None:
            return f"{self.spec.name} {self.spec.version}"
        return str(self.path)


class ModelManager:
    """Holds the current and previous model; loads on its own thread."""

    def __init__(
        self,
        *,
        store: ModelStore,
        clock: Clock,
        available_providers: Callable[[], list[str]],
        on_change: Callable[[], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._available = available_providers
        self._on_change = on_change
        self._lock = threading.Condition()
        self.current: LoadedModel | None = None
        self.previous: LoadedModel | None = None
        self.status = "none"
        self.failure: dict[str, Any] | None = None
        self._loading = 0
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader")
        self.loads = 0
        self.failures = 0
        self.rollbacks = 0
        self.skipped = 0
        self._twin_generation = 0
        self.rolled_back = False

    # -- loading ---------------------------------------------------------------------------
    def submit(self, request: LoadRequest) -> Future[LoadedModel | None]:
        """Queue a load; the future holds the model now serving, or ``ModelRejectedError``.

        A twin request still waiting when a newer twin request arrives is skipped: the twin
        names one model, the latest."""
        with self._lock:
            self._loading += 1
            self.status = "loading"
            generation = None
            if request.reason in _TWIN_REASONS:
                self._twin_generation += 1
                generation = self._twin_generation
        self._on_change()
        return self._executor.submit(self._load_and_swap, request, generation)

    @property
    def loading(self) -> bool:
        with self._lock:
            return self._loading > 0

    def wait_for_model(self, timeout: float, stop: threading.Event) -> LoadedModel | None:
        """Wait while a load is under way and nothing serves yet (start-up)."""
        with self._lock:
            self._lock.wait_for(
                lambda: self.current is not None or self._loading == 0 or stop.is_set(), timeout
            )
            return self.current

    def _load_and_swap(self, request: LoadRequest, generation: int | None) -> LoadedModel | None:
        try:
            current = self.current
            if generation is not None and generation < self._twin_generation:
                log.info("skipping model %s: the twin names a newer one", request.label)
                self.skipped += 1
                return current
            if request.spec is not None and current is not None and self._same(current, request):
                log.info("model %s is already serving", request.label)
                with self._lock:
                    self.failure = None
                return current
            model = self._load(request)
            if generation is not None and generation < self._twin_generation:
                log.info("model %s loaded, but the twin names a newer one: not swapping", request.label)
                self.skipped += 1
                return current
            with self._lock:
                if self.current is not None and self.current is not model:
                    self.previous = self.current
                self.current = model
                self.failure = None
                self.loads += 1
                if request.reason not in _KEEPS_ROLLBACK:
                    self.rolled_back = False
                    self._forget_rollback()
            log.info(
                "now serving model %s %s (%s)", model.identity.name, model.identity.version, request.reason
            )
            self._store.prune(self._in_use(), keep_count=request.config.cache_keep)
            return model
        except ModelRejectedError as exc:
            with self._lock:
                self.failures += 1
                self.failure = {
                    "name": request.spec.name if request.spec else None,
                    "version": request.spec.version if request.spec else None,
                    "sha256": request.spec.sha256 if request.spec else None,
                    "source": redact_url(request.spec.url) if request.spec else str(request.path),
                    "reason": exc.reason,
                    "at": self._clock.now().isoformat(),
                }
            log.warning("model %s refused, still serving the previous one: %s", request.label, exc.reason)
            raise
        finally:
            with self._lock:
                self._loading -= 1
                self.status = self._status()
                self._lock.notify_all()
            self._on_change()

    def _same(self, current: LoadedModel, request: LoadRequest) -> bool:
        assert request.spec is not None
        return (
            current.identity.sha256 == request.spec.sha256
            and current.identity.version == request.spec.version
            and current.identity.name == request.spec.name
            and request.reason != "reconfigure"
        )

    def _status(self) -> str:
        if self._loading:
            return "loading"
        if self.failure is not None:
            return "failed"
        if self.current is not None and self.rolled_back:
            return "rolledBack"
        return "loaded" if self.current is not None else "none"

    def _in_use(self) -> set[str]:
        return {m.identity.sha256 for m in (self.current, self.previous) if m is not None}

    def _load(self, request: LoadRequest) -> LoadedModel:
        config = request.config
        if request.spec is not None:
            spec = request.spec
            settings = FetchSettings(
                timeout_s=config.download_timeout_s,
                attempts=config.download_attempts,
                max_bytes=int(config.max_model_mb * 1024 * 1024),
            )
            data = self._store.obtain(spec, settings)
            key_id = verify_model(
                data,
                sha256=spec.sha256,
                signature=spec.signature,
                public_key=request.public_key,
                allow_unsigned=config.allow_unsigned,
            )
            identity = ModelIdentity(
                spec.name,
                spec.version,
                spec.sha256,
                redact_url(spec.url),
                key_id,
                signature=spec.signature,
                cached=True,
            )
        else:
            assert request.path is not None
            data, identity = self._local(request)
        choice = choose_providers(config.providers, self._available())
        model = load_model(
            data,
            identity=identity,
            choice=choice,
            intra_op_threads=config.intra_op_threads,
            intra_op_spinning=config.intra_op_spinning,
            preprocess_override=config.preprocess,
            labels_override=config.labels,
            output_name=config.output_name,
            loaded_at=self._clock.now(),
        )
        if request.path is not None and model.metadata.name:
            model.identity = ModelIdentity(
                model.metadata.name,
                model.metadata.version or identity.version,
                identity.sha256,
                identity.source,
                identity.key_id,
            )
        return model

    def _local(self, request: LoadRequest) -> tuple[bytes, ModelIdentity]:
        """A model file on the volume: its signature is ``<file>.sig`` beside it (base64 Ed25519),
        required unless ``allow_unsigned``."""
        assert request.path is not None
        path = request.path
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelRejectedError(f"cannot read model file {str(path)!r}: {exc.strerror or exc}") from exc
        digest = sha256_hex(data)
        sig_path = path.with_name(path.name + ".sig")
        signature = None
        if sig_path.exists():
            try:
                signature = sig_path.read_text(encoding="ascii").strip() or None
            except (OSError, UnicodeDecodeError) as exc:
                raise ModelRejectedError(f"cannot read signature file {str(sig_path)!r}: {exc}") from exc
        try:
            key_id = verify_model(
                data,
                sha256=digest,
                signature=signature,
                public_key=request.public_key,
                allow_unsigned=request.config.allow_unsigned,
            )
        except ModelRejectedError as exc:
            where = f"model file {str(path)!r} (signature file {sig_path.name})"
            raise ModelRejectedError(f"{where}: {exc.reason}") from exc
        return data, ModelIdentity(path.stem, "initial", digest, str(path), key_id, signature=signature)

    # -- rollback --------------------------------------------------------------------------
    def rollback(self) -> LoadedModel:
        """Serve the previous model again (the current one becomes the previous).

        Raises:
            MethodError: 409 when there is no previous model.
        """
        with self._lock:
            if self.previous is None:
                raise MethodError(409, "no previous model to roll back to")
            self.current, self.previous = self.previous, self.current
            self.rollbacks += 1
            self.failure = None
            self.rolled_back = True
            self.status = "rolledBack"
            model = self.current
            assert self.previous is not None
            self._remember_rollback(away_from=self.previous, to=model)
        log.warning("rolled back to model %s %s", model.identity.name, model.identity.version)
        self._on_change()
        return model

    # -- rollback across restarts ----------------------------------------------------------
    @property
    def _rollback_path(self) -> Path:
        return self._store.root / "rollback.json"

    def _remember_rollback(self, *, away_from: LoadedModel, to: LoadedModel) -> None:
        """Write down that ``away_from`` was rolled back, so a restart with the same twin does
        not load it again (the twin still names it until the rollout changes it)."""
        target = to.identity
        doc = {
            "from": away_from.identity.brief(),
            "to": {**target.brief(), "signature": target.signature, "cached": target.cached},
            "at": self._clock.now().isoformat(),
        }
        try:
            self._store.root.mkdir(parents=True, exist_ok=True)
            tmp = self._rollback_path.with_suffix(".tmp")
            tmp.write_text(json.dumps(doc), encoding="utf-8")
            os.replace(tmp, self._rollback_path)
        except OSError:
            log.warning("could not record the rollback in %s", self._rollback_path, exc_info=True)

    def _forget_rollback(self) -> None:
        with contextlib.suppress(OSError):
            self._rollback_path.unlink(missing_ok=True)

    def recorded_rollback(self) -> dict[str, Any] | None:
        """The rollback written down before a restart, if any."""
        try:
            doc = json.loads(self._rollback_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return doc if isinstance(doc, dict) and "from" in doc and "to" in doc else None

    def restore_request(self, config: InferenceConfig, public_key: bytes | None) -> LoadRequest | None:
        """A load of the cached model the recorded rollback went to (None: it was a local file,
        which loads as the initial model anyway, or it is no longer cached)."""
        doc = self.recorded_rollback()
        if doc is None or not doc["to"].get("cached"):
            return None
        to = doc["to"]
        path = self._store.path_for(to["sha256"])
        if not path.exists():
            return None
        spec = ModelSpec.model_validate(
            {
                "name": to["name"],
                "version": to["version"],
                "url": path.as_uri(),
                "sha256": to["sha256"],
                "signature": to.get("signature"),
            }
        )
        return LoadRequest(config, public_key, spec=spec, reason="restore")

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

    # -- reporting -------------------------------------------------------------------------
    def report(self) -> dict[str, Any]:
        with self._lock:
            current, previous, failure, status = self.current, self.previous, self.failure, self.status
        out: dict[str, Any] = {"status": status, "error": failure["reason"] if failure else None}
        if current is not None:
            out.update(current.describe())
        else:
            out.update({"name": None, "version": None, "sha256": None})
        out["previous"] = previous.identity.brief() if previous is not None else None
        out["failed"] = failure
        recorded = self.recorded_rollback() if self.rolled_back else None
        out["rolledBackFrom"] = recorded["from"] if recorded else None
        return out


def read_public_key(config: InferenceConfig, base: Path, *, env_file: str | None = None) -> bytes | None:
    """The configured public key (PEM), from ``public_key``, ``public_key_file``, or else the file
    named by ``EDGELOOP_MODEL_PUBLIC_KEY_FILE`` (``env_file``), set in the deployment manifest.

    Raises:
        signing.SignatureError: the file cannot be read or holds no Ed25519 public key.
    """
    if config.public_key is not None:
        pem = config.public_key.encode("ascii")
    elif config.public_key_file is not None or env_file:
        path = Path(config.public_key_file or env_file or "")
        pem = signing.read_key_file(path if path.is_absolute() else base / path)
    else:
        return None
    signing.load_public_key(pem)
    return pem
