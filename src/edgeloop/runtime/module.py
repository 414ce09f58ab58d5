"""The module runtime: everything a module needs around its own logic.

A module is an ``EdgeModule`` subclass: its config model, its methods and its handlers. The
``ModuleRuntime`` connects it to the hub through a ``HubClient`` (the real SDK in a container,
``FakeHubClient`` in unit tests), and runs one event loop on one thread: SDK callbacks (which
the SDK runs on its own threads, concurrently) only enqueue events, so module handlers never
run concurrently with each other. Background threads a module starts may call
``ModuleContext.send`` and ``report``, which are thread-safe.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import threading
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import BaseModel

import edgeloop
from edgeloop.clock import Clock, SystemClock
from edgeloop.contracts import Contract
from edgeloop.errors import ConfigError, ContractError, HubConnectionError, HubError
from edgeloop.recent import RecentIds
from edgeloop.runtime.codec import InboundMessage, OutboundMessage, decode_each, encode
from edgeloop.runtime.config import ConfigState
from edgeloop.runtime.hub import HubClient, MethodCall
from edgeloop.runtime.methods import MethodRegistry

log = logging.getLogger(__name__)

C = TypeVar("C", bound=BaseModel)

#: How many input message ids a module remembers to drop a message the hub sends twice.
_RECENT_IDS = 4096


class EdgeModule(Generic[C]):
    """Base of a module's logic. Override what the module needs; every hook runs on the
    runtime thread. ``config_model`` must validate an empty document (every field defaulted)."""

    name: ClassVar[str] = "module"
    config_model: ClassVar[type[BaseModel]]
    #: False: an input message is acknowledged to the hub when ``handle_input`` returns. True:
    #: the module's work on it goes on after that (a batch, a queue), and the module calls
    #: ``ModuleContext.acknowledge(message)`` once what it derived is sent or stored. Until a
    #: message is acknowledged, a restart of the module gets it again.
    acknowledges_inputs: ClassVar[bool] = False

    def register_methods(self, methods: MethodRegistry) -> None:
        """Add the module's own direct methods."""

    def start(self, ctx: ModuleContext[C]) -> None:
        """Called once connected and configured; start background work here."""

    def apply_config(self, config: C, previous: C | None) -> None:
        """A new config is in force. Raise ``ConfigError`` to refuse it (the old one stays)."""

    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        """Items decoded from one input message."""

    def tick(self) -> None:
        """Called about every ``tick_interval`` seconds on the runtime thread."""

    def stats(self) -> dict[str, Any]:
        """Module counters for ``getStats`` and reported properties."""
        return {}

    def warnings(self) -> list[str]:
        """Conditions an operator should fix though the module runs (an unsigned model allowed,
        a secret file that cannot be read): shown in ``getStats`` and reported ``warnings``."""
        return []

    def set_paused(self, paused: bool) -> None:
        """``pause``/``resume`` were called; inputs are held by the runtime meanwhile."""

    def stop(self) -> None:
        """Finish the work in hand and release resources; the hub is still connected."""


@dataclass(frozen=True)
class _Input:
    message: InboundMessage


@dataclass(frozen=True)
class _Patch:
    patch: dict[str, Any]


@dataclass(frozen=True)
class _Method:
    call: MethodCall


@dataclass(frozen=True)
class _Stop:
    reason: str


_Event = _Input | _Patch | _Method | _Stop


