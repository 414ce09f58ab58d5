"""The module runtime driven through the in-memory hub client."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from edgeloop.contracts import Contract, FrameRef
from edgeloop.errors import ConfigError, MethodError
from edgeloop.runtime import EdgeModule, InboundMessage, MethodRegistry, ModuleContext, ModuleRuntime
from edgeloop.runtime.codec import encode
from edgeloop.runtime.fake import FakeHubClient
from tests.support import wait_for


class EchoConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    threshold: float = Field(default=0.5, ge=0.0, le=1.0, description="a number in [0, 1]")
    label: str = Field(default="x", min_length=1, description="a name")


class ShoutPayload(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


class EchoModule(EdgeModule[EchoConfig]):
    """Forwards every frame on 'out'; refuses the label 'refuse'."""

    name = "echo"
    config_model = EchoConfig

    def __init__(self) -> None:
        self.ctx: ModuleContext[EchoConfig] | None = None
        self.applied: list[EchoConfig] = []
        self.received: list[str] = []
        self.stopped = False

    def register_methods(self, methods: MethodRegistry) -> None:
        methods.add("shout", self._shout, payload_model=ShoutPayload)
        methods.add("conflict", self._conflict)

    def start(self, ctx: ModuleContext[EchoConfig]) -> None:
        self.ctx = ctx

    def apply_config(self, config: EchoConfig, previous: EchoConfig | None) -> None:
        if config.label == "refuse":
            raise ConfigError("key 'label' = 'refuse': this module refuses it")
        self.applied.append(config)

    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        assert self.ctx is not None
        self.received.extend(item.key for item in items)
        self.ctx.send("out", items)

    def stats(self) -> dict[str, Any]:
        return {"received": len(self.received)}

    def stop(self) -> None:
        self.stopped = True

    def _shout(self, payload: ShoutPayload) -> dict[str, str]:
        return {"text": payload.text.upper()}

    def _conflict(self, _payload: object) -> None:
        raise MethodError(409, "busy")


def frame(i: int) -> FrameRef:
    return FrameRef(
        sample_id=f"s{i:05d}",
        source_id="cam",
        seq=i,
        captured_at=datetime(2026, 1, 1, tzinfo=UTC),
        kind="image",
        file_ref=f"frames/s{i:05d}.jpg",
    )


class Running:
    def __init__(self, desired: dict[str, Any] | None = None) -> None:
        self.hub = FakeHubClient(desired)
        self.module = EchoModule()
        self.runtime = ModuleRuntime(self.module, client=self.hub, tick_interval=0.05)
        self.thread = threading.Thread(target=self.runtime.run)

    def __enter__(self) -> Running:
        self.thread.start()
        wait_for(lambda: self.module.ctx is not None)
        return self

    def __exit__(self, *exc: object) -> None:
        self.runtime.request_stop("test over")
        self.thread.join(10)


@pytest.fixture
def running() -> Iterator[Running]:
    with Running({"threshold": 0.7}) as r:
        yield r


def test_handlers_are_set_before_connect_and_twin_config_applies(running: Running) -> None:
    # then
    assert running.hub.handlers_set_before_connect
    assert running.module.applied[-1].threshold == 0.7
    assert running.hub.reported["config"]["threshold"] == 0.7
    assert running.hub.reported["configVersion"] == 1
    assert running.hub.reported.get("configError") is None


def test_valid_patch_is_applied_and_reported(running: Running) -> None:
    # when
    running.hub.patch_desired({"label": "cats"})
    # then
    wait_for(lambda: running.hub.reported["config"]["label"] == "cats")
    assert running.hub.reported["configVersion"] == 2
    assert running.runtime.ctx.config.label == "cats"
    assert running.runtime.ctx.config.threshold == 0.7


@pytest.mark.parametrize(
    ("patch", "expected"),
    [
        ({"threshold": 3}, "key 'threshold' = 3: Input should be less than or equal to 1"),
        ({"treshold": 0.1}, "unknown key 'treshold'"),
        ({"label": ""}, "key 'label' = ''"),
        ({"label": "refuse"}, "this module refuses it"),
    ],
)
def test_bad_patch_is_rejected_with_reason_and_old_config_kept(
    running: Running, patch: dict[str, Any], expected: str
) -> None:
    # when
    running.hub.patch_desired(patch)
    # then
    wait_for(lambda: running.hub.reported.get("configError") is not None)
    error = running.hub.reported["configError"]
    assert expected in error["reason"]
    assert error["version"] == 2
    assert running.runtime.ctx.config.threshold == 0.7
    assert running.hub.reported["config"]["threshold"] == 0.7
    assert running.hub.reported["configVersion"] == 1


def test_good_patch_after_rejection_clears_the_error(running: Running) -> None:
    running.hub.patch_desired({"threshold": 9})
    wait_for(lambda: running.hub.reported.get("configError") is not None)
    # when
    running.hub.patch_desired({"threshold": 0.2})
    # then
    wait_for(lambda: running.hub.reported.get("configError") is None)
    assert running.runtime.ctx.config.threshold == 0.2


def test_replayed_full_desired_document_changes_nothing(running: Running) -> None:
    # given
    applied_before = len(running.module.applied)
    patches_before = running.runtime.counters["config_applied"]
    # when: the SDK hands the whole desired document again after a reconnect
    running.hub.patch_desired(dict(running.hub.desired), replay=True)
    running.hub.patch_desired(dict(running.hub.desired), replay=True)
    # then
    response = running.hub.call_method("getConfig")
    assert response.status == 200
    assert len(running.module.applied) == applied_before
    assert running.runtime.counters["config_applied"] == patches_before


def test_method_paths_200_400_404_409(running: Running) -> None:
    ok = running.hub.call_method("shout", {"text": "hi"})
    not_json_object = running.hub.call_method("shout", "hi")
    invalid = running.hub.call_method("shout", {"txt": "hi"})
    unknown = running.hub.call_method("nope", {})
    conflict = running.hub.call_method("conflict", {})
    assert (ok.status, ok.payload) == (200, {"text": "HI"})
    assert not_json_object.status == 400
    assert "JSON object" in not_json_object.payload["error"]
    assert invalid.status == 400
    assert "unknown key 'txt'" in invalid.payload["error"]
    assert unknown.status == 404
    assert "shout" in unknown.payload["methods"]
    assert conflict.status == 409


def test_standard_methods(running: Running) -> None:
    cfg = running.hub.call_method("getConfig")
    assert cfg.payload["config"] == {"threshold": 0.7, "label": "x"}
    bad = running.hub.call_method("setConfig", {"threshold": -1})
    assert bad.status == 400
    assert "threshold" in bad.payload["error"]
    good = running.hub.call_method("setConfig", {"label": "dogs"})
    assert good.status == 200
    assert good.payload["config"]["label"] == "dogs"
    stats = running.hub.call_method("getStats")
    assert stats.status == 200
    assert stats.payload["module"] == {"received": 0}
    assert stats.payload["runtime"]["method_calls"] >= 3


def test_inputs_are_decoded_batched_and_forwarded(running: Running) -> None:
    # when
    running.hub.push_input("in", [frame(i) for i in range(10)], max_batch=4)
    # then
    wait_for(lambda: len(running.module.received) == 10)
    assert running.module.received == [f"s{i:05d}" for i in range(10)]
    assert [f.key for f in running.hub.sent_items("out")] == running.module.received
    assert all(m.content_type == "application/json" for m in running.hub.sent)
    assert all(m.content_encoding == "utf-8" for m in running.hub.sent)


def test_garbage_input_is_counted_and_the_module_keeps_running(running: Running) -> None:
    running.hub.push_raw_input("in", b"\xff\x00not json")
    running.hub.push_raw_input("in", b'{"schema": "edgeloop.nope/9"}')
    running.hub.push_input("in", [frame(1)])
    wait_for(lambda: running.module.received == ["s00001"])
    assert running.runtime.counters["messages_rejected"] == 2


def test_pause_holds_inputs_and_resume_delivers_them_in_order(running: Running) -> None:
    assert running.hub.call_method("pause").payload == {"paused": True}
    running.hub.push_input("in", [frame(1)])
    running.hub.push_input("in", [frame(2)])
    stats = running.hub.call_method("getStats").payload
    assert stats["runtime"]["held_inputs"] == 2
    assert running.module.received == []
    # when
    running.hub.call_method("resume")
    # then
    assert running.module.received == ["s00001", "s00002"]


def test_stop_drains_received_inputs_then_disconnects() -> None:
    r = Running()
    with r:
        r.hub.call_method("pause")
        r.hub.push_input("in", [frame(i) for i in range(3)])
    assert r.module.received == ["s00000", "s00001", "s00002"]
    assert r.module.stopped
    assert not r.hub.connected
    assert r.hub.reported["runtime"]["status"] == "stopped"


def test_sigterm_stops_the_runtime_gracefully() -> None:
    # given: a module running on the main thread with signal handlers installed
    hub = FakeHubClient()
    module = EchoModule()
    runtime = ModuleRuntime(module, client=hub, tick_interval=0.05)
    previous = signal.getsignal(signal.SIGTERM)
    runtime.install_signal_handlers()
    try:
        timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGTERM))
        timer.start()
        # when
        code = runtime.run()
    finally:
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # then
    assert code == 0
    assert module.stopped
    assert not hub.connected


def test_bad_twin_at_start_runs_with_defaults_and_reports_why() -> None:
    with Running({"threshold": "high"}) as r:
        assert r.runtime.ctx.config.threshold == 0.5
        assert "key 'threshold' = 'high'" in r.hub.reported["configError"]["reason"]


def test_the_loop_touches_the_heartbeat_file_the_health_check_reads(tmp_path: Any) -> None:
    # given
    beat = tmp_path / "heartbeat"
    hub = FakeHubClient()
    runtime = ModuleRuntime(EchoModule(), client=hub, tick_interval=0.02, heartbeat_file=beat)
    thread = threading.Thread(target=runtime.run)
    # when
    thread.start()
    try:
        wait_for(beat.exists)
        first = beat.stat().st_mtime_ns
        wait_for(lambda: beat.stat().st_mtime_ns > first)
    finally:
        runtime.request_stop("test over")
        thread.join(10)


class FlakyHub(FakeHubClient):
    """Refuses the first ``failures`` sends as the SDK does while it reconnects."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.attempts: list[str] = []

    def send(self, message: Any) -> None:
        self.attempts.append(message.message_id)
        if len(self.attempts) <= self.failures:
            from edgeloop.errors import HubConnectionError

            raise HubConnectionError("no connection (reconnecting)")
        super().send(message)


