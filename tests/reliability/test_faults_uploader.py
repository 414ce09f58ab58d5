"""Faults around the uploader, as processes: the uploader killed with SIGKILL at random points,
Azurite stopped and restarted, the dev hub restarted mid-run.

After each, every sample the feeder handed to the hub is in storage exactly once, opens with the
cloud's key to the bytes written, and was announced upstream. Each runs for both frame paths:
sample files (``jpeg``) and raw frames the uploader encodes on claim (``raw``: the blob decodes
to the pixels written). The Azurite outage lasts
``EDGELOOP_RELIABILITY_OUTAGE_S`` seconds (default 15 to keep CI short; the issue asks for a
minute: ``EDGELOOP_RELIABILITY_OUTAGE_S=60``).
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from edgeloop.devtools.azurite import ACCOUNT_KEY, Azurite
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.reliability.conftest import AreaLedger
from tests.reliability.rig import Settled, UploaderRig

pytestmark = pytest.mark.integration

OUTAGE_S = float(os.environ.get("EDGELOOP_RELIABILITY_OUTAGE_S", "15"))
SEED = int(os.environ.get("EDGELOOP_RELIABILITY_SEED", str(int(time.time()) % 100_000)))


@pytest.fixture(params=["jpeg", "raw"])
def rig(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    dev_hub: HubFactory,
    module_process: ModuleFactory,
    azurite: Azurite,
    cloud_private_key: Any,
) -> UploaderRig:
    return UploaderRig(
        tmp_path, dev_hub, module_process, azurite, cloud_private_key, frames_store=request.param
    ).start()


def assert_delivered(result: Settled, count: int, ledger: AreaLedger, *, faults: int, note: str) -> None:
    """Everything fed is stored once, opens with the cloud key to the bytes written, and was
    announced upstream."""
    ledger.record(faults=faults, inputs=count, lost=result.lost, note=note)
    assert len(result.fed) == count, f"the feeder handed over {len(result.fed)} of {count}"
    assert result.problems == []
    assert result.lost_after_acceptance == 0, (
        f"accepted, then lost: {sorted(result.accepted - result.opened)}"
    )
    assert result.lost == 0, (
        f"lost {result.lost} (never reached the outbox: {result.lost_in_flight}): "
        f"{sorted(set(result.fed) - result.opened)[:10]}"
    )
    assert result.duplicated == 0
    assert result.unannounced == 0, f"not announced: {sorted(set(result.fed) - set(result.announced))[:10]}"


def assert_no_secret_leaked(rig: UploaderRig, secrets: list[str]) -> None:
    reported = str(rig.hub.twin("uploader")["properties"]["reported"])
    logs = rig.logs() + rig.hub.log_tail(100_000)
    for secret in secrets:
        assert secret not in reported, "a secret is in the uploader's reported properties"
        assert secret not in logs, "a secret is in a module's or the hub's output"


def test_uploader_killed_at_random_points_loses_and_duplicates_nothing(
    rig: UploaderRig, ledger: AreaLedger
) -> None:
    # given
    rng = random.Random(SEED)
    count, kills = 200, 3
    # when: samples flow while the uploader is killed (SIGKILL) and restarted, three times
    rig.feed(count, interval=0.015)
    for _ in range(kills):
        time.sleep(rng.uniform(0.3, 1.0))
        rig.kill("uploader")
        time.sleep(rng.uniform(0.0, 0.5))
        rig.restart("uploader")
    result = rig.settle(count)
    # then
    assert_no_secret_leaked(rig, [ACCOUNT_KEY])
    assert_delivered(result, count, ledger, faults=rig.kills, note=f"seed {SEED}")


def test_uploader_stopped_gracefully_mid_run_loses_and_duplicates_nothing(
    rig: UploaderRig, ledger: AreaLedger
) -> None:
    # given
    rng = random.Random(SEED + 1)
    count, stops = 200, 3
    # when: samples flow while the uploader is stopped (SIGTERM, as docker stop) and started again
    rig.feed(count, interval=0.015)
    for _ in range(stops):
        time.sleep(rng.uniform(0.3, 1.0))
        rig.procs["uploader"].stop()
        rig.kills += 1
        time.sleep(rng.uniform(0.0, 0.5))
        rig.restart("uploader")
    result = rig.settle(count)
    # then
    assert_delivered(result, count, ledger, faults=rig.kills, note=f"seed {SEED}")


def test_azurite_outage_then_return_loses_nothing(rig: UploaderRig, ledger: AreaLedger) -> None:
    # given
    count = 100
    rig.feed(count, interval=0.02)
    time.sleep(0.7)
    # when: storage goes away for a while, then returns
    rig.azurite.stop()
    time.sleep(OUTAGE_S)
    rig.azurite.start()
    result = rig.settle(count, timeout=60 + OUTAGE_S)
    # then
    assert_delivered(result, count, ledger, faults=1, note=f"outage {OUTAGE_S:g} s")
    assert_no_secret_leaked(rig, [ACCOUNT_KEY])


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_dev_hub_restarted_mid_run_loses_nothing(rig: UploaderRig, ledger: AreaLedger, crash: bool) -> None:
    # given
    count = 120
    rig.feed(count, interval=0.02)
    time.sleep(0.8)
    # when
    rig.hub.restart(crash=crash)
    result = rig.settle(count)
    # then
    assert_delivered(result, count, ledger, faults=1, note="hub restarts")