class ModuleContext(Generic[C]):
    """What a module sees of its runtime."""

    def __init__(self, runtime: ModuleRuntime[C]) -> None:
        self._runtime = runtime

    @property
    def module_id(self) -> str:
        return self._runtime.module_id

    @property
    def device_id(self) -> str:
        return self._runtime.device_id

    @property
    def clock(self) -> Clock:
        return self._runtime.clock

    @property
    def config(self) -> C:
        return self._runtime.config_state.config

    @property
    def paused(self) -> bool:
        return self._runtime.paused

    @property
    def inputs_waiting(self) -> bool:
        """Whether more input messages wait for the runtime thread: a module may hold its
        outputs back to send them with the next input's in one message."""
        return self._runtime.inputs_queued() > 0

    @property
    def stopping(self) -> threading.Event:
        """Set when shutdown begins; background loops should exit soon after."""
        return self._runtime.stopping

    def send(self, output: str, items: Sequence[Contract], *, max_batch: int = 64) -> int:
        """Send items on ``output`` in as few messages as the limits allow; returns the count.

        Raises:
            MessageTooLargeError: one item alone is over the hub's message limit.
            HubError: the hub refused or could not be reached.
        """
        return self._runtime.send(output, items, max_batch=max_batch)

    def report(self, patch: dict[str, Any]) -> None:
        """Patch reported properties; failures are logged and counted, never raised."""
        self._runtime.report(patch)

    def warnings(self) -> list[str]:
        """What the runtime reports as ``warnings`` now: the config's and the module's own. A
        module whose warnings change outside a config change (a model refused) reports them
        with its own patch, so they do not wait for the next periodic report."""
        return self._runtime.warnings()

    def acknowledge(self, message: InboundMessage) -> None:
        """Tell the hub an input message is handled (modules with ``acknowledges_inputs``)."""
        self._runtime.acknowledge(message)