def test_a_send_during_a_reconnect_is_retried_as_the_same_message() -> None:
    # given a hub that refuses two sends, and a clock that does not really sleep
    from edgeloop.clock import FakeClock

    hub = FlakyHub(failures=2)
    runtime = ModuleRuntime(EchoModule(), client=hub, clock=FakeClock())
    # when
    runtime.send("out", [frame(1)])
    # then: three attempts of one message id, delivered once
    assert len(hub.attempts) == 3
    assert len(set(hub.attempts)) == 1
    assert [m.message_id for m in hub.sent] == hub.attempts[:1]
    assert runtime.counters["send_retries"] == 2


def test_a_send_gives_up_after_the_retry_window_with_the_hub_error() -> None:
    from edgeloop.clock import FakeClock
    from edgeloop.errors import HubConnectionError

    hub = FlakyHub(failures=1000)
    clock = FakeClock()
    runtime = ModuleRuntime(EchoModule(), client=hub, clock=clock, send_retry_s=10.0)
    start = clock.monotonic()
    with pytest.raises(HubConnectionError):
        runtime.send("out", [frame(1)])
    assert clock.monotonic() - start <= 10.0
    assert runtime.counters["send_failures"] == 1
    assert hub.sent == []


class AckProbe(EchoModule):
    """Echo that records, while handling, how many messages the hub had been told were handled."""

    def __init__(self, hub: FakeHubClient, *, fail_on: str | None = None) -> None:
        super().__init__()
        self.hub = hub
        self.fail_on = fail_on
        self.acked_while_handling: list[int] = []

    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        self.acked_while_handling.append(len(self.hub.acknowledged))
        if self.fail_on in [item.key for item in items]:
            raise RuntimeError("module bug")
        super().handle_input(input_name, items, message)


