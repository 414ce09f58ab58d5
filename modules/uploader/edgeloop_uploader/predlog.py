"""The prediction log: every (sampled) prediction's metadata, never pixels nor sensor values,
as JSON lines shipped in gzip batches per device and hour, like Azure ML's data collector.

Each input message's predictions (an ``edgeloop.predictions/1`` batch) are logged with one
durable write; lines wait in the outbox database (``predlog_pending``) until a batch is full or
old enough; a batch then becomes an outbox entry like a sample: budgeted, sealed, uploaded.
Lines are made with pydantic-core's JSON encoder (several times faster than ``json.dumps``).
"""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from typing import Any

from pydantic_core import to_json

from edgeloop.blobstore import prediction_log_blob_name
from edgeloop.contracts import Prediction
from edgeloop_uploader.budget import Budget
from edgeloop_uploader.claim import write_durably
from edgeloop_uploader.core import Core
from edgeloop_uploader.outbox import QUEUED
from edgeloop_uploader.sealing import Sealer

LOG_SCHEMA = "edgeloop.prediction-log/1"


def hour_key(when: datetime) -> str:
    """``2026-01-05T07`` (UTC)."""
    return when.strftime("%Y-%m-%dT%H")


def log_record(prediction: Prediction, *, include_scores: bool) -> dict[str, Any]:
    frame = prediction.frame
    record: dict[str, Any] = {
        "schema": LOG_SCHEMA,
        "sample_id": prediction.sample_id,
        "source_id": frame.source_id,
        "captured_at": frame.captured_at.isoformat(),
        "kind": frame.kind,
        "content_type": frame.content_type,
        "bytes": frame.bytes,
        "sha256": frame.sha256,
        "status": prediction.status,
        "error": prediction.error,
        "model_name": prediction.model_name,
        "model_version": prediction.model_version,
        "label": prediction.label,
        "confidence": prediction.confidence,
        "margin": prediction.margin,
        "entropy": prediction.entropy,
        "top_k": [{"label": s.label, "score": s.score} for s in prediction.top_k],
        "latency_ms": prediction.latency_ms,
        "scored_at": prediction.scored_at.isoformat() if prediction.scored_at else None,
        "traceparent": prediction.traceparent,
    }
    if include_scores:
        record["scores"] = list(prediction.scores)
        record["labels"] = prediction.labels
    return {k: v for k, v in record.items() if v is not None}


def batch_bytes(lines: list[str], selections: dict[str, str], sample_ids: list[str]) -> bytes:
    """Gzip JSONL of the lines, each with its selection outcome as known when the batch is cut.

    A stored line is one JSON object as ``to_json`` wrote it (``{...}``, never empty: it has
    ``schema``); ``selected`` and ``strategy`` are spliced in before its closing brace, so the
    line is not parsed and encoded again (about as long as making it was, for every line).
    """
    out: list[str] = []
    for line, sample_id in zip(lines, sample_ids, strict=True):
        if not (line.startswith("{") and line.endswith("}")) or len(line) < 3:
            raise ValueError(f"prediction-log line of {sample_id!r} is not a JSON object")
        strategy = selections.get(sample_id)
        if strategy:
            tail = ',"selected":true,"strategy":' + to_json(strategy).decode("utf-8") + "}\n"
        else:
            tail = ',"selected":' + ("false" if strategy is None else "true") + "}\n"
        out.append(line[:-1] + tail)
    return gzip.compress("".join(out).encode("utf-8"), compresslevel=6, mtime=0)


class PredictionLog:
    """Logs predictions as they arrive and cuts them into batches (runtime thread)."""

    def __init__(self, core: Core, budget: Budget, sealer: Sealer) -> None:
        self.core = core
        self.budget = budget
        self.sealer = sealer

    def accept(self, items: list[Prediction]) -> int:
        """Log the sampled share of ``items`` (one message's) durably, in one write; returns how
        many lines were logged."""
        core = self.core
        settings = core.config.prediction_log
        if not settings.enabled or not items:
            return 0
        now = core.now()
        rows = []
        for prediction in items:
            if core.random() >= settings.sample_rate:
                core.count("predictions_not_sampled")
                continue
            when = prediction.scored_at or prediction.frame.captured_at
            record = log_record(prediction, include_scores=settings.include_scores)
            line = to_json(record).decode("utf-8")
            rows.append((hour_key(when.astimezone(UTC)), prediction.sample_id, now, line))
        if rows:
            core.db.add_predictions(rows)
            core.count("predictions_logged", len(rows))
        return len(rows)

    def flush(self, *, force: bool = False) -> int:
        """Cut batches that are full or old enough (all of them with ``force``); returns how many."""
        settings = self.core.config.prediction_log
        now, cut = self.core.now(), 0
        for hour, count, oldest in self.core.db.pending_hours():
            while count > 0 and (force or count >= settings.max_batch or now - oldest >= settings.max_age_s):
                taken = self._cut_batch(hour, settings.max_batch, settings.priority)
                if taken == 0:
                    break
                count -= taken
                cut += 1
        return cut

    def _cut_batch(self, hour: str, limit: int, priority: int) -> int:
        core = self.core
        rows = core.db.pending_lines(hour, limit)
        if not rows:
            return 0
        seqs = [r[0] for r in rows]
        sample_ids = [r[1] for r in rows]
        data = batch_bytes([r[2] for r in rows], core.db.selection_of(sample_ids), sample_ids)
        batch_id = f"{hour.replace('-', '').replace('T', '')}-{seqs[0]:012d}"
        hour_start = datetime.strptime(hour, "%Y-%m-%dT%H").replace(tzinfo=UTC)
        target = core.paths.claims / f"{batch_id}.jsonl.gz"
        now = core.now()
        write_durably(target, data, durable=core.durable)
        if not self.budget.make_room(len(data), priority, now, batch_id):
            target.unlink(missing_ok=True)
            core.db.delete_pending(seqs)
            return len(rows)
        with core.db.transaction() as conn:
            core.db.insert(
                conn,
                id=batch_id,
                kind="predlog",
                state=QUEUED,
                priority=priority,
                created_at=now,
                updated_at=now,
                blob_name=prediction_log_blob_name(
                    device_id=core.device_id, hour=hour_start, batch_id=batch_id
                ),
                sidecar_name=None,
                content_type="application/x-ndjson+gzip",
                plain_path=str(target),
                size=len(data),
                info={"strategy": "prediction-log", "lines": len(rows), "hour": hour},
            )
            core.db.delete_pending(seqs, conn=conn)
        self.budget.forget_held()
        core.count("prediction_batches")
        self.sealer.seal_if_possible(batch_id)
        core.wake.set()
        return len(rows)