class ModuleRuntime(Generic[C]):
    """Runs one ``EdgeModule`` against one ``HubClient`` until stopped."""

    def __init__(
        self,
        module: EdgeModule[C],
        *,
        client: HubClient,
        clock: Clock | None = None,
        module_id: str | None = None,
        device_id: str | None = None,
        tick_interval: float = 1.0,
        report_interval: float = 30.0,
        drain_timeout: float = 20.0,
        heartbeat_file: Path | None = None,
        send_retry_s: float = 30.0,
    ) -> None:
        self.module = module
        self.client = client
        self.clock = clock or SystemClock()
        self.module_id = module_id or module.name
        self.device_id = device_id or "local"
        self.config_state: ConfigState[C] = ConfigState(module.config_model)  # type: ignore[arg-type]
        self.paused = False
        self.stopping = threading.Event()
        self.counters: Counter[str] = Counter()
        self.methods = MethodRegistry()
        self.ctx: ModuleContext[C] = ModuleContext(self)
        self._events: queue.Queue[_Event] = queue.Queue()
        self._inputs_queued = 0
        self._inputs_lock = threading.Lock()
        self._held: deque[_Input] = deque()
        self._recent_ids: RecentIds[tuple[str, str]] = RecentIds(_RECENT_IDS)
        # Messages a module that acknowledges itself has not acknowledged yet, and how many
        # copies of each came meanwhile (acknowledged with the original, not before).
        self._in_hand: dict[tuple[str, str], int] = {}
        self._in_hand_lock = threading.Lock()
        self._tick_interval = tick_interval
        self._report_interval = report_interval
        self._drain_timeout = drain_timeout
        self._heartbeat_file = heartbeat_file
        self._send_retry_s = send_retry_s
        self._send_lock = threading.Lock()
        self._started_at = self.clock.now()
        self._running = False
        self._register_standard_methods()
        module.register_methods(self.methods)

    # -- lifecycle -------------------------------------------------------------------------
    def install_signal_handlers(self) -> None:
        """Stop gracefully on SIGTERM (docker stop, edgeAgent) and SIGINT (Ctrl-C)."""

        def _handler(signum: int, _frame: FrameType | None) -> None:
            self.request_stop(signal.Signals(signum).name)

        signal.signal(signal.SIGTERM, _handler)
        signal.signal(signal.SIGINT, _handler)

    def request_stop(self, reason: str = "requested") -> None:
        """Ask the event loop to finish the work in hand and exit (thread- and signal-safe)."""
        self.stopping.set()
        self._events.put(_Stop(reason))

    def run(self) -> int:
        """Connect, configure, start the module and process events until stopped.

        Returns the process exit code. Raises ``HubError`` when the hub cannot be reached at
        start (the container then exits and edgeAgent restarts it).
        """
        self.client.set_handlers(
            on_input=self._input_arrived,
            on_desired_patch=lambda p: self._events.put(_Patch(p)),
            on_method=lambda c: self._events.put(_Method(c)),
        )
        self.client.connect()
        self._load_twin()
        self.module.apply_config(self.config_state.config, None)
        self.module.start(self.ctx)
        self._running = True
        self.report({**self._runtime_report("running"), "warnings": self.warnings()})
        for warning in self.warnings():
            log.warning("%s", warning)
        log.info("module %s started (version %s)", self.module_id, edgeloop.__version__)
        try:
            self._loop()
        finally:
            self._shutdown()
        return 0

    def _load_twin(self) -> None:
        twin = self.client.get_twin()
        desired = twin.get("desired", {}) if isinstance(twin, dict) else {}
        try:
            self.config_state.replace(desired, desired.get("$version"))
        except ConfigError as exc:
            log.error("desired properties rejected at start, running with defaults: %s", exc.reason)
            self.counters["config_rejected"] += 1
        self.report(self.config_state.reported())

    def _loop(self) -> None:
        next_tick = self.clock.monotonic() + self._tick_interval
        next_report = self.clock.monotonic() + self._report_interval
        while True:
            timeout = max(0.0, next_tick - self.clock.monotonic())
            try:
                event = self._events.get(timeout=timeout)
            except queue.Empty:
                event = None
            if isinstance(event, _Stop):
                log.info("stopping: %s", event.reason)
                return
            if event is not None:
                self._dispatch(event)
            now = self.clock.monotonic()
            if now >= next_tick:
                next_tick = now + self._tick_interval
                self._guarded("tick", self.module.tick)
                self._beat()
            if now >= next_report:
                next_report = now + self._report_interval
                stats = self.stats()
                self.report({"stats": stats, "warnings": stats["warnings"]})

    def _beat(self) -> None:
        """Touch the heartbeat file the container health check reads: the loop is alive."""
        if self._heartbeat_file is None:
            return
        try:
            self._heartbeat_file.touch()
        except OSError as exc:
            self.counters["heartbeat_errors"] += 1
            log.warning("cannot touch heartbeat file %s: %s", self._heartbeat_file, exc)

    def _shutdown(self) -> None:
        """Handle what was already received, then stop; anything not handled and acknowledged
        by then is delivered again after the restart."""
        deadline = self.clock.monotonic() + self._drain_timeout
        self.paused = False
        while self._held:
            self._on_input(self._held.popleft())
        while self.clock.monotonic() < deadline:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                break
            if not isinstance(event, _Stop):
                self._dispatch(event)
        self._guarded("stop", self.module.stop)
        self.report(self._runtime_report("stopped"))
        self.client.shutdown()
        self._running = False
        log.info("module %s stopped", self.module_id)

    # -- events ----------------------------------------------------------------------------
    def _input_arrived(self, message: InboundMessage) -> None:
        """SDK thread: queue an input message for the runtime thread."""
        with self._inputs_lock:
            self._inputs_queued += 1
        self._events.put(_Input(message))

    def inputs_queued(self) -> int:
        """Input messages received and not yet taken by the runtime thread."""
        with self._inputs_lock:
            return self._inputs_queued

    def _dispatch(self, event: _Event) -> None:
        if isinstance(event, _Input):
            with self._inputs_lock:
                self._inputs_queued -= 1
            self._on_input(event)
        elif isinstance(event, _Patch):
            self._on_patch(event.patch)
        elif isinstance(event, _Method):
            self._on_method(event.call)

    def _on_input(self, event: _Input) -> None:
        if self.paused:
            self._held.append(event)
            return
        message = event.message
        if self._seen_before(message):
            self.counters["duplicate_messages"] += 1
            log.info("input %s: message %s handled already; dropped", message.input_name, message.message_id)
            if not self._copy_in_hand(message):
                self.acknowledge(message)
            return
        if message.key is not None and self.module.acknowledges_inputs:
            with self._in_hand_lock:
                self._in_hand[message.key] = 0
        if self._take_input(message) and self.module.acknowledges_inputs:
            return  # the module acknowledges it when its work on it is done
        self.acknowledge(message)

    def _copy_in_hand(self, message: InboundMessage) -> bool:
        """True when the module still works on the original of this copy: acknowledging the
        copy now would let a kill lose the message, so it is acknowledged with the original."""
        with self._in_hand_lock:
            if message.key not in self._in_hand:
                return False
            self._in_hand[message.key] += 1
            return True

    def _seen_before(self, message: InboundMessage) -> bool:
        """True for a message id this process has handled: the hub sent it again (its
        acknowledgement was lost with a connection, or came too late) or a sender retried it."""
        key = message.key
        if key is None:
            return False
        if key in self._recent_ids:
            return True
        self._recent_ids.add(key)
        return False

    def _take_input(self, message: InboundMessage) -> bool:
        """Decode and hand the items to the module; False when nothing reached it intact."""
        self.counters["messages_in"] += 1
        try:
            items, problems = decode_each(message.body)
        except ContractError as exc:
            self.counters["messages_rejected"] += 1
            log.warning("dropping message on input %s: %s", message.input_name, exc)
            return False
        if problems:
            self.counters["items_rejected"] += len(problems)
            for problem in problems:
                log.warning("dropping an item on input %s: %s", message.input_name, problem)
            if not items:
                self.counters["messages_rejected"] += 1
                return False
        self.counters["items_in"] += len(items)
        return self._guarded("handle_input", self.module.handle_input, message.input_name, items, message)

    def _on_patch(self, patch: dict[str, Any]) -> None:
        version = patch.get("$version")
        # A refusal is already logged, counted and reported; the last good config stays.
        with contextlib.suppress(ConfigError):
            self._apply(lambda: self.config_state.patch(patch, version))

    def _apply(self, change_fn: Any) -> dict[str, Any]:
        """Apply a config change; returns the reported view. Raises ConfigError when refused."""
        before = self.config_state.document
        try:
            change = change_fn()
        except ConfigError as exc:
            self.counters["config_rejected"] += 1
            log.warning("config rejected: %s", exc.reason)
            self.report(self.config_state.reported())
            raise
        if change.changed:
            try:
                self.module.apply_config(change.config, change.previous)
            except ConfigError as exc:
                self.config_state.rollback_to(change, before, exc.reason)
                self.counters["config_rejected"] += 1
                log.warning("config refused by the module: %s", exc.reason)
                self.report(self.config_state.reported())
                raise
            self.counters["config_applied"] += 1
            log.info("config applied (version %s)", self.config_state.version)
        for warning in self.config_state.warnings:
            log.warning("config: %s", warning)
        self.report({**self.config_state.reported(), "warnings": self.warnings()})
        return self.config_state.reported()

    def _on_method(self, call: MethodCall) -> None:
        self.counters["method_calls"] += 1
        response = self.methods.dispatch(call.name, call.payload)
        if response.status >= 400:
            self.counters["method_errors"] += 1
        log.info("method %s answered %s", call.name, response.status)
        try:
            self.client.respond(call, response)
        except HubError:
            log.warning("could not answer method %s", call.name, exc_info=True)

    def _guarded(self, what: str, fn: Any, *args: Any) -> bool:
        """Call a module hook; an exception is logged and counted as ``<what>_errors``.
        Returns whether the hook returned normally."""
        try:
            fn(*args)
        except Exception:
            self.counters[f"{what}_errors"] += 1
            log.exception("module %s failed in %s", self.module_id, what)
            return False
        return True

    # -- services for the module -----------------------------------------------------------
    def send(self, output: str, items: Sequence[Contract], *, max_batch: int = 64) -> int:
        messages = encode(output, items, max_batch=max_batch)
        with self._send_lock:
            for message in messages:
                self._send_one(message)
                self.counters["messages_out"] += 1
        self.counters["items_out"] += len(items)
        return len(messages)

    def _send_one(self, message: OutboundMessage) -> None:
        """Send one message, retrying the same message (same id, so a receiver can drop a
        duplicate) while the SDK reconnects: it refuses sends meanwhile, and may fail one that
        did reach the hub. Gives up after ``send_retry_s`` and raises the last error."""
        deadline = self.clock.monotonic() + self._send_retry_s
        delay = 0.2
        while True:
            try:
                self.client.send(message)
                return
            except HubConnectionError as exc:
                if self.clock.monotonic() + delay > deadline:
                    self.counters["send_failures"] += 1
                    raise
                self.counters["send_retries"] += 1
                log.warning("send on %s failed (%s); retrying in %.1fs", message.output, exc, delay)
                self.clock.sleep(delay)
                delay = min(delay * 2, 5.0)

    def acknowledge(self, message: InboundMessage) -> None:
        """Let the hub forget an input message, and the copies of it that came while the module
        held it (thread-safe); failures are logged and counted."""
        copies = 0
        if message.key is not None:
            with self._in_hand_lock:
                copies = self._in_hand.pop(message.key, 0)
        for _ in range(1 + copies):
            self._acknowledge_one(message)

    def _acknowledge_one(self, message: InboundMessage) -> None:
        try:
            self.client.acknowledge(message)
        except Exception:
            self.counters["ack_errors"] += 1
            log.warning("could not acknowledge a message on input %s", message.input_name, exc_info=True)
        else:
            self.counters["messages_acknowledged"] += 1

    def report(self, patch: dict[str, Any]) -> None:
        try:
            self.client.patch_reported(patch)
        except HubError:
            self.counters["report_errors"] += 1
            log.warning("reported-properties patch failed", exc_info=True)

    def stats(self) -> dict[str, Any]:
        return {
            "runtime": {
                **dict(self.counters),
                "paused": self.paused,
                "held_inputs": len(self._held),
                "started_at": self._started_at.isoformat(),
            },
            "module": self.module.stats(),
            "warnings": self.warnings(),
        }

    def warnings(self) -> list[str]:
        """The config's deprecation warnings and the module's own."""
        own: list[str] = []
        try:
            own = list(self.module.warnings())
        except Exception:
            log.exception("module warnings failed")
        return [*self.config_state.warnings, *own]

    def _runtime_report(self, status: str) -> dict[str, Any]:
        return {
            "runtime": {
                "status": status,
                "paused": self.paused,
                "version": edgeloop.__version__,
                "startedAt": self._started_at.isoformat(),
                "methods": self.methods.names(),
            }
        }

    # -- standard methods ------------------------------------------------------------------
    def _register_standard_methods(self) -> None:
        self.methods.add("getConfig", lambda _p: self._get_config(), description="effective config")
        self.methods.add(
            "setConfig",
            self._set_config,
            payload_model=None,
            description="merge-patch the desired config now (validated like a twin patch)",
        )
        self.methods.add("getStats", lambda _p: self.stats(), description="runtime and module counters")
        self.methods.add("pause", lambda _p: self._set_paused(True), description="hold inputs")
        self.methods.add("resume", lambda _p: self._set_paused(False), description="process held inputs")

    def _get_config(self) -> dict[str, Any]:
        return self.config_state.reported()

    def _set_config(self, payload: Any) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise ConfigError(f"setConfig takes a JSON object of settings, got {type(payload).__name__}")
        return self._apply(lambda: self.config_state.patch(payload, self.config_state.version))

    def _set_paused(self, paused: bool) -> dict[str, Any]:
        self.paused = paused
        self._guarded("set_paused", self.module.set_paused, paused)
        if not paused:
            while self._held and not self.paused:
                self._on_input(self._held.popleft())
        self.report(self._runtime_report("paused" if paused else "running"))
        return {"paused": self.paused}


