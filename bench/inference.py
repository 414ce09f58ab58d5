"""Inference module throughput next to a bare ONNX Runtime loop over the same frames.

    python -m bench.inference [--frames 2000] [--rounds 3] [--batch 8] [--model cnn|digits]

Both sides read the same image files from disk, decode them with OpenCV, normalise them and run
the same model with the same session settings (the module's: intra-op spinning off) at the same
batch size; the bare loop stops at the probabilities, the module also decodes the input
messages, builds a prediction per frame (top-k, margin, entropy) and encodes them for the hub (an
in-memory ``FakeHubClient``, which tells the bench when the last prediction arrived, so nothing
polls the module meanwhile). The frame references carry the fields capture sends (size, sha256,
dhash, attributes), so the module's decoding of them and its check of each file against its
sha256 (``verify_sample_hash``, on by default) are priced too. Rounds alternate between the
two; the median of each is printed with their ratio (target: module >= 0.9 of bare) and the CPU
time each spends a sample (all threads), and written to ``bench/results/inference.json``, with
the module's CPU a sample by thread (scoring, output, runtime; Linux ``/proc``), which a busy
machine disturbs less than the rates. Another line shows the model alone on pre-decoded tensors.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnxruntime as ort

from edgeloop.contracts import FrameRef
from edgeloop.model_metadata import read_session_metadata
from edgeloop.runtime import ModuleRuntime
from edgeloop.runtime.codec import OutboundMessage, encode
from edgeloop.runtime.fake import FakeHubClient

RESULTS = Path(__file__).resolve().parent / "results" / "inference.json"


def _models() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from tests import model_factory

    return model_factory


def make_model(kind: str) -> tuple[bytes, int]:
    mf = _models()
    if kind == "cnn":
        return mf.tiny_cnn(height=64, width=64, classes=10), 64
    return mf.digits_model(), 8


def write_frames(root: Path, count: int, size: int) -> list[FrameRef]:
    """PNG frames on disk and their references with the fields capture sends (size, hashes,
    attributes, trace context), which the module's input decoding validates."""
    rng = np.random.default_rng(0)
    frames = []
    (root / "frames").mkdir(parents=True, exist_ok=True)
    for i in range(count):
        ref = f"frames/f{i:06d}.png"
        pixels = cv2.GaussianBlur(rng.integers(0, 255, (size, size), dtype=np.uint8), (3, 3), 0)
        cv2.imwrite(str(root / ref), pixels)
        data = (root / ref).read_bytes()
        frames.append(
            FrameRef(
                sample_id=f"f{i:06d}",
                source_id="bench",
                seq=i,
                captured_at=datetime(2026, 1, 1, tzinfo=UTC),
                kind="image",
                file_ref=ref,
                content_type="image/png",
                width=size,
                height=size,
                bytes=len(data),
                sha256=hashlib.sha256(data).hexdigest(),
                dhash=f"{i * 2654435761 % 2**64:016x}",
                attributes={"file": f"f{i:06d}.png", "frame_index": str(i)},
                traceparent=f"00-{i:032x}-{i + 1:016x}-01",
            )
        )
    return frames


