"""The batcher waits for a fuller batch only while items come faster than it processes them:
a paced input runs at once, a burst still fills its runs."""

from __future__ import annotations

import threading
import time

from edgeloop_inference.batcher import MicroBatcher


class _Slow:
    """A ``process`` that takes ``seconds`` a batch and notes each batch and when it began."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.batches: list[list[int]] = []
        self.started: list[float] = []
        self.ran = threading.Event()

    def __call__(self, batch: list[int]) -> None:
        self.started.append(time.monotonic())
        time.sleep(self.seconds)
        self.batches.append(list(batch))
        self.ran.set()


def _primed(process: _Slow, *, max_batch: int, max_wait_s: float) -> MicroBatcher[int]:
    """A started batcher that has run one full batch of items that came one right after another."""
    batcher: MicroBatcher[int] = MicroBatcher(process, max_batch=max_batch, max_wait_s=max_wait_s)
    for i in range(max_batch):
        batcher.submit(i)
    batcher.start()
    deadline = time.monotonic() + 5.0
    while len(process.batches) < 1 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.batches == [list(range(max_batch))]
    return batcher


def test_an_item_coming_after_a_pause_longer_than_a_run_goes_at_once() -> None:
    # given: runs of 20 ms, a 5 s wait for a full batch, and items that came back to back
    process = _Slow(0.02)
    batcher = _primed(process, max_batch=4, max_wait_s=5.0)
    assert not batcher.keeping_up()
    # when: the next item comes after a pause far longer than a run (a paced input)
    time.sleep(0.5)
    submitted = time.monotonic()
    batcher.submit(4)
    assert batcher.keeping_up()
    # then: it runs alone at once instead of waiting up to 5 s for three more
    deadline = submitted + 2.0
    while len(process.batches) < 2 and time.monotonic() < deadline:
        time.sleep(0.005)
    assert process.batches[1:] == [[4]]
    assert process.started[1] - submitted < 1.0
    assert batcher.eager_batches == 1
    assert batcher.stop(timeout=5) == []


def test_items_coming_faster_than_a_run_wait_for_a_full_batch() -> None:
    # given: runs of 200 ms, a 2 s wait for a full batch
    process = _Slow(0.2)
    batcher: MicroBatcher[int] = MicroBatcher(process, max_batch=4, max_wait_s=2.0)
    for i in range(4):
        batcher.submit(i)
    batcher.start()
    # when: four more come 0.1 s apart while the first batch runs and after
    for i in range(4, 8):
        time.sleep(0.1)
        batcher.submit(i)
    deadline = time.monotonic() + 5.0
    while sum(len(b) for b in process.batches) < 8 and time.monotonic() < deadline:
        time.sleep(0.01)
    # then: the worker did not run the first of them alone; it waited and ran the four together
    assert process.batches == [[0, 1, 2, 3], [4, 5, 6, 7]]
    assert batcher.eager_batches == 0
    assert batcher.stop(timeout=5) == []


def test_the_frames_of_one_message_still_run_together_when_running_at_once() -> None:
    # given: a batcher keeping up (an item, then a long pause)
    process = _Slow(0.01)
    batcher = _primed(process, max_batch=4, max_wait_s=5.0)
    time.sleep(0.3)
    # when: a message of six frames comes
    batcher.submit_many([10, 11, 12, 13, 14, 15])
    deadline = time.monotonic() + 2.0
    while sum(len(b) for b in process.batches) < 10 and time.monotonic() < deadline:
        time.sleep(0.005)
    # then: a full run, then the rest at once (not after the 5 s wait)
    assert process.batches[1:] == [[10, 11, 12, 13], [14, 15]]
    assert batcher.stop(timeout=5) == []
