"""The uploader's work, apart from the hub: accept, claim, seal, budget, upload, report.

``Uploader`` is a thin facade over its parts, which share one ``Core`` (folders, the outbox
database, the config and key in force, counters):

- ``intake``: selected samples into the outbox (one durable commit per input message);
- ``budget``: the disk budget and evictions;
- ``sealing``: envelopes, at once or when a key arrives;
- ``shipping``: upload workers, retries, quarantine; ``notices``: ``uploaded`` messages;
- ``predlog``: the batched prediction log.

It is driven by the module (inputs, ticks, methods on the runtime thread; uploads on worker
threads) and by tests directly with a ``FakeClock`` and a ``MemoryContainer``.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any

from edgeloop.clock import Clock
from edgeloop.contracts import Prediction, SelectedSample
from edgeloop.envelope import PublicKey
from edgeloop_uploader.budget import Budget
from edgeloop_uploader.config import UploaderConfig
from edgeloop_uploader.core import Core, Paths
from edgeloop_uploader.intake import Intake
from edgeloop_uploader.notices import Notices, Notify
from edgeloop_uploader.outbox import QUARANTINED, QUEUED, UPLOADING, OutboxDB
from edgeloop_uploader.predlog import PredictionLog
from edgeloop_uploader.sealing import Sealer
from edgeloop_uploader.shipping import Shipper
from edgeloop_uploader.sources import load_public_key
from edgeloop_uploader.storage import StorageLink, StoreFactory, azure_store_factory

__all__ = ["Notify", "Paths", "Uploader", "azure_store_factory"]

log = logging.getLogger(__name__)


class Uploader:
    """Everything between an accepted ``SelectedSample`` and its ``UploadedNotice``."""

    def __init__(
        self,
        *,
        samples_dir: Path,
        outbox_dir: Path,
        device_id: str,
        clock: Clock,
        rng: random.Random | None = None,
        store_factory: StoreFactory = azure_store_factory,
        notify: Notify | None = None,
        env_credential: str | None = None,
        env_public_key_file: str | None = None,
    ) -> None:
        rng = rng or random.Random()
        self.core = Core(
            paths=Paths(Path(samples_dir), Path(outbox_dir)), device_id=device_id, clock=clock, rng=rng
        )
        self.env_credential = env_credential
        self.env_public_key_file = env_public_key_file
        self.storage = StorageLink(factory=store_factory, clock=clock, rng=rng, env_credential=env_credential)
        self.budget = Budget(self.core)
        self.sealer = Sealer(self.core)
        self.intake = Intake(self.core, self.budget, self.sealer)
        self.notices = Notices(self.core, notify)
        self.shipper = Shipper(self.core, self.storage, self.notices)
        self.prediction_log = PredictionLog(self.core, self.budget, self.sealer)

    # -- what the module, the methods and tests read ---------------------------------------
    @property
    def db(self) -> OutboxDB:
        return self.core.db

    @property
    def clock(self) -> Clock:
        return self.core.clock

    @property
    def config(self) -> UploaderConfig:
        return self.core.config

    @property
    def public_key(self) -> PublicKey | None:
        return self.core.public_key

    @property
    def counters(self) -> Counter[str]:
        return self.core.counters

    @property
    def paths(self) -> Paths:
        return self.core.paths

    @property
    def device_id(self) -> str:
        return self.core.device_id

    @property
    def wake(self) -> Any:
        """Set when there may be work for the upload workers."""
        return self.core.wake

    @property
    def notify(self) -> Notify | None:
        """Where ``uploaded`` notices go (the module sends them to the hub)."""
        return self.notices.notify

    @notify.setter
    def notify(self, notify: Notify | None) -> None:
        self.notices.notify = notify

    def now(self) -> float:
        """Outbox time (never runs backwards while the process lives)."""
        return self.core.now()

    # -- configuration and credentials -----------------------------------------------------
    def configure(self, config: UploaderConfig, previous: UploaderConfig | None) -> None:
        """Apply a new config. Raises ``ConfigError`` (the old config stays) for a bad public key."""
        core = self.core
        key = load_public_key(config, env_file=self.env_public_key_file)
        core.config = config
        core.db.set_durability(config.outbox.durability)
        if key is not None and (core.public_key is None or key.key_id != core.public_key.key_id):
            log.info("envelope public key %s in force", key.key_id)
        core.public_key = key
        self.storage.configure(config, changed=previous is None or previous.storage != config.storage)
        core.wake.set()

    def set_credentials(self, secret: str) -> dict[str, str]:
        """Replace the storage credential now (a new SAS after the old one expired).

        Raises:
            BlobAuthError: neither a SAS URL nor a connection string (the secret is not quoted).
        """
        described = self.storage.replace(secret)
        self.core.db.reset_backoff(self.core.now())
        self.core.wake.set()
        return described

    # -- inputs ----------------------------------------------------------------------------
    def accept_selected(self, item: SelectedSample) -> bool:
        """Claim, budget, seal (if a key is known) and record one selected sample.

        Returns False when it is not taken (a duplicate, a missing or truncated file, no room).
        """
        return self.intake.accept(item)

    def accept_selected_batch(self, items: list[SelectedSample]) -> int:
        """Accept several samples with one durable commit (a message from the filter holds a batch).
        When this returns, every sample it counts is on disk, sealed and recorded."""
        return self.intake.accept_batch(items)

    def accept_predictions(self, items: list[Prediction]) -> int:
        return self.prediction_log.accept(items)

    def flush_prediction_log(self, *, force: bool = False) -> int:
        """Cut batches that are full or old enough (all of them with ``force``); returns how many."""
        return self.prediction_log.flush(force=force)

    def seal_pending(self) -> int:
        """Seal entries that waited for a public key (or were cut off by a crash)."""
        return self.sealer.seal_pending()

    # -- uploading -------------------------------------------------------------------------
    def upload_ready(self) -> int:
        """Upload a batch of the most urgent ready entries; returns how many were taken."""
        return self.shipper.upload_ready()

    def stop_uploads(self) -> None:
        """Start no more uploads (a stop is under way): batches end after what is in flight."""
        self.core.stopping.set()
        self.core.wake.set()

    def send_notices(self) -> int:
        """Send the ``uploaded`` notices not sent yet; returns how many this call sent."""
        return self.notices.send()

    # -- start-up, upkeep, methods ---------------------------------------------------------
    def recover(self) -> dict[str, int]:
        """After a restart: entries cut off mid-upload go back to the queue, unsealed ones are
        sealed, files no entry refers to (a crash between write and record) are removed."""
        core = self.core
        now = core.now()
        requeued = core.db.requeue_interrupted(now)
        clamped = core.db.clamp_backoff(now, now + core.config.retry.max_backoff_s)
        if clamped:
            log.warning("%s retries were scheduled beyond the longest backoff (the clock went back)", clamped)
        for entry in core.db.unsealed():
            if entry.plain_path and not Path(entry.plain_path).exists():
                core.quarantine(entry, "claimed file lost before sealing")
        removed = core.db.drop_orphan_data()
        referenced = core.db.referenced_paths()
        for folder in (core.paths.claims, core.paths.sealed):
            for path in folder.iterdir():
                if str(path) not in referenced:
                    path.unlink(missing_ok=True)
                    removed += 1
        sealed = self.sealer.seal_pending()
        if requeued or removed:
            log.info("outbox recovered: %s uploads resumed, %s stray files removed", requeued, removed)
        return {"requeued": requeued, "stray_files": removed, "sealed": sealed}

    def upkeep(self) -> None:
        """Periodic work: load a key that appeared, seal, cut prediction-log batches, notices, pruning."""
        core = self.core
        if core.public_key is None:
            try:
                core.public_key = load_public_key(core.config, env_file=self.env_public_key_file)
            except Exception as exc:
                log.error("envelope public key unusable: %s", exc)
        storage = core.config.storage
        if self.storage.missing and (
            storage.credentials_file or storage.credential_env or self.env_credential
        ):
            self.storage.refresh()
        self.sealer.seal_pending()
        self.prediction_log.flush()
        self.notices.send()
        pruned = core.db.prune_done(core.now() - core.config.outbox.keep_done_s)
        if pruned:
            core.count("pruned", pruned)

    def retry_quarantined(self, ids: list[str] | None) -> int:
        count = self.core.db.retry_quarantined(ids, self.core.now())
        self.sealer.seal_pending()
        self.core.wake.set()
        return count

    def flush(self) -> None:
        """Cut every pending prediction-log batch and retry every queued entry now."""
        self.prediction_log.flush(force=True)
        self.core.db.reset_backoff(self.core.now())
        self.storage.retry_now()
        self.core.wake.set()

    def queue_info(self) -> dict[str, Any]:
        core = self.core
        counts = core.db.counts()
        oldest = core.db.oldest_waiting()
        return {
            "depth": counts[QUEUED] + counts[UPLOADING],
            "states": counts,
            "oldest_age_s": round(core.now() - oldest.created_at, 3) if oldest else None,
            "oldest_id": oldest.id if oldest else None,
            "bytes": core.db.held_bytes(),
            "budget_bytes": core.config.outbox.max_bytes,
            "unsealed": len(core.db.unsealed()),
            "predictions_pending": core.db.pending_count(),
            "quarantined": [
                {"id": e.id, "reason": e.last_error, "attempts": e.attempts}
                for e in core.db.by_state(QUARANTINED)[:20]
            ],
            "storage": self.storage_status(),
        }

    def storage_status(self) -> dict[str, Any]:
        return self.storage.status()

    def warnings(self) -> list[str]:
        """Storage problems, and samples waiting unsealed for want of a public key."""
        found = self.storage.problems()
        if self.core.public_key is None:
            found.append(
                "no envelope public key (encryption.public_key_pem, encryption.public_key_file or "
                "EDGELOOP_ENVELOPE_PUBLIC_KEY_FILE): samples wait unsealed"
            )
        return found

    def stats(self) -> dict[str, Any]:
        core = self.core
        return {
            "counters": core.counted(),
            "queue": {k: v for k, v in self.queue_info().items() if k != "quarantined"},
            "key_id": core.public_key.key_id if core.public_key else None,
            "recent_evictions": list(core.recent_evictions),
            "recent_rejections": list(core.recent_rejections),
        }

    def close(self) -> None:
        self.core.stopping.set()
        self.shipper.close()
        self.core.db.close()
