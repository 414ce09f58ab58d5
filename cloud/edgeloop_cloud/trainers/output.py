"""Check what a trainer wrote before anything reaches the registry.

A usable output is ``model.onnx`` that ONNX Runtime loads, that carries ``edgeloop.preprocess``
and ``edgeloop.labels``, whose probabilities output has one column per label (the gate's
``load_check``), whose labels keep every label of the champion (labels that only new samples
carry may be added), plus ``metrics.json`` holding a JSON object. Anything else is a
``TrainerFailed`` with the reason and the trainer's log tail.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

from edgeloop.model_metadata import EMBEDDING_KEY
from edgeloop_cloud.gate import load_check
from edgeloop_cloud.trainers.candidate import Candidate
from edgeloop_cloud.trainers.errors import TrainerFailed
from edgeloop_cloud.trainers.manifest import METRICS_FILE, MODEL_FILE


def read_output(
    outputs: Path,
    *,
    champion_labels: Sequence[str] | None,
    sample_labels: Collection[str],
    log_tail: list[str],
) -> Candidate:
    """The candidate in ``outputs``, checked.

    Raises:
        TrainerFailed: no model, a model the device or the gate cannot use, labels that differ from
            the champion's, or metrics that are missing or not a JSON object.
    """
    model_path, metrics_path = outputs / MODEL_FILE, outputs / METRICS_FILE
    if not model_path.is_file():
        raise TrainerFailed(f"the trainer wrote no model: {MODEL_FILE} is missing", log_tail=log_tail)
    data = model_path.read_bytes()
    try:
        _session, preprocess, labels = load_check(data)
    except ValueError as exc:
        raise TrainerFailed(f"the trainer's {MODEL_FILE} is unusable: {exc}", log_tail=log_tail) from exc
    problem = label_problem(labels, champion_labels, sample_labels)
    if problem:
        raise TrainerFailed(problem, log_tail=log_tail)
    metrics = _metrics(metrics_path, log_tail)
    import onnx

    model = onnx.load_from_string(data)
    embedding = {p.key: p.value for p in model.metadata_props}.get(EMBEDDING_KEY)
    outputs_named = {o.name for o in model.graph.output}
    if embedding is not None and embedding not in outputs_named:
        raise TrainerFailed(
            f"{EMBEDDING_KEY} names output {embedding!r}, which the model does not have "
            f"(outputs: {sorted(outputs_named)})",
            log_tail=log_tail,
        )
    return Candidate(model=model, labels=labels, preprocess=preprocess, metrics=metrics, log_tail=log_tail)


def label_problem(
    labels: Sequence[str], champion_labels: Sequence[str] | None, sample_labels: Collection[str]
) -> str | None:
    """Why these labels cannot replace the champion's, or None when they can."""
    mine = set(labels)
    if len(mine) != len(labels):
        return f"the model's edgeloop.labels repeat a name: {list(labels)}"
    if champion_labels is not None:
        dropped = [n for n in champion_labels if n not in mine]
        added = sorted(mine - set(champion_labels) - set(sample_labels))
        if dropped or added:
            return (
                f"the model's labels {list(labels)} differ from the champion's {list(champion_labels)}: "
                f"missing {dropped}, unknown {added} (only labels that new samples carry may be added)"
            )
    unseen = sorted(set(sample_labels) - mine)
    if unseen:
        return f"samples are labelled {unseen} but the model's labels {list(labels)} do not include them"
    return None


def _metrics(path: Path, log_tail: list[str]) -> dict[str, Any]:
    if not path.is_file():
        raise TrainerFailed(f"the trainer wrote no metrics: {METRICS_FILE} is missing", log_tail=log_tail)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TrainerFailed(f"{METRICS_FILE} is not JSON: {exc}", log_tail=log_tail) from exc
    if not isinstance(doc, dict):
        raise TrainerFailed(
            f"{METRICS_FILE} must hold a JSON object, got {type(doc).__name__}", log_tail=log_tail
        )
    return doc
