"""The inference module: frames in, predictions out, models swapped in from the twin.

``handle_input`` queues each frame for the micro-batcher; the batcher's worker decodes the
batch, runs the current model once, and makes one prediction per frame (``status: error`` with
the reason for a frame it could not score). The output thread sends the predictions of the
runs ready at once as one ``edgeloop.predictions/1`` message (split only where the hub's size
limit requires); while frames wait in the batcher's queue (the rest of an input message, or a
run already due) they are held back for the next run's, so a saturated module sends fewer,
fuller messages and a slow input is not delayed. The batcher thread keeps its runs until then
(``_hand_over``): the output thread wakes once a message rather than once a run, each wake
being a hand-over of the GIL that costs both threads CPU.
Model loads run on the manager's loader thread.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edgeloop import signing
from edgeloop.clock import Clock, SystemClock
from edgeloop.contracts import Contract, FrameRef, Prediction
from edgeloop.errors import ConfigError, HubConnectionError, MessageTooLargeError, MethodError
from edgeloop.runtime import EdgeModule, InboundMessage, MethodRegistry, ModuleContext
from edgeloop_inference import observe, outgoing, scoring
from edgeloop_inference.batcher import MicroBatcher
from edgeloop_inference.config import InferenceConfig, ModelSpec
from edgeloop_inference.latency import LatencyWindow
from edgeloop_inference.manager import LoadRequest, ModelManager, read_public_key
from edgeloop_inference.outgoing import Record
from edgeloop_inference.preprocess import SampleError
from edgeloop_inference.providers import available_providers
from edgeloop_inference.session import LoadedModel, ModelRejectedError
from edgeloop_inference.store import Fetcher, ModelStore, UrlFetcher

log = logging.getLogger(__name__)

OUTPUT = "predictions"
INPUT = "frames"
#: Most predictions in one message; fewer where the hub's message size limit requires.
PREDICTIONS_PER_MESSAGE = 256
#: How often the reported ``model`` section (with latency percentiles) is refreshed.
REPORT_EVERY_S = 30.0
#: Settings whose change means the serving model must be loaded again.
_RELOAD_KEYS = ("providers", "intra_op_threads", "intra_op_spinning", "preprocess", "labels", "output_name")


@dataclass
class Job:
    """One sample waiting to be scored; ``reply`` set for HTTP requests, else it goes to the hub."""

    frame: FrameRef
    enqueued: float
    data: bytes | None = None
    reply: Future[Prediction] | None = field(default=None, repr=False)
    origin: InputMessage | None = field(default=None, repr=False)


class InputMessage:
    """The frames of one input message still on their way out; when the last one's prediction
    is sent, the message is acknowledged to the hub (until then a restart gets it again)."""

    def __init__(self, message: InboundMessage, frames: int, acknowledge: Callable[[InboundMessage], None]):
        self.message = message
        self._remaining = frames
        self._acknowledge = acknowledge
        self._lock = threading.Lock()

    def done(self, count: int = 1) -> None:
        """``count`` more of its frames' predictions are sent."""
        with self._lock:
            self._remaining -= count
            last = self._remaining == 0
        if last:
            self._acknowledge(self.message)


@dataclass
class Scored:
    """What the batcher thread hands the output thread: one batch's scores and failures."""

    model: LoadedModel | None
    now: datetime
    jobs: list[Job] = field(default_factory=list)
    probs: np.ndarray | None = None
    embeddings: np.ndarray | None = None
    run_ms: float = 0.0
    failed: list[tuple[Job, str]] = field(default_factory=list)


