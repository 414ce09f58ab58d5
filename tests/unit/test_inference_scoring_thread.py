"""The scoring thread's side of the output: a failed model run still accounts for every sample
of its batch, runs reach the output thread once a message, and sample files are read whole
whatever size their frame claims."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from edgeloop_inference import scoring
from edgeloop_inference.module import PREDICTIONS_PER_MESSAGE, InferenceModule, Job, Scored
from edgeloop_inference.preprocess import Preprocessor, SampleError
from edgeloop_inference.providers import ProviderChoice
from edgeloop_inference.session import LoadedModel, ModelIdentity, load_model

from edgeloop.clock import FakeClock
from edgeloop.model_metadata import Preprocess
from tests import model_factory as mf

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _model(version: str) -> LoadedModel:
    identity = ModelIdentity("digits", version, "0" * 64, "test")
    choice = ProviderChoice(providers=["CPUExecutionProvider"], warnings=[])
    return load_model(mf.digits_model(), identity=identity, choice=choice, loaded_at=T0)


class _Context:
    """Keeps the predictions the module sends."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []
        self.messages = 0

    def send(self, output: str, items: list[Any], *, max_batch: int = 64) -> int:
        import json

        for batch in items:
            self.messages += 1
            body = json.loads(batch.body if hasattr(batch, "body") else batch.model_dump_json())
            header = {k: v for k, v in body.items() if k not in ("items", "schema")}
            self.items.extend({**header, **item} for item in body["items"])
        return 1

    def acknowledge(self, message: Any) -> None:
        pass


@pytest.fixture
def module(tmp_path: Path) -> InferenceModule:
    module = InferenceModule(samples_dir=tmp_path, models_dir=tmp_path, clock=FakeClock())
    module._ctx = _Context()  # type: ignore[assignment]
    return module


def _jobs(root: Path, first: int, count: int) -> list[Job]:
    jobs = []
    for n in range(first, first + count):
        ref = f"frames/d{n:04d}.png"
        mf.write_digit_image(root / ref, n % 10, size=16)
        jobs.append(Job(mf.frame_ref(n, file_ref=ref), time.perf_counter()))
    return jobs


def _queued(module: InferenceModule) -> list[Scored]:
    """What the batcher handed the output thread (not started in these tests)."""
    with module._output._lock:
        return module._output._take(module._output.pending)


def test_a_failed_run_gives_every_sample_of_its_batch_the_reason(
    module: InferenceModule, tmp_path: Path
) -> None:
    # given: a model whose run fails
    model = _model("1")

    def broken(tensor: Any) -> Any:
        raise RuntimeError("device lost")

    model.infer = broken  # type: ignore[method-assign]
    module.models.current = model
    jobs = _jobs(tmp_path, 0, 3)
    (tmp_path / "frames/d0001.png").unlink()
    # when
    module._process(jobs)
    module._stopping.set()
    module._emit(_queued(module))
    # then: the two decoded samples carry the run's failure, the missing file its own reason
    sent = {p["sample_id"]: p for p in module._ctx.items}  # type: ignore[union-attr]
    assert sent["s000000"]["error"] == "model run failed: RuntimeError: device lost"
    assert sent["s000002"]["error"] == "model run failed: RuntimeError: device lost"
    assert sent["s000001"]["error"] == "sample file 'frames/d0001.png' not found"
    stats = module.stats()
    assert (stats["run_errors"], stats["sample_errors"]) == (2, 1)
    assert "scored" not in stats


def test_a_file_grown_since_capture_is_refused_by_its_sha256(tmp_path: Path) -> None:
    # given: a frame's file, its size and hash as capture recorded them, then more bytes after
    pre = Preprocessor.build(Preprocess(width=16, height=16, color="gray", layout="NCHW"), [None, 1, 16, 16])
    path = tmp_path / "f.png"
    mf.write_digit_image(path, 3, size=16)
    size, sha = path.stat().st_size, _sha256(path.read_bytes())
    assert pre.decode_file(str(path), display="f.png", sha256=sha, size=size).shape == (16, 16, 1)
    path.write_bytes(path.read_bytes() + b"tail")
    # when / then: the whole file is read, so the hash catches it
    with pytest.raises(SampleError, match=r"'f.png' \(\d+ bytes\) does not match the sha256"):
        pre.decode_file(str(path), display="f.png", sha256=sha, size=size)


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


class _Queued:
    """Stands in for the batcher: how many frames wait in its queue."""

    def __init__(self, pending: int) -> None:
        self.pending = pending


