"""Every module of the pipeline killed with SIGKILL while frames flow, then started again.

Capture takes a folder of a few hundred digit images at a steady rate; inference scores them with
a small ONNX model; the filter selects about 30 % by predicted class and drops the rest by reason
(a strategy whose budget is spent, no strategy matched); the uploader seals the selected samples
and uploads them to Azurite. Meanwhile capture, inference, filter and uploader are each killed
once, in an order and at moments drawn from ``EDGELOOP_RELIABILITY_SEED``, and started again.

Then, by sample id: every input file was announced by capture exactly once, across its kill;
every frame announced was scored;
every scored sample was decided, selected or dropped with the reason the policy owes it; every
sample owed a selection is in storage exactly once, opens with the cloud's key to the bytes
capture wrote, and was announced upstream; nothing else is in storage; and the filter's totals
add up: seen = scored = selected + dropped by reason.

It runs for both frame paths: encoded files on the samples volume (``frames.store: jpeg``, the
stored blob opens to the bytes capture wrote) and raw frames in the frame ring
(``frames.store: raw``, the blob is the frame encoded on claim and decodes to the pixels capture
read).

Counted across restarts: a killed capture goes on from the files whose references it had sent
(kept in its state folder after each send), so it takes again only what it had read and not
sent, under new sample ids, announced once. The one repeat its design allows is a batch the hub
took while the kill stopped capture from recording it (the kill came between the send and the
write of its progress): counted, and allowed at most once per capture kill. A redelivered frame
is scored again (a prediction repeated under the same id) and the filter counts the repeat as
``redelivered``, not as a second decision.
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devtools.azurite import Azurite
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.reliability.conftest import AreaLedger
from tests.reliability.pipeline_rig import MODULES, PipelineRig, Settled

pytestmark = pytest.mark.integration

SEED = int(os.environ.get("EDGELOOP_RELIABILITY_SEED", str(int(time.time()) % 100_000)))
FRAMES = 240
FPS = 20.0


@pytest.fixture(params=["jpeg", "raw"])
def rig(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    azurite: Azurite,
    cloud_private_key: Any,
) -> PipelineRig:
    return PipelineRig(
        tmp_path,
        dev_hub,
        module_process,
        azurite,
        cloud_private_key,
        frames=FRAMES,
        fps=FPS,
        frames_store=request.param,
    ).start()


def kill_each_module(rig: PipelineRig, rng: random.Random, flow_s: float) -> list[tuple[float, str]]:
    """Kill every module once, in a random order at random moments of the flow, and start it
    again after a random pause; returns (seconds into the flow, module) of each kill."""
    order = rng.sample(MODULES, len(MODULES))
    moments = sorted(rng.uniform(0.5, flow_s) for _ in order)
    started = time.monotonic()
    done: list[tuple[float, str]] = []
    for name, moment in zip(order, moments, strict=True):
        time.sleep(max(0.0, started + moment - time.monotonic()))
        rig.kill(name)
        done.append((round(time.monotonic() - started, 2), name))
        time.sleep(rng.uniform(0.0, 0.5))
        rig.restart(name)
    return done


def describe(result: Settled, kills: list[tuple[float, str]]) -> str:
    seen = result.observed
    copies = sum(seen.prediction_copies.values()) - len(seen.predictions)
    repeats = sum(len(batch) for batch in seen.repeated_batches())
    return (
        f"seed {SEED}; kills {kills}; files {len(result.files)}, frames announced {len(seen.frames)} "
        f"({repeats} announced again), "
        f"scored {len(seen.predictions)} (+{copies} repeated), selected {len(result.expected_selected)}, "
        f"stored {len(result.opened)}, dropped {dict(result.expected_dropped)}, totals {result.totals}, "
        f"prediction log {sum(result.predlog.values())} lines for {len(result.predlog)} samples"
    )


def test_every_module_killed_mid_stream_loses_nothing_and_the_counters_add_up(
    rig: PipelineRig, ledger: AreaLedger
) -> None:
    # given
    rng = random.Random(SEED)
    rig.stream()
    # when: frames flow while each module is killed (SIGKILL) and started again
    kills = kill_each_module(rig, rng, flow_s=FRAMES / FPS)
    result = rig.settle()
    seen = result.observed
    note = describe(result, kills)
    print(note)
    ledger.record(
        faults=sum(rig.kills.values()),
        inputs=len(seen.frames),
        lost=result.lost,
        note=f"seed {SEED}, frames {rig.frames_store}",
    )

    # then: capture announced every file once, across its kill; the only repeat allowed is one
    # batch per capture kill that the hub took before the kill let capture record it
    files = seen.files()
    assert set(result.files) <= set(files), f"never announced: {sorted(set(result.files) - set(files))[:10]}"
    assert set(files) <= set(result.files)
    repeated = seen.repeated_batches()
    assert len(repeated) <= rig.kills["capture"], f"{len(repeated)} batches again: {repeated[:5]}\n{note}"
    assert all(files[name] == 2 for batch in repeated for name in batch), f"{repeated}\n{note}"
    assert len(seen.frames) == len(result.files) + sum(len(batch) for batch in repeated), note
    assert all(n == 1 for n in seen.frame_copies.values()), "a frame reference was announced twice"
    # every frame announced was scored, and nothing else; a repeated score agrees with the first
    assert result.unscored == set(), f"announced, never scored: {sorted(result.unscored)[:10]}\n{note}"
    assert result.scored == result.announced
    assert seen.label_conflicts == set()
    assert all(p.get("status") == "ok" for p in seen.predictions.values())
    # ... on the path asked for
    assert all((f.get("raw") is not None) == (rig.frames_store == "raw") for f in seen.frames.values())
    # every sample owed a selection was selected, nothing else was
    assert set(seen.selected) == result.expected_selected, note
    # ... and is in storage exactly once, opening to the bytes capture wrote, and announced
    assert result.problems == []
    assert result.unstored == set(), f"selected, never stored: {sorted(result.unstored)[:10]}\n{note}"
    assert set(result.blobs) == result.expected_selected
    assert all(n == 1 for n in result.blobs.values())
    assert set(seen.uploaded) == result.expected_selected
    # the filter's totals add up: seen = scored = selected + dropped by reason
    totals = result.totals
    assert totals["seen"] == len(result.scored), note
    assert totals["selected_by_strategy"] == {"rare": len(result.expected_selected)}, note
    assert Counter(totals["dropped_by_reason"]) == result.expected_dropped, note
    assert totals["seen"] == sum(totals["selected_by_strategy"].values()) + sum(
        totals["dropped_by_reason"].values()
    )
    # a prediction repeated under the same id (a frame scored again) was recognised, not decided again
    assert totals["redelivered"] >= sum(seen.prediction_copies.values()) - len(seen.predictions), note
    assert result.lost == 0