class InferenceModule(EdgeModule[InferenceConfig]):
    name = "inference"
    config_model = InferenceConfig
    acknowledges_inputs = True

    def __init__(
        self,
        *,
        samples_dir: Path,
        models_dir: Path,
        fetcher: Fetcher | None = None,
        clock: Clock | None = None,
        providers: Callable[[], list[str]] = available_providers,
        start_timeout_s: float = 120.0,
        public_key_env_file: str | None = None,
    ) -> None:
        self.samples_dir = Path(samples_dir)
        self._samples_root = str(self.samples_dir)
        self.public_key_env_file = public_key_env_file
        self.models_dir = Path(models_dir)
        self._clock = clock or SystemClock()
        self._store = ModelStore(self.models_dir, fetcher=fetcher or UrlFetcher(), clock=self._clock)
        self.models = ModelManager(
            store=self._store, clock=self._clock, available_providers=providers, on_change=self._report_model
        )
        self._start_timeout_s = start_timeout_s
        self._ctx: ModuleContext[InferenceConfig] | None = None
        self._config = InferenceConfig()
        self._public_key: bytes | None = None
        self._key_error: str | None = None
        self._batcher: MicroBatcher[Job] = MicroBatcher(self._process, name="inference-batcher")
        self._output: MicroBatcher[Scored] = MicroBatcher(
            self._emit, max_batch=64, max_wait_s=0.0, queue_limit=64, name="inference-output"
        )
        self._stopping = threading.Event()
        self._counts: Counter[str] = Counter()
        self._counts_lock = threading.Lock()
        self._last_embedding_problem: str | None = None
        self._held: list[tuple[Job, Record]] = []
        self._ready: list[Scored] = []  # runs the batcher thread has not handed over yet
        self._ready_samples = 0
        self._ready_lock = threading.Lock()
        self.run_latency = LatencyWindow()
        self.sample_latency = LatencyWindow()
        self._http: Any = None
        self._seq = 0
        self._last_report = 0.0

    @classmethod
    def from_environment(cls) -> InferenceModule:
        """Directories from ``EDGELOOP_SAMPLES_DIR`` and ``EDGELOOP_MODELS_DIR``; the model-signing
        public key file from ``EDGELOOP_MODEL_PUBLIC_KEY_FILE`` when the twin names none."""
        return cls(
            samples_dir=Path(os.environ.get("EDGELOOP_SAMPLES_DIR", "/samples")),
            models_dir=Path(os.environ.get("EDGELOOP_MODELS_DIR", "/models")),
            public_key_env_file=os.environ.get("EDGELOOP_MODEL_PUBLIC_KEY_FILE") or None,
        )

    # -- lifecycle -------------------------------------------------------------------------
    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("getModel", lambda _p: self.model_report(), description="serving model, status, latency")
        methods.add(
            "loadModel",
            self._load_model_method,
            payload_model=ModelSpec,
            description="fetch, verify, self-test and serve a model (same object as the twin's model)",
        )
        methods.add("rollback", lambda _p: self._rollback(), description="serve the previous model again")

    def apply_config(self, config: InferenceConfig, previous: InferenceConfig | None) -> None:
        try:
            public_key = read_public_key(config, self.models_dir, env_file=self.public_key_env_file)
            self._key_error = None
        except signing.SignatureError as exc:
            reason = f"key 'public_key'/'public_key_file' (or EDGELOOP_MODEL_PUBLIC_KEY_FILE): {exc}"
            if previous is not None:
                raise ConfigError(reason) from exc
            # At start there is no last good key: run without one (signed models are refused,
            # with this reason) until the file appears or the twin changes.
            log.error("model-signing public key unusable: %s", reason)
            public_key, self._key_error = None, reason
        self._config, self._public_key = config, public_key
        self._batcher.configure(
            max_batch=config.batching.max_batch, max_wait_s=config.batching.max_wait_ms / 1000.0
        )
        if previous is None or self._ctx is None:
            return
        if config.http != previous.http:
            self._restart_http()
        if config.model is not None and config.model != previous.model:
            self.models.submit(LoadRequest(config, public_key, spec=config.model))
        elif any(getattr(config, k) != getattr(previous, k) for k in _RELOAD_KEYS):
            self._reload_current(config)

    def start(self, ctx: ModuleContext[InferenceConfig]) -> None:
        self._ctx = ctx
        config = self._config
        self._batcher = MicroBatcher(
            self._process,
            max_batch=config.batching.max_batch,
            max_wait_s=config.batching.max_wait_ms / 1000.0,
            queue_limit=config.batching.queue_limit,
            name="inference-batcher",
        )
        initial = self._initial_path(config)
        if initial is not None:
            self.models.submit(LoadRequest(config, self._public_key, path=initial, reason="initial"))
        if self._twin_model_rolled_back(config):
            restore = self.models.restore_request(config, self._public_key)
            if restore is not None:
                self.models.submit(restore)
        elif config.model is not None:
            self.models.submit(LoadRequest(config, self._public_key, spec=config.model))
        if initial is None and config.model is None:
            log.warning(
                "no model yet: set the twin's 'model' or put a model at %s",
                self.models_dir / "initial/model.onnx",
            )
            self._report_model()
        self._output.start()
        self._batcher.start()
        if config.http.enabled:
            self._restart_http()

    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        now = time.perf_counter()
        frames: list[FrameRef] = []
        for item in items:
            if not isinstance(item, FrameRef):
                self._count("ignored_items")
                log.warning("input %s: ignoring a %s item (frames expected)", input_name, item.SCHEMA)
                continue
            frames.append(item)
        ctx = self._ctx
        assert ctx is not None, "handle_input before start"
        if not frames:
            ctx.acknowledge(message)
            return
        origin = InputMessage(message, len(frames), ctx.acknowledge)
        self._count("samples_in", len(frames))
        self._batcher.submit_many([Job(frame, now, origin=origin) for frame in frames])

    def tick(self) -> None:
        """Refresh the reported model section (latency percentiles) every ``REPORT_EVERY_S``."""
        if self._ctx is None:
            return
        now = self._ctx.clock.monotonic()
        if now - self._last_report >= REPORT_EVERY_S:
            self._last_report = now
            self._report_model()

    def stop(self) -> None:
        self._stopping.set()
        self._stop_http()
        left = self._batcher.stop(timeout=15.0)
        self._flush_ready()  # none unless the batcher thread outlived its drain
        if left:
            # Frames from the hub stay unacknowledged: the next start gets them again.
            self._count("left_for_restart", sum(1 for j in left if j.origin is not None))
            callers = [j for j in left if j.origin is None]
            if callers:
                self._count("unscored", len(callers))
                reason = "not scored: the module stopped before it got to this sample"
                now = self._clock.now()
                self._output.submit(Scored(model=None, now=now, failed=[(j, reason) for j in callers]))
        unsent = self._output.stop(timeout=10.0)
        self._emit(unsent)  # with what the output thread held back
        self.models.shutdown()
        self._report_model()

    # -- scoring ---------------------------------------------------------------------------
    def _process(self, jobs: list[Job]) -> None:
        """Batcher thread: decode and run. Records are built and sent on the output thread, so
        the next batch decodes and runs (both release the GIL) while this one is encoded."""
        model = self.models.current
        if model is None and self.models.loading:
            model = self.models.wait_for_model(self._start_timeout_s, self._stopping)
        now = self._clock.now()
        if model is None:
            status = self.models.report()
            reason = f"no model loaded (model status {status['status']}: {status['error']})"
            self._count("unscored", len(jobs))
            self._hand_over(Scored(model=None, now=now, failed=[(job, reason) for job in jobs]))
            return
        decoded: list[np.ndarray] = []
        result = Scored(model=model, now=now)
        for job in jobs:
            try:
                decoded.append(self._decode(model, job))
                result.jobs.append(job)
            except SampleError as exc:
                self._count("sample_errors")
                result.failed.append((job, str(exc)))
            except Exception as exc:  # one bad sample must not take its batch mates down with it
                log.exception("decoding sample %s failed", job.frame.sample_id)
                self._count("sample_errors")
                result.failed.append((job, f"sample {job.frame.sample_id!r} cannot be decoded: {exc!r:.200}"))
        if result.jobs:
            self._run(model, decoded, result)
        self._hand_over(result)

    def _hand_over(self, result: Scored) -> None:
        """Batcher thread: pass a run to the output thread, or keep it for the next runs' while
        frames wait in the queue (they run next) and the message they will go in has room: the
        output thread then wakes once a message, not once a run, and the predictions go out in
        the same messages as when it held them itself (``_more_coming``)."""
        with self._ready_lock:
            self._ready.append(result)
            self._ready_samples += len(result.jobs) + len(result.failed)
            if (
                self._ready_samples < PREDICTIONS_PER_MESSAGE
                and self._batcher.pending > 0
                and not self._stopping.is_set()
            ):
                return
        self._flush_ready()

    def _flush_ready(self) -> None:
        """Hand the runs kept back to the output thread."""
        with self._ready_lock:
            ready, self._ready, self._ready_samples = self._ready, [], 0
        if ready:
            self._output.submit_many(ready)

    def _decode(self, model: LoadedModel, job: Job) -> np.ndarray:
        frame, pre = job.frame, model.preprocessor
        if job.data is not None:
            return pre.decode_bytes(job.data, display=frame.sample_id)
        if frame.kind == "vector" and frame.vector is not None:
            return pre.decode_vector(frame.vector, display=frame.sample_id)
        if pre.spec.input_kind == "vector" and frame.kind == "image":
            raise SampleError(f"sample {frame.sample_id!r} is an image but model takes feature vectors")
        if frame.file_ref is None:
            raise SampleError(f"sample {frame.sample_id!r} has neither file_ref nor vector")
        if frame.raw is not None:
            return pre.decode_raw(self.samples_dir / frame.file_ref, display=frame.file_ref)
        expected = frame.sha256 if self._config.verify_sample_hash else None
        path = f"{self._samples_root}/{frame.file_ref}"
        return pre.decode_file(path, display=frame.file_ref, sha256=expected, size=frame.bytes)

    def _run(self, model: LoadedModel, decoded: list[np.ndarray], result: Scored) -> None:
        try:
            tensor = model.preprocessor.to_tensor(decoded)
            started = time.perf_counter()
            result.probs, result.embeddings = model.infer(tensor)
            result.run_ms = (time.perf_counter() - started) * 1000.0
        except Exception as exc:
            log.exception("model run failed on a batch of %d", len(result.jobs))
            self._count("run_errors", len(result.jobs))
            reason = f"model run failed: {type(exc).__name__}: {exc}"
            result.failed.extend((job, reason) for job in result.jobs)
            result.jobs = []
            return
        self.run_latency.add(result.run_ms)
        observe.record_batch(model.identity.version, result.run_ms)
        self._count("scored", len(result.jobs))
        self._count("batches")

    def _emit(self, results: list[Scored]) -> None:
        """Output thread: build the prediction records and deliver them, in arrival order."""
        records = self._records([r for r in results if r.jobs and r.probs is not None and r.model])
        out: list[tuple[Job, Record]] = []
        for result in results:
            if id(result) in records:
                out.extend(zip(result.jobs, records[id(result)], strict=True))
            model, now = result.model, result.now
            out.extend((job, self._error(job.frame, reason, model, now)) for job, reason in result.failed)
        out = self._held + out
        if self._more_coming(len(out)):
            self._held = out
            return
        self._held = []
        if out:
            self._deliver(out)

    def _records(self, runs: list[Scored]) -> dict[int, list[Record]]:
        """The ``ok`` records of each run (by ``id``), the runs of one model worked out together:
        top-k, confidence, margin and entropy in one pass over all their rows."""
        config = self._config
        records: dict[int, list[Record]] = {}
        start = 0
        while start < len(runs):
            model = runs[start].model
            assert model is not None
            end = start + 1
            while end < len(runs) and runs[end].model is model:
                end += 1
            group = runs[start:end]
            start = end
            texts: list[str | None] = []
            for run in group:
                run_texts, problem = scoring.embedding_texts(run.embeddings, len(run.jobs))
                if problem is not None:
                    self._embedding_problem(problem, len(run.jobs))
                texts.extend(run_texts)
            probs = np.concatenate([run.probs for run in group if run.probs is not None])
            made = scoring.prediction_fields(
                [job.frame for run in group for job in run.jobs],
                probs,
                labels=model.labels,
                top_k=config.top_k,
                include_scores=config.include_scores,
                model_name=model.identity.name,
                model_version=model.identity.version,
                latency_ms=[round(run.run_ms, 3) for run in group for _job in run.jobs],
                scored_at=[run.now for run in group for _job in run.jobs],
                embeddings=texts,
            )
            for row in scoring.unsound_rows(probs):
                made[row], problem = outgoing.vetted(made[row])
                if problem is not None:
                    self._invalid_prediction(problem)
            first = 0
            for run in group:
                records[id(run)] = made[first : first + len(run.jobs)]
                first += len(run.jobs)
        return records

    def _more_coming(self, ready: int) -> bool:
        """Whether to hold ``ready`` predictions for the next run's: frames wait in the
        batcher's queue (they run next, within ``max_wait_ms``) or runs scored already wait in
        the output's (more than one take holds), the message has room, and the module is not
        stopping."""
        return (
            0 < ready < PREDICTIONS_PER_MESSAGE
            and not self._stopping.is_set()
            and (self._batcher.pending > 0 or self._output.pending > 0)
        )

    def _embedding_problem(self, problem: str, samples: int) -> None:
        """A batch's embeddings could not be forwarded: its predictions go without them."""
        self._count("embedding_errors", samples)
        with self._counts_lock:
            self._last_embedding_problem = problem
        log.warning("predictions sent without embedding: %s", problem)

    def _error(self, frame: FrameRef, reason: str, model: LoadedModel | None, now: Any) -> Record:
        return scoring.error_fields(
            frame,
            reason,
            model_name=model.identity.name if model else None,
            model_version=model.identity.version if model else None,
            scored_at=now,
        )

    def _deliver(self, results: list[tuple[Job, Record]]) -> None:
        to_hub: list[Record] = []
        done = time.perf_counter()
        jobs = [job for job, _record in results]
        observe.record_records(jobs, [record for _job, record in results], done)
        self.sample_latency.add_many([(done - job.enqueued) * 1000.0 for job in jobs])
        for job, record in results:
            if job.reply is not None:
                self._reply(job.reply, record)
            else:
                to_hub.append(record)
        if to_hub and self._ctx is not None:
            try:
                self._send(to_hub)
                self._count("predictions_out", len(to_hub))
            except HubConnectionError:
                # Not acknowledged: the hub delivers these frames again after reconnecting.
                self._count("send_errors", len(to_hub))
                log.exception("could not send %d predictions; their frames come again", len(to_hub))
                return
            except Exception:
                self._count("send_errors", len(to_hub))
                log.exception("could not send %d predictions", len(to_hub))
        origins = Counter(job.origin for job in jobs if job.origin is not None)
        for origin, count in origins.items():
            origin.done(count)

    def _reply(self, reply: Future[Prediction], record: Record) -> None:
        if reply.done():
            return
        prediction, problem = outgoing.prediction_of(record)
        if problem is not None:
            self._invalid_prediction(problem)
        reply.set_result(prediction)

    def _send(self, records: list[Record]) -> None:
        """As few ``edgeloop.predictions/1`` messages as the size limit allows."""
        for start in range(0, len(records), PREDICTIONS_PER_MESSAGE):
            self._send_batch(records[start : start + PREDICTIONS_PER_MESSAGE])

    def _send_batch(self, records: list[Record]) -> None:
        assert self._ctx is not None
        batch: Contract | None = outgoing.encoded_batch(records)
        if batch is None:  # a record the contract must validate and serialize itself
            batch, records, problems = outgoing.batch_of(records)
            for problem in problems:
                self._invalid_prediction(problem)
        try:
            self._ctx.send(OUTPUT, [batch], max_batch=1)
        except MessageTooLargeError:
            if len(records) == 1:
                raise
            half = len(records) // 2
            self._send_batch(records[:half])
            self._send_batch(records[half:])
        else:
            self._count("messages_out")

    def _invalid_prediction(self, problem: str) -> None:
        """A prediction failed its contract and went out as an error record instead."""
        self._count("sample_errors")
        log.warning("%s; sent as an error record", problem)

    def score_now(
        self, *, data: bytes | None = None, vector: list[float] | None = None
    ) -> Future[Prediction]:
        """Queue one sample from outside the pipeline (the HTTP endpoint); same model, same batches."""
        self._seq += 1
        frame = FrameRef(
            sample_id=uuid.uuid4().hex,
            source_id="http",
            seq=self._seq,
            captured_at=self._clock.now(),
            kind="vector" if vector is not None else "image",
            vector=vector,
        )
        future: Future[Prediction] = Future()
        self._batcher.submit(Job(frame, time.perf_counter(), data=data, reply=future))
        return future

    # -- models ----------------------------------------------------------------------------
    def _initial_path(self, config: InferenceConfig) -> Path | None:
        if config.initial_model is not None:
            path = Path(config.initial_model)
            return path if path.is_absolute() else self.models_dir / path
        default = self.models_dir / "initial" / "model.onnx"
        return default if default.exists() else None

    def _twin_model_rolled_back(self, config: InferenceConfig) -> bool:
        """True when the twin still names the model a rollback before the restart moved away
        from: it stays rolled back until the twin names another model."""
        recorded = self.models.recorded_rollback()
        if recorded is None or config.model is None or recorded["from"].get("sha256") != config.model.sha256:
            return False
        log.warning(
            "the twin names model %s %s, which was rolled back: serving %s %s until the twin changes",
            config.model.name,
            config.model.version,
            recorded["to"].get("name"),
            recorded["to"].get("version"),
        )
        self.models.rolled_back = True
        return True

    def _reload_current(self, config: InferenceConfig) -> None:
        if self.models.rolled_back:
            restore = self.models.restore_request(config, self._public_key)
            initial = self._initial_path(config)
            if restore is None and initial is not None:
                restore = LoadRequest(config, self._public_key, path=initial, reason="restore")
            if restore is not None:
                self.models.submit(restore)
                return
        if config.model is not None:
            self.models.submit(LoadRequest(config, self._public_key, spec=config.model, reason="reconfigure"))
            return
        current = self.models.current
        initial = self._initial_path(config)
        if current is not None and initial is not None:
            self.models.submit(LoadRequest(config, self._public_key, path=initial, reason="reconfigure"))

    def _load_model_method(self, spec: ModelSpec) -> dict[str, Any]:
        future = self.models.submit(
            LoadRequest(self._config, self._public_key, spec=spec, reason="loadModel")
        )
        config = self._config
        wait = min(300.0, config.download_timeout_s * config.download_attempts + 30.0)
        try:
            future.result(timeout=wait)
        except ModelRejectedError as exc:
            raise MethodError(400, f"model {spec.name} {spec.version} refused: {exc.reason}") from exc
        except FutureTimeout:
            return {"status": "loading", "model": self.model_report()}
        return self.model_report()

    def _rollback(self) -> dict[str, Any]:
        self.models.rollback()
        return self.model_report()

    def model_report(self) -> dict[str, Any]:
        return {
            **self.models.report(),
            "latencyMs": {"run": self.run_latency.summary(), "sample": self.sample_latency.summary()},
        }

    def _report_model(self) -> None:
        if self._ctx is not None:
            self._ctx.report({"model": self.model_report(), "warnings": self._ctx.warnings()})

    # -- HTTP endpoint ---------------------------------------------------------------------
    def _restart_http(self) -> None:
        self._stop_http()
        settings = self._config.http
        if not settings.enabled or self._stopping.is_set():
            return
        from edgeloop_inference.http_api import HttpEndpoint

        self._http = HttpEndpoint(self, settings)
        self._http.start()

    def _stop_http(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    # -- stats -----------------------------------------------------------------------------
    def _count(self, key: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[key] += n

    def warnings(self) -> list[str]:
        """Unsigned models allowed or served, and the last refused model with its reason."""
        found: list[str] = []
        if self._key_error is not None:
            found.append(f"no model-signing public key: {self._key_error}")
        if self._config.allow_unsigned:
            found.append(
                "allow_unsigned is true: models are served without a verified signature; "
                "set public_key and remove allow_unsigned"
            )
        current = self.models.current
        if current is not None and current.identity.key_id is None:
            found.append(
                f"model {current.identity.name} {current.identity.version} is served unsigned "
                "(allow_unsigned)"
            )
        failure = self.models.failure
        if failure is not None:
            what = f"{failure['name']} {failure['version']}" if failure["name"] else failure["source"]
            found.append(f"model {what} refused: {failure['reason']}")
        return found

    def stats(self) -> dict[str, Any]:
        with self._counts_lock:
            counts = dict(self._counts)
            embedding_problem = self._last_embedding_problem
        model = self.models.current
        return {
            **counts,
            "embedding": {
                "output": model.embedding_output if model else None,
                "problem": (model.embedding_problem if model else None) or embedding_problem,
            },
            "queued": self._batcher.pending,
            "batchSizes": {str(k): v for k, v in sorted(self._batcher.batch_sizes.items())},
            "eagerBatches": self._batcher.eager_batches,
            "modelLoads": self.models.loads,
            "modelFailures": self.models.failures,
            "rollbacks": self.models.rollbacks,
            "latencyMs": {"run": self.run_latency.summary(), "sample": self.sample_latency.summary()},
        }