def run_module(module: EdgeModule[Any], *, client: HubClient | None = None) -> int:
    """Entry point of a module container: JSON logs, telemetry from the ``OTEL_*`` environment,
    the SDK client from the IoT Edge environment, SIGTERM handling, then ``ModuleRuntime.run``."""
    from edgeloop import telemetry
    from edgeloop.logs import configure_logging
    from edgeloop.runtime.hub import SdkHubClient
    from edgeloop.telemetry.runtime_metrics import forget_runtime, observe_runtime

    module_id = os.environ.get("IOTEDGE_MODULEID", module.name)
    device_id = os.environ.get("IOTEDGE_DEVICEID", "local")
    configure_logging(module_id)
    telemetry.setup_from_env(module_id, module_id=module_id, device_id=device_id)
    try:
        hub = client or SdkHubClient.from_edge_environment()
        beat = os.environ.get("EDGELOOP_HEARTBEAT_FILE")
        runtime = ModuleRuntime(
            module,
            client=hub,
            module_id=module_id,
            device_id=device_id,
            heartbeat_file=Path(beat) if beat else None,
        )
        observe_runtime(runtime)
        runtime.install_signal_handlers()
        return runtime.run()
    except HubError as exc:
        log.error("cannot run module %s: %s", module.name, exc)
        return 2
    finally:
        forget_runtime()
        telemetry.shutdown()