class SelfAcking(EchoModule):
    """Keeps the messages it was given; acknowledges them only when told to."""

    acknowledges_inputs = True

    def __init__(self) -> None:
        super().__init__()
        self.kept: list[InboundMessage] = []

    def handle_input(self, input_name: str, items: list[Contract], message: InboundMessage) -> None:
        self.kept.append(message)


def run_with(module: EchoModule, hub: FakeHubClient) -> tuple[ModuleRuntime[Any], threading.Thread]:
    runtime = ModuleRuntime(module, client=hub, tick_interval=0.05)
    thread = threading.Thread(target=runtime.run)
    thread.start()
    wait_for(lambda: module.ctx is not None)
    return runtime, thread


def test_an_input_is_acknowledged_to_the_hub_only_after_the_module_handled_it() -> None:
    # given
    hub = FakeHubClient()
    module = AckProbe(hub)
    runtime, thread = run_with(module, hub)
    try:
        # when
        hub.push_input("in", [frame(i) for i in range(6)], max_batch=2)
        wait_for(lambda: len(hub.acknowledged) == 3)
        # then: each message was still unacknowledged while handled, and acknowledged in order
        assert module.acked_while_handling == [0, 1, 2]
        expected = [["s00000", "s00001"], ["s00002", "s00003"], ["s00004", "s00005"]]
        assert [decode_keys(m) for m in hub.acknowledged] == expected
        assert runtime.counters["messages_acknowledged"] == 3
    finally:
        runtime.request_stop("test over")
        thread.join(10)


