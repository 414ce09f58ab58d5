"""Capture's janitor while the wall clock jumps: a sample lives at least its TTL in real time.

The janitor deletes unclaimed samples older than the TTL (by their capture time). A wall clock
that jumps a day forward must not age every fresh sample at once (the uploader may be about to
claim them); one that jumps back must not keep old samples forever.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.reliability.conftest import AreaLedger
from tests.unit.test_capture_janitor import Volume

TTL_S = 600.0


def test_a_forward_jump_does_not_expire_fresh_samples_at_once(tmp_path: Path, ledger: AreaLedger) -> None:
    # given: samples captured in the last minutes, and a janitor that has run before
    volume = Volume(tmp_path)
    janitor = volume.janitor(ttl_s=TTL_S)
    janitor.run_once()
    paths = [volume.sample() for _ in range(5)]
    volume.clock.advance(30)
    # when: the wall clock jumps a day forward (NTP after a cold boot)
    volume.clock.set_wall(volume.clock.now() + timedelta(days=1))
    first = janitor.run_once()
    ledger.record(faults=1, inputs=len(paths), lost=sum(not p.exists() for p in paths), note="janitor jumps")
    # then: nothing fresh was dropped ...
    assert first.dropped == {}
    assert all(p.exists() for p in paths)
    # ... and once the TTL has passed in real time, the unclaimed samples expire as usual
    volume.clock.advance(TTL_S + 60)
    later = janitor.run_once()
    assert later.dropped == {"ttl": 5}


def test_a_backward_jump_keeps_samples_longer_but_the_byte_budget_still_holds(
    tmp_path: Path, ledger: AreaLedger
) -> None:
    # given: a budget of ten samples
    volume = Volume(tmp_path)
    janitor = volume.janitor(ttl_s=TTL_S, max_bytes=10 * 100)
    janitor.run_once()
    early = [volume.sample() for _ in range(3)]
    # when: the wall clock goes back a day, the TTL passes in real time, and capture goes on
    volume.clock.set_wall(volume.clock.now() - timedelta(days=1))
    volume.clock.advance(TTL_S + 60)
    later = [volume.sample() for _ in range(12)]
    result = janitor.run_once()
    ledger.record(faults=1, inputs=len(early) + len(later), note="janitor jumps")
    # then: nothing was taken for its age early, the budget is kept, the oldest going first
    assert result.dropped.get("ttl", 0) == 0
    assert janitor.stats()["bytes"] <= 10 * 100
    assert sum(p.exists() for p in [*early, *later]) == 10
