"""The prediction log: every (sampled) prediction's metadata, never pixels nor sensor values,
as JSON lines shipped in gzip batches per device and hour, like Azure ML's data collector."""

from __future__ import annotations

import gzip
import json
from datetime import datetime
from typing import Any

from edgeloop.contracts import Prediction

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
    """Gzip JSONL of the lines, each with its selection outcome as known when the batch is cut."""
    out: list[bytes] = []
    for line, sample_id in zip(lines, sample_ids, strict=True):
        record = json.loads(line)
        strategy = selections.get(sample_id)
        record["selected"] = strategy is not None
        if strategy:
            record["strategy"] = strategy
        out.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n")
    return gzip.compress(b"".join(out), compresslevel=6, mtime=0)