def decode_keys(message: InboundMessage) -> list[str]:
    from edgeloop.runtime.codec import decode

    return [item.key for item in decode(message.body)]


def test_rejected_and_failed_inputs_are_acknowledged_so_they_do_not_come_back_forever() -> None:
    # given
    hub = FakeHubClient()
    module = AckProbe(hub, fail_on="s00002")
    runtime, thread = run_with(module, hub)
    try:
        # when: garbage, a message the module fails on, then a good one
        hub.push_raw_input("in", b"\xff\x00not json")
        hub.push_input("in", [frame(2)])
        hub.push_input("in", [frame(3)])
        wait_for(lambda: len(hub.acknowledged) == 3)
        # then
        assert runtime.counters["messages_rejected"] == 1
        assert runtime.counters["handle_input_errors"] == 1
        assert module.received == ["s00003"]
    finally:
        runtime.request_stop("test over")
        thread.join(10)


def test_held_inputs_stay_unacknowledged_until_resumed(running: Running) -> None:
    # given
    running.hub.call_method("pause")
    # when
    running.hub.push_input("in", [frame(1)])
    running.hub.push_input("in", [frame(2)])
    running.hub.call_method("getStats")  # a round trip through the runtime thread
    # then
    assert running.hub.acknowledged == []
    running.hub.call_method("resume")
    assert len(running.hub.acknowledged) == 2


def test_a_module_that_acknowledges_itself_decides_when() -> None:
    # given
    hub = FakeHubClient()
    module = SelfAcking()
    runtime, thread = run_with(module, hub)
    try:
        hub.push_input("in", [frame(1)])
        hub.push_input("in", [frame(2)])
        wait_for(lambda: len(module.kept) == 2)
        hub.call_method("getStats")
        assert hub.acknowledged == []
        # when
        assert module.ctx is not None
        module.ctx.acknowledge(module.kept[1])
        # then
        assert hub.acknowledged == [module.kept[1]]
    finally:
        runtime.request_stop("test over")
        thread.join(10)


def test_a_message_sent_again_with_the_same_id_is_handled_once(running: Running) -> None:
    # given: the hub delivers one message twice (an acknowledgement lost with a connection)
    message = InboundMessage(input_name="in", body=encode("in", [frame(7)])[0].body, message_id="m-7")
    assert running.hub._on_input is not None
    # when
    running.hub._on_input(message)
    running.hub._on_input(message)
    running.hub.push_input("in", [frame(8)])
    # then
    wait_for(lambda: running.module.received == ["s00007", "s00008"])
    wait_for(lambda: len(running.hub.acknowledged) == 3, what="every copy acknowledged")
    assert running.runtime.counters["duplicate_messages"] == 1


def test_a_copy_of_a_message_the_module_still_holds_is_acknowledged_only_with_it() -> None:
    # given: a module that acknowledges itself holds a message; the hub sends it again (its
    # acknowledgement was lost with a connection)
    hub = FakeHubClient()
    module = SelfAcking()
    runtime, thread = run_with(module, hub)
    message = InboundMessage(input_name="in", body=encode("in", [frame(7)])[0].body, message_id="m-7")
    try:
        assert hub._on_input is not None
        hub._on_input(message)
        wait_for(lambda: len(module.kept) == 1)
        # when
        hub._on_input(message)
        hub.call_method("getStats")  # a round trip through the runtime thread
        # then: a kill now must get the message again, so the copy is not acknowledged yet
        assert hub.acknowledged == []
        assert len(module.kept) == 1
        assert runtime.counters["duplicate_messages"] == 1
        # when: the module is done with the original
        assert module.ctx is not None
        module.ctx.acknowledge(module.kept[0])
        # then: both copies are acknowledged
        assert hub.acknowledged == [message, message]
        # and a copy arriving after that is acknowledged at once
        hub._on_input(message)
        wait_for(lambda: len(hub.acknowledged) == 3)
    finally:
        runtime.request_stop("test over")
        thread.join(10)
