"""The sender's queue: sources wait for room rather than drop, give up only when stopping, and
references from several threads all arrive, each thread's in its order."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from edgeloop_capture.sender import FrameSender

from edgeloop.contracts import FrameRef

AT = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def ref(source: str, seq: int) -> FrameRef:
    return FrameRef(
        sample_id=f"{source}-{seq}", source_id=source, seq=seq, kind="vector", vector=[1.0], captured_at=AT
    )


class Recorder:
    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.batches: list[list[FrameRef]] = []

    def send(self, refs: object) -> None:
        assert isinstance(refs, list)
        time.sleep(self.delay_s)
        self.batches.append(list(refs))

    def sent(self) -> list[FrameRef]:
        return [r for batch in self.batches for r in batch]


def test_a_full_queue_holds_the_source_until_the_sender_makes_room() -> None:
    # given: a queue of 2, full, its sender not started
    rec = Recorder()
    sender = FrameSender(rec.send, batch_max=1, queue_size=2)
    assert sender.put(ref("a", 0), lambda: False)
    assert sender.put(ref("a", 1), lambda: False)
    result: list[bool] = []
    putter = threading.Thread(target=lambda: result.append(sender.put(ref("a", 2), lambda: False)))
    # when: a third comes
    putter.start()
    putter.join(0.3)
    # then: it waits, counted
    assert putter.is_alive()
    assert sender.counters["backpressure_waits"] == 1
    # and goes once the sender takes one off
    sender.start()
    putter.join(2.0)
    assert result == [True]
    sender.stop()
    assert [r.seq for r in rec.sent()] == [0, 1, 2]
    assert sender.stats()["queued"] == 0


def test_a_source_waiting_for_room_gives_up_when_stopping() -> None:
    rec = Recorder()
    sender = FrameSender(rec.send, queue_size=1)
    assert sender.put(ref("a", 0), lambda: False)
    stopping = threading.Event()
    result: list[bool] = []
    putter = threading.Thread(target=lambda: result.append(sender.put(ref("a", 1), stopping.is_set)))
    putter.start()
    putter.join(0.2)
    assert putter.is_alive()
    stopping.set()
    putter.join(2.0)
    assert result == [False]
    assert sender.counters["unsent_at_stop"] == 1
    assert sender.stats()["queued"] == 1  # the first one is still there, to be sent


def test_references_of_several_threads_all_go_each_in_order() -> None:
    # given: a small queue and a slow hub, so sources wait for room
    rec = Recorder(delay_s=0.002)
    sender = FrameSender(rec.send, batch_max=8, batch_window_s=0.005, queue_size=4)
    sender.start()
    per_source = 150

    def source(name: str) -> None:
        for seq in range(per_source):
            assert sender.put(ref(name, seq), lambda: False)

    threads = [threading.Thread(target=source, args=(name,)) for name in "abc"]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    deadline = time.monotonic() + 10
    while len(rec.sent()) < 3 * per_source and time.monotonic() < deadline:
        time.sleep(0.01)
    sender.stop()
    # then: nothing lost or doubled, and each source's references in their order
    sent = rec.sent()
    assert len(sent) == 3 * per_source
    for name in "abc":
        assert [r.seq for r in sent if r.source_id == name] == list(range(per_source))
    assert all(len(batch) <= 8 for batch in rec.batches)
    assert sender.counters["sent"] == 3 * per_source
