"""Run records: idempotent run ids, a blob lease per run, and the trigger's memory between runs.

Layout in the runs container::

    <model>/state.json              what the last finished run consumed (ETag-guarded)
    <model>/<run_id>/lock           leased while the run is in progress
    <model>/<run_id>/record.json    the run record (status, inputs, outcome, skipped items)

A run id is a hash of the model name, the labelled samples it will use and the champion it
starts from, so two trigger instances looking at the same state compute the same id; the lease
on ``lock`` lets only one of them run it, and a finished record stops it from running again.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from edgeloop.blobstore import (
    ANY,
    BlobContainer,
    BlobNotFoundError,
    LeaseHeldError,
    PreconditionFailedError,
)
from edgeloop.clock import Clock, SystemClock

log = logging.getLogger(__name__)

#: Final statuses: a run with one of these is never started again. A run that ``waited`` (its
#: gate could not decide) is final too: more labels make a new run with another id.
FINAL = frozenset({"promoted", "rejected", "lost_race", "waiting"})
#: A failed run (an outage, a crash) is tried again, at most this many times in all.
MAX_ATTEMPTS = 3
LEASE_SECONDS = 60


def _done(record: dict[str, Any] | None) -> bool:
    if not record:
        return False
    status = record.get("status")
    return status in FINAL or (status == "failed" and int(record.get("attempt", 1)) >= MAX_ATTEMPTS)


def make_run_id(model: str, labelled: Iterable[tuple[str, str]], champion_version: str | None) -> str:
    """A stable id for training ``model`` on these (sample id, label) pairs from this champion."""
    digest = hashlib.sha256()
    digest.update(f"{model}\n{champion_version or '-'}\n".encode())
    for sample_id, label in sorted(labelled):
        digest.update(f"{sample_id}\t{label}\n".encode())
    return f"run-{digest.hexdigest()[:16]}"


@dataclass
class TriggerState:
    """What the trigger remembers: the last run, the labelled samples it consumed, and how many
    samples were labelled when it waited (None when it did not wait)."""

    last_run_id: str | None = None
    last_run_at: datetime | None = None
    consumed: set[str] = field(default_factory=set)
    waiting_at_labelled: int | None = None
    etag: str | None = None

    def to_json(self) -> bytes:
        doc = {
            "last_run_id": self.last_run_id,
            "last_run_at": self.last_run_at.isoformat() if self.last_run_at else None,
            "consumed": sorted(self.consumed),
            "waiting_at_labelled": self.waiting_at_labelled,
        }
        return json.dumps(doc, indent=1).encode()


class RunLedger:
    """Run records and trigger state for one model in the runs container."""

    def __init__(self, container: BlobContainer, model: str, *, clock: Clock | None = None) -> None:
        self.container = container
        self.model = model
        self._clock = clock or SystemClock()

    def _blob(self, run_id: str, leaf: str) -> str:
        return f"{self.model}/{run_id}/{leaf}"

    def state(self) -> TriggerState:
        try:
            data, info = self.container.read(f"{self.model}/state.json")
        except BlobNotFoundError:
            return TriggerState()
        doc = json.loads(data)
        last = doc.get("last_run_at")
        return TriggerState(
            last_run_id=doc.get("last_run_id"),
            last_run_at=datetime.fromisoformat(last) if last else None,
            consumed=set(doc.get("consumed", [])),
            waiting_at_labelled=doc.get("waiting_at_labelled"),
            etag=info.etag,
        )

    def record(self, run_id: str) -> dict[str, Any] | None:
        try:
            data, _ = self.container.read(self._blob(run_id, "record.json"))
        except BlobNotFoundError:
            return None
        return dict(json.loads(data))

    def claim(self, run_id: str, inputs: dict[str, Any]) -> Run | None:
        """Start ``run_id`` unless it is finished or another instance holds it; None then."""
        existing = self.record(run_id)
        if _done(existing):
            log.info(
                "run %s already finished (%s); not starting it again", run_id, (existing or {})["status"]
            )
            return None
        try:
            lease = self.container.acquire_lease(self._blob(run_id, "lock"), duration_s=LEASE_SECONDS)
        except LeaseHeldError:
            log.info("run %s is in progress elsewhere (lease held)", run_id)
            return None
        existing = self.record(run_id)  # it may have finished between the first look and the lease
        if _done(existing):
            self.container.release_lease(self._blob(run_id, "lock"), lease)
            return None
        run = Run(self, run_id, lease)
        run.update(status="running", started_at=self._clock.now().isoformat(), inputs=inputs,
                   attempt=int((existing or {}).get("attempt", 0)) + 1)  # fmt: skip
        return run


class Run:
    """A claimed run: update its record as it goes, renew its lease, finish it once."""

    def __init__(self, ledger: RunLedger, run_id: str, lease_id: str) -> None:
        self.ledger = ledger
        self.run_id = run_id
        self._lease = lease_id
        self.doc: dict[str, Any] = {"run_id": run_id, "model": ledger.model}

    def update(self, **fields: Any) -> None:
        self.doc.update(fields)
        self.ledger.container.renew_lease(self.ledger._blob(self.run_id, "lock"), self._lease)
        self.ledger.container.write(
            self.ledger._blob(self.run_id, "record.json"),
            json.dumps(self.doc, indent=1, sort_keys=True, default=str).encode(),
            content_type="application/json",
        )

    def finish(
        self, status: str, *, consumed: Iterable[str] = (), waiting_at: int | None = None, **fields: Any
    ) -> None:
        """Write the final record, remember what was consumed, release the lease.

        ``waiting_at``: for a run that waits for more labels, how many samples were labelled.
        """
        now = self.ledger._clock.now()
        self.update(status=status, finished_at=now.isoformat(), **fields)
        self._remember(consumed, waiting_at)
        self.ledger.container.release_lease(self.ledger._blob(self.run_id, "lock"), self._lease)

    def _remember(self, consumed: Iterable[str], waiting_at: int | None) -> None:
        consumed = set(consumed)
        for _ in range(10):
            state = self.ledger.state()
            state.last_run_id = self.run_id
            state.last_run_at = datetime.fromisoformat(self.doc["started_at"])
            state.consumed |= consumed
            state.waiting_at_labelled = waiting_at
            try:
                self.ledger.container.write(
                    f"{self.ledger.model}/state.json",
                    state.to_json(),
                    if_match=state.etag,
                    if_none_match=None if state.etag else ANY,
                    content_type="application/json",
                )
                return
            except PreconditionFailedError:
                continue
        log.warning("could not record the state of run %s after 10 attempts", self.run_id)
