"""Restarts: inputs queued for a module that is down, and a hub restarted mid-stream."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import PROBE, manifest, route
from tests.integration.test_devhub import records, wait_for

pytestmark = pytest.mark.integration


def samples_by_message(record: Path) -> dict[str, set[str]]:
    """sample id -> the message ids it arrived in (QoS 1 may deliver one message twice)."""
    seen: dict[str, set[str]] = defaultdict(set)
    for entry in records(record):
        for sample in entry["samples"]:
            seen[sample].add(entry["message_id"])
    return seen


def test_module_restart_loses_no_queued_input(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given: b runs, then stops while a keeps sending
    hub = dev_hub(manifest(["a", "b"], {"ab": route("a", "b", "in")}))
    record = tmp_path / "b.jsonl"
    probe_env = {"PROBE_RECORD": str(record), "PROBE_SOURCE": "b"}
    receiver = module_process(hub, "b", package=PROBE, env=probe_env)
    module_process(hub, "a", package=PROBE, env={"PROBE_SOURCE": "a"})
    hub.wait_connected("b", inputs=True)
    hub.wait_connected("a")
    hub.invoke("a", "send", {"count": 10})
    wait_for(lambda: len(samples_by_message(record)) == 10, what="first ten")
    receiver.stop()

    # when: messages arrive for b while it is down, then b starts again
    hub.invoke("a", "send", {"count": 25, "start": 10})
    wait_for(lambda: hub.status()["modules"]["b"]["queued"] == 25, what="25 queued for b")
    module_process(hub, "b", package=PROBE, env=probe_env)

    # then
    seen = wait_for(
        lambda: len(samples_by_message(record)) == 35 and samples_by_message(record), what="all 35"
    )
    assert sorted(seen) == [f"a-{i:06d}" for i in range(35)]
    assert all(len(ids) == 1 for ids in seen.values())
    wait_for(lambda: hub.status()["modules"]["b"]["queued"] == 0, what="b's queue to drain")


@pytest.mark.parametrize("crash", [False, True], ids=["sigterm", "sigkill"])
def test_hub_restart_mid_stream_loses_nothing(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path, crash: bool
) -> None:
    # given: a streams to b
    hub = dev_hub(manifest(["a", "b"], {"ab": route("a", "b", "in")}))
    record = tmp_path / "b.jsonl"
    module_process(hub, "b", package=PROBE, env={"PROBE_RECORD": str(record), "PROBE_SOURCE": "b"})
    module_process(
        hub, "a", package=PROBE, env={"PROBE_SOURCE": "a", "PROBE_RECORD": str(tmp_path / "a.jsonl")}
    )
    hub.wait_connected("b", inputs=True)
    hub.wait_connected("a")
    hub.invoke("a", "send", {"count": 60, "interval": 0.03})
    wait_for(lambda: len(samples_by_message(record)) >= 15, what="the stream to flow")

    # when
    hub.restart(crash=crash)

    # then
    seen = wait_for(
        lambda: len(samples_by_message(record)) == 60 and samples_by_message(record), what="all 60"
    )
    assert sorted(seen) == [f"a-{i:06d}" for i in range(60)]
    wait_for(lambda: records(tmp_path / "a.jsonl", "sent"), what="the sender to finish")
    resent = {r["sample"] for r in records(tmp_path / "a.jsonl", "retry")}
    twice = {sample for sample, ids in seen.items() if len(ids) > 1}
    assert twice <= resent, "the hub delivered one sample in two different messages"