def _session(model: bytes, threads: int) -> ort.InferenceSession:
    """The session options the module uses by default (``intra_op_spinning`` off), so that both
    sides run the model the same way."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model, sess_options=options, providers=["CPUExecutionProvider"])


@dataclass
class Rate:
    """One side's round: samples per second, and the process's CPU time per sample (all its
    threads, ONNX Runtime's included), which a machine shared with other work disturbs less."""

    per_s: float
    cpu_us: float


def _rate(count: int, wall_started: float, cpu_started: float) -> Rate:
    wall, cpu = time.perf_counter() - wall_started, time.process_time() - cpu_started
    return Rate(per_s=count / wall, cpu_us=cpu / count * 1e6)


def bare_loop(model: bytes, root: Path, frames: list[FrameRef], batch: int, threads: int) -> Rate:
    """Read, decode, normalise, run, softmax."""
    session = _session(model, threads)
    spec = read_session_metadata(session).preprocess
    assert spec is not None
    name = session.get_inputs()[0].name
    output = next(o.name for o in session.get_outputs() if len(o.shape) == 2)
    factor, offset = np.float32(spec.scale / spec.std[0]), np.float32(spec.mean[0] / spec.std[0])
    started, cpu = time.perf_counter(), time.process_time()
    for start in range(0, len(frames), batch):
        images = []
        for frame in frames[start : start + batch]:
            assert frame.file_ref is not None
            data = np.frombuffer((root / frame.file_ref).read_bytes(), dtype=np.uint8)
            image = cv2.imdecode(data, cv2.IMREAD_GRAYSCALE)
            assert image is not None
            if image.shape != (spec.height, spec.width):
                image = cv2.resize(image, (spec.width or 0, spec.height or 0), interpolation=cv2.INTER_AREA)
            images.append(image)
        x = np.stack(images).astype(np.float32) * factor - offset
        x = x.reshape(len(images), -1) if spec.layout == "flat" else x[:, None, :, :]
        scores = session.run([output], {name: x})[0]
        if spec.output_kind == "logits":
            e = np.exp(scores - scores.max(axis=1, keepdims=True))
            scores = e / e.sum(axis=1, keepdims=True)
        np.argmax(scores, axis=1)
    return _rate(len(frames), started, cpu)


def model_only(model: bytes, root: Path, frames: list[FrameRef], batch: int, threads: int) -> float:
    """The model alone on tensors decoded beforehand: samples per second."""
    session = _session(model, threads)
    spec = read_session_metadata(session).preprocess
    assert spec is not None
    name = session.get_inputs()[0].name
    shape = session.get_inputs()[0].shape
    x = np.random.default_rng(0).random((batch, *[d for d in shape[1:]]), dtype=np.float32)
    runs = len(frames) // batch
    started = time.perf_counter()
    for _ in range(runs):
        session.run(None, {name: x})
    return runs * batch / (time.perf_counter() - started)


class CountingHub(FakeHubClient):
    """The in-memory hub, which also says when ``expected`` predictions have reached it (read
    from the ``batch_size`` message property): the bench waits on that instead of polling the
    module's stats, which would cost the module time the bare loop does not pay."""

    def __init__(self, desired: dict[str, Any], *, expected: int) -> None:
        super().__init__(desired)
        self.expected = expected
        self.received = 0
        self.all_received = threading.Event()

    def send(self, message: OutboundMessage) -> None:
        super().send(message)
        if message.output == "predictions":
            self.received += int(message.properties.get("batch_size", "1"))
            if self.received >= self.expected:
                self.all_received.set()


#: The module's threads whose CPU a round is reported one by one (the rest: ONNX Runtime's pool).
_THREADS = {"inference-batcher": "scoring", "inference-output": "output", "runtime": "runtime"}


def _thread_cpu(threads: dict[str, threading.Thread]) -> dict[str, float]:
    """CPU seconds each thread has used, from ``/proc`` (Linux; empty elsewhere). The clock
    ticks there are 10 ms: over 2,000 frames, 5 us a sample."""
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    used: dict[str, float] = {}
    for label, thread in threads.items():
        try:
            with open(f"/proc/self/task/{thread.native_id}/stat") as file:
                fields = file.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        used[label] = (int(fields[11]) + int(fields[12])) / tick
    return used


def _module_threads(runtime_thread: threading.Thread) -> dict[str, threading.Thread]:
    found = {"runtime": runtime_thread}
    for thread in threading.enumerate():
        if thread.name in _THREADS:
            found[thread.name] = thread
    return {_THREADS[name]: thread for name, thread in found.items()}


def module_path(
    model: bytes, root: Path, frames: list[FrameRef], batch: int, threads: int, *, work: Path
) -> tuple[Rate, dict[str, Any]]:
    """Frames through the module (runtime, batcher, scoring, hub encoding)."""
    from edgeloop_inference.module import InferenceModule

    models = work / "models"
    (models / "initial").mkdir(parents=True, exist_ok=True)
    (models / "initial" / "model.onnx").write_bytes(model)
    # Signatures are checked once at load, never per frame: the bench serves its model unsigned.
    desired = {
        "batching": {"max_batch": batch, "max_wait_ms": 5},
        "intra_op_threads": threads,
        "allow_unsigned": True,
    }
    hub = CountingHub(desired, expected=len(frames))
    module = InferenceModule(samples_dir=root, models_dir=models)
    runtime = ModuleRuntime(module, client=hub, tick_interval=0.5, report_interval=3600)
    thread = threading.Thread(target=runtime.run, daemon=True)
    thread.start()
    _wait(lambda: module.models.current is not None, 60)
    bodies = [m.body for m in encode("frames", frames, max_batch=batch)]

    watched = _module_threads(thread)
    before = _thread_cpu(watched)
    started, cpu = time.perf_counter(), time.process_time()
    for body in bodies:
        hub.push_raw_input("frames", body)
    if not hub.all_received.wait(300):
        raise TimeoutError(f"the module sent {hub.received} of {len(frames)} predictions")
    rate = _rate(len(frames), started, cpu)
    after = _thread_cpu(watched)
    stats = module.stats()
    stats["threadCpuUs"] = {
        label: round((after[label] - before[label]) / len(frames) * 1e6, 1)
        for label in after
        if label in before
    }
    runtime.request_stop("bench over")
    thread.join(30)
    errors = [p for p in hub.sent_items("predictions") if getattr(p, "status", "ok") != "ok"]
    assert not errors, f"{len(errors)} frames failed"
    return rate, stats


def _medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each thread's median over the rounds that measured it."""
    labels = {label for measured in rounds for label in measured}
    return {
        label: round(statistics.median(m[label] for m in rounds if label in m), 1) for label in sorted(labels)
    }


def _wait(predicate: Any, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("benchmark step did not finish")
        time.sleep(0.001)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--threads", type=int, default=0, help="ONNX Runtime intra-op threads (0: default)")
    parser.add_argument("--model", choices=["cnn", "digits"], default="cnn")
    args = parser.parse_args(argv)

    model, size = make_model(args.model)
    bare: list[Rate] = []
    mod: list[Rate] = []
    alone: list[float] = []
    stats: dict[str, Any] = {}
    by_thread: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        frames = write_frames(root, args.frames, size)
        bare_loop(model, root, frames[:200], args.batch, args.threads)  # warm the page cache
        for r in range(args.rounds):
            bare.append(bare_loop(model, root, frames, args.batch, args.threads))
            rate, stats = module_path(model, root, frames, args.batch, args.threads, work=root / f"round{r}")
            mod.append(rate)
            by_thread.append(stats.get("threadCpuUs", {}))
            alone.append(model_only(model, root, frames, args.batch, args.threads))
            print(
                f"round {r + 1}: bare {bare[-1].per_s:,.0f}/s ({bare[-1].cpu_us:.0f} us CPU a sample)  "
                f"module {mod[-1].per_s:,.0f}/s ({mod[-1].cpu_us:.0f} us)  alone {alone[-1]:,.0f}/s"
            )
    b, m = statistics.median(r.per_s for r in bare), statistics.median(r.per_s for r in mod)
    a = statistics.median(alone)
    b_cpu, m_cpu = statistics.median(r.cpu_us for r in bare), statistics.median(r.cpu_us for r in mod)
    latency = stats.get("latencyMs", {})
    result = {
        "model": args.model,
        "frames": args.frames,
        "batch": args.batch,
        "rounds": args.rounds,
        "bare_samples_per_s": round(b, 1),
        "module_samples_per_s": round(m, 1),
        "model_alone_samples_per_s": round(a, 1),
        "module_over_bare": round(m / b, 3),
        "module_over_bare_by_round": [round(x.per_s / y.per_s, 3) for y, x in zip(bare, mod, strict=True)],
        "bare_cpu_us_per_sample": round(b_cpu, 1),
        "module_cpu_us_per_sample": round(m_cpu, 1),
        "module_latency_ms": latency,
        "batch_sizes": stats.get("batchSizes"),
        "module_thread_cpu_us_per_sample": _medians(by_thread),
    }
    print(f"bare ONNX Runtime loop (read+decode+normalise+run), batch {args.batch}: {b:,.0f} samples/s")
    print(f"inference module (same + messages, batching, predictions):   {m:,.0f} samples/s")
    print(f"module / bare = {m / b:.2f} (target >= 0.9)")
    print(f"CPU a sample (all threads): bare {b_cpu:.0f} us, module {m_cpu:.0f} us (+{m_cpu - b_cpu:.0f} us)")
    threads_cpu = ", ".join(f"{k} {v:.0f} us" for k, v in result["module_thread_cpu_us_per_sample"].items())
    print(f"module CPU a sample by thread (median; ONNX Runtime's pool not included): {threads_cpu or 'n/a'}")
    print(f"model alone on pre-decoded tensors: {a:,.0f} samples/s (module / model alone = {m / a:.2f})")
    print(f"module run latency ms: {latency.get('run')}; per sample (queue to send): {latency.get('sample')}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
