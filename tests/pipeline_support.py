"""Set-up shared by the trigger-pass tests that run on the scenario's digits: in-memory
containers, the scenario's frames and a labels file for all of them."""

from __future__ import annotations

import numpy as np
from edgeloop_cloud.config import CloudConfig
from edgeloop_cloud.pipeline import CloudServices
from edgeloop_cloud.trigger import TriggerPolicy
from edgeloop_demo.scenario import ScenarioConfig, build

from edgeloop.blobstore import MemoryContainer
from edgeloop.clock import FakeClock
from tests.unit.test_cloud_pipeline import KEY, XorOpener, _upload


def quick_trigger() -> TriggerPolicy:
    """A trigger that starts a run on 20 new labels, with no cool-down."""
    return TriggerPolicy(min_new_labels=20, cooldown_minutes=0)


def memory_services(config: CloudConfig, clock: FakeClock | None = None) -> CloudServices:
    """Services on in-memory containers with the stand-in envelope, all on one fake clock."""
    clock = clock or FakeClock()
    return CloudServices(
        data=MemoryContainer("data", clock=clock), models=MemoryContainer("models", clock=clock),
        runs=MemoryContainer("runs", clock=clock), opener=XorOpener(), signing_key=KEY, config=config,
        clock=clock,
    )  # fmt: skip


def scenario_frames(count: int) -> list[tuple[np.ndarray, str]]:
    """The first ``count`` base frames of the seed-7 scenario, with their labels."""
    scenario = build(ScenarioConfig(seed=7))
    return [(scenario.base.frames[i], str(int(scenario.base.labels[i]))) for i in range(count)]


def label_all(svc: CloudServices, frames: list[tuple[np.ndarray, str]], *, audit_every: int) -> None:
    """Upload the frames as samples ``s000``... (every ``audit_every``-th one an audit sample)
    and label them all in ``labels/batch-1.csv``."""
    rows = ["sample_id,label"]
    for n, (frame, label) in enumerate(frames):
        _upload(svc.data, f"s{n:03d}", frame, audit=n % audit_every == 0)
        rows.append(f"s{n:03d},{label}")
    svc.data.write("labels/batch-1.csv", "\n".join(rows).encode())