def test_runs_are_handed_to_the_output_thread_once_a_message(module: InferenceModule) -> None:
    # given: a batcher with frames waiting behind each run
    module._batcher = _Queued(8)  # type: ignore[assignment]
    now = FakeClock().now()

    def run(first: int, count: int) -> Scored:
        jobs = [Job(mf.frame_ref(i, file_ref=f"f/{i}.png"), 0.0) for i in range(first, first + count)]
        return Scored(model=None, now=now, failed=[(job, "no model") for job in jobs])

    # when: runs are done while frames wait: kept back, the output thread not woken
    module._hand_over(run(0, 8))
    module._hand_over(run(8, 8))
    assert module._output.pending == 0
    # when: the queue is empty after a run: all of them are handed over together
    module._batcher = _Queued(0)  # type: ignore[assignment]
    module._hand_over(run(16, 4))
    assert module._output.pending == 3
    # when: frames keep waiting but the runs kept fill a message: handed over at once
    module._batcher = _Queued(8)  # type: ignore[assignment]
    first = 20
    for _ in range(PREDICTIONS_PER_MESSAGE // 8):
        module._hand_over(run(first, 8))
        first += 8
    assert module._output.pending == 3 + PREDICTIONS_PER_MESSAGE // 8
    # when: a run is done while stopping: handed over at once
    module._stopping.set()
    module._hand_over(run(first, 1))
    queued = _queued(module)
    assert [len(r.failed) for r in queued[-2:]] == [8, 1]
    filled = [20 + 8 * i for i in range(PREDICTIONS_PER_MESSAGE // 8)]
    assert [r.failed[0][0].frame.seq for r in queued] == [0, 8, 16, *filled, first]


def test_the_records_of_several_runs_keep_each_runs_model_time_and_latency(module: InferenceModule) -> None:
    # given: two runs of model 1 (one with a failed sample) and one of model 2, ready together
    one, two = _model("1"), _model("2")
    t1, t2 = T0, T0.replace(second=5)

    def run(model: LoadedModel, first: int, at: datetime, run_ms: float, failed: int = 0) -> Scored:
        jobs = [Job(mf.frame_ref(i, file_ref=f"f/{i}.png"), 0.0) for i in range(first, first + 3)]
        probs = np.full((3, 10), 0.02)
        probs[np.arange(3), [first % 10, (first + 1) % 10, (first + 2) % 10]] = 0.82
        missing = [(Job(mf.frame_ref(100 + first), 0.0), "gone") for _ in range(failed)]
        return Scored(model=model, now=at, jobs=jobs, probs=probs, run_ms=run_ms, failed=missing)

    module._stopping.set()
    # when
    module._emit([run(one, 0, t1, 1.25, failed=1), run(one, 3, t2, 2.5), run(two, 6, t2, 4.0)])
    # then: in order, each with its own run's figures
    sent = module._ctx.items  # type: ignore[union-attr]
    assert [p["sample_id"] for p in sent] == [f"s{n:06d}" for n in (0, 1, 2, 100, 3, 4, 5, 6, 7, 8)]
    assert [p.get("latency_ms") for p in sent] == [1.25] * 3 + [None] + [2.5] * 3 + [4.0] * 3
    assert [p["scored_at"][17:19] for p in sent] == ["00"] * 4 + ["05"] * 6
    assert [p["model_version"] for p in sent] == ["1"] * 7 + ["2"] * 3
    assert [p.get("label") for p in sent] == ["0", "1", "2", None, "3", "4", "5", "6", "7", "8"]
    assert sent[3]["error"] == "gone"


def test_prediction_fields_take_one_latency_and_time_per_frame_or_one_for_all() -> None:
    frames = [mf.frame_ref(i) for i in range(2)]
    probs = np.array([[0.9, 0.1], [0.3, 0.7]])

    def fields(latency_ms: Any, scored_at: Any) -> list[dict[str, Any]]:
        return scoring.prediction_fields(
            frames,
            probs,
            labels=["a", "b"],
            top_k=1,
            include_scores=False,
            model_name="m",
            model_version="1",
            latency_ms=latency_ms,
            scored_at=scored_at,
        )

    assert [r["latency_ms"] for r in fields([1.0, 2.0], [T0, T0])] == [1.0, 2.0]
    assert [r["latency_ms"] for r in fields(3.0, T0)] == [3.0, 3.0]
    with pytest.raises(ValueError, match="1 latencies and 2 scoring times for 2 frames"):
        fields([1.0], T0)


def test_runs_handed_over_in_more_than_one_take_go_out_in_one_message(module: InferenceModule) -> None:
    # given: 60 runs of one frame handed over at once (the batcher's queue empty after them)
    module._batcher = _Queued(0)  # type: ignore[assignment]
    now = FakeClock().now()
    runs = [
        Scored(model=None, now=now, failed=[(Job(mf.frame_ref(i, file_ref=f"f/{i}.png"), 0.0), "x")])
        for i in range(60)
    ]
    module._output.submit_many(runs)
    # when: the output thread takes them 25 at a time
    while module._output.pending:
        module._emit(_queued_some(module, 25))
    # then: one message
    sent = module._ctx.items  # type: ignore[union-attr]
    assert [p["sample_id"] for p in sent] == [f"s{i:06d}" for i in range(60)]
    assert module._ctx.messages == 1  # type: ignore[union-attr]


def _queued_some(module: InferenceModule, most: int) -> list[Scored]:
    with module._output._lock:
        return module._output._take(most)
