"""The store stage's hand-off: order, back-pressure, drain, close, failures."""

from __future__ import annotations

import threading
import time

import pytest
from edgeloop_capture.stage import Stage


def never() -> bool:
    return False


def test_items_are_processed_once_each_in_the_order_handed_on() -> None:
    seen: list[int] = []
    stage: Stage[int] = Stage("t", seen.append, size=3)
    for i in range(200):
        assert stage.put(i, never)
    stage.drain()
    assert seen == list(range(200))
    stage.close()


def test_a_full_stage_holds_the_producer_until_it_is_half_empty() -> None:
    gate = threading.Event()
    started = threading.Event()

    def slow(item: int) -> None:
        started.set()
        gate.wait(5)

    stage: Stage[int] = Stage("t", slow, size=4)
    assert stage.put(0, never)  # taken by the stage's thread, which blocks on the gate
    assert started.wait(5)
    for i in range(1, 5):
        assert stage.put(i, never)  # the queue: 4 of 4
    stopped_at: list[bool] = []
    thread = threading.Thread(target=lambda: stopped_at.append(stage.put(5, never)))
    thread.start()
    time.sleep(0.2)
    assert thread.is_alive(), "a put into a full stage must wait"
    gate.set()
    thread.join(5)
    assert stopped_at == [True]
    stage.drain()
    stage.close()


def test_a_put_into_a_full_stage_gives_up_when_the_caller_stops() -> None:
    gate = threading.Event()

    def blocked(item: int) -> None:
        gate.wait(5)

    stage: Stage[int] = Stage("t", blocked, size=1)
    assert stage.put(0, never)
    time.sleep(0.05)
    assert stage.put(1, never)
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    assert stage.put(2, stop.is_set) is False
    gate.set()
    stage.close()


def test_drain_waits_for_the_item_being_processed() -> None:
    done: list[int] = []

    def slow(item: int) -> None:
        time.sleep(0.1)
        done.append(item)

    stage: Stage[int] = Stage("t", slow)
    stage.put(1, never)
    stage.drain()
    assert done == [1]
    stage.close()


def test_close_processes_what_is_queued_and_refuses_more() -> None:
    seen: list[int] = []
    gate = threading.Event()

    def held(item: int) -> None:
        gate.wait(5)
        seen.append(item)

    stage: Stage[int] = Stage("t", held, size=8)
    for i in range(5):
        stage.put(i, never)
    closer = threading.Thread(target=stage.close)
    closer.start()
    time.sleep(0.05)
    gate.set()
    closer.join(5)
    assert seen == [0, 1, 2, 3, 4]
    assert stage.put(9, never) is False


def test_an_item_that_fails_is_logged_and_the_stage_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[int] = []

    def picky(item: int) -> None:
        if item == 2:
            raise RuntimeError("bad item")
        seen.append(item)

    stage: Stage[int] = Stage("t", picky)
    for i in range(5):
        stage.put(i, never)
    stage.drain()
    stage.close()
    assert seen == [0, 1, 3, 4]
    assert "stage t failed on an item" in caplog.text


def test_a_stage_needs_room_for_one_item() -> None:
    with pytest.raises(ValueError, match="size must be at least 1"):
        Stage("t", lambda item: None, size=0)
