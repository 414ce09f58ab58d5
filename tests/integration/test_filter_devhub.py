"""The filter as a process under the dev hub, with the real SDK: predictions routed in,
selections and summaries upstream, policy methods, twin rejections and a restart that keeps
the budget."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import HubFactory, ModuleFactory
from tests.support import wait_for

pytestmark = pytest.mark.integration

FEEDER = "tests.integration.filter_feeder"
POLICY = {
    "version": "it-1",
    "strategies": [
        {"name": "low", "rules": [{"type": "confidence_band", "bands": [[0, 0.9]]}], "limits": {"per_day": 3},
         "tags": ["low"], "priority": 4},
    ],
    "audit": {"share": 0},  # the module's random source is unseeded here: exact counts need it off
}  # fmt: skip


def manifest(state_dir: Path) -> dict[str, Any]:
    modules = {
        name: {
            "version": "1.0", "type": "docker", "status": "running", "restartPolicy": "always",
            "settings": {"image": f"${{MODULES.{name}}}", "createOptions": {}},
            "env": env,
        }
        for name, env in (("feeder", {}), ("filter", {"EDGELOOP_STATE_DIR": {"value": str(state_dir)}}))
    }  # fmt: skip
    routes = {
        "feed": "FROM /messages/modules/feeder/outputs/predictions "
        'INTO BrokeredEndpoint("/modules/filter/inputs/predictions")',
        "up": "FROM /messages/modules/filter/outputs/* INTO $upstream",
    }
    return {
        "modulesContent": {
            "$edgeAgent": {"properties.desired": {"schemaVersion": "1.1", "modules": modules}},
            "$edgeHub": {"properties.desired": {"schemaVersion": "1.1", "routes": routes,
                                                "storeAndForwardConfiguration": {"timeToLiveSecs": 7200}}},
            "feeder": {"properties.desired": {}},
            "filter": {"properties.desired": {"policy": POLICY, "summary_interval_s": 1}},
        }
    }  # fmt: skip


def upstream_items(hub: Any, schema: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in hub.upstream():
        body = message["body"]
        if isinstance(body, dict) and body.get("schema") == "edgeloop.batch/1":
            out.extend(item for item in body["items"] if body["item_schema"] == schema)
        elif isinstance(body, dict) and body.get("schema") == schema:
            out.append(body)
    return out


def test_filter_under_the_dev_hub(dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path) -> None:
    # given
    hub = dev_hub(manifest(tmp_path / "filter-state"))
    module_process(hub, "filter")
    module_process(hub, "feeder", package=FEEDER)
    hub.wait_connected("filter", inputs=True)
    hub.wait_connected("feeder")
    hub.wait_reported("filter", lambda r: r.get("filter", {}).get("policyVersion") == "it-1")

    # when: 10 predictions (5 under 0.9) and 2 errors
    assert hub.invoke("feeder", "send", {"count": 10, "errors": 2})["status"] == 200

    # then: the day's budget of 3 is selected, with strategy, reason, tags and trace context
    selected = wait_for(lambda: len(upstream_items(hub, "edgeloop.selected/1")) >= 3 and
                        upstream_items(hub, "edgeloop.selected/1"), what="three selections")  # fmt: skip
    assert [s["sample_id"] for s in selected] == ["s000000", "s000002", "s000004"]
    assert {(s["strategy"], tuple(s["tags"]), s["priority"]) for s in selected} == {("low", ("low",), 4)}
    assert selected[0]["reason"] == "low: confidence 0.5 in [0, 0.9)"
    # the select span continues each prediction's trace (s000002 came with trace id 2)
    assert selected[1]["traceparent"].split("-")[1] == f"{2:032x}"
    stats = wait_for(lambda: (s := hub.invoke("filter", "getStats")["payload"]["module"])["seen"] == 12 and s)
    assert stats["dropped_by_reason"] == {"over_budget": 2, "no_strategy_matched": 5, "error_status": 2}
    summaries = wait_for(lambda: upstream_items(hub, "edgeloop.summary/1"), what="a summary")
    assert summaries[0]["module"] == "filter"

    # when: a bad policy by method, then by twin
    bad_method = hub.invoke(
        "filter", "setPolicy", {"strategies": [{"name": "a", "rules": [{"type": "nope"}]}]}
    )
    mars = {"start": "08:00", "end": "09:00", "timezone": "Mars/Base"}
    hub.patch_desired("filter", {"policy": {"schedule": {"windows": [mars]}}})
    reported = hub.wait_reported("filter", lambda r: r.get("configError") is not None)
    # then: rejected with the path, and the policy in force stays
    assert bad_method["status"] == 400
    assert "policy.strategies.0.rules.0" in bad_method["payload"]["error"]
    assert "policy.schedule.windows.0.timezone" in reported["configError"]["reason"]
    assert hub.invoke("filter", "getPolicy")["payload"]["version"] == "it-1"

    # when: dryRun of a wider band over what was seen
    dry = hub.invoke("filter", "dryRun", {"policy": {"strategies": [
        {"name": "all", "rules": [{"type": "confidence_band", "bands": [[0, 1]]}]}]}})  # fmt: skip
    # then
    assert dry["status"] == 200
    assert dry["payload"]["selected_by_strategy"] == {"all": 10}


def test_budget_survives_a_restart_under_the_hub(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given: the day's budget spent, then the filter stopped (SIGTERM) and started again
    hub = dev_hub(manifest(tmp_path / "filter-state"))
    first = module_process(hub, "filter")
    module_process(hub, "feeder", package=FEEDER)
    hub.wait_connected("filter", inputs=True)
    hub.wait_connected("feeder")
    hub.invoke("feeder", "send", {"count": 6})
    wait_for(lambda: len(upstream_items(hub, "edgeloop.selected/1")) >= 3, what="three selections")
    assert first.stop() == 0
    assert (tmp_path / "filter-state" / "filter-state.json").is_file()
    module_process(hub, "filter")
    hub.wait_connected("filter", inputs=True)

    # when
    hub.invoke("feeder", "send", {"count": 6, "start": 100})
    stats = wait_for(lambda: (s := hub.invoke("filter", "getStats")["payload"]["module"])["seen"] == 6 and s)

    # then
    assert stats.get("selected_by_strategy", {}) == {}
    assert stats["dropped_by_reason"]["over_budget"] == 3


def test_filter_runs_with_the_deployment_manifest(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path, repo_root: Path
) -> None:
    # given: deployment.template.json as it is (routes and the filter's twin default); the
    # feeder plays the inference module
    hub = dev_hub(repo_root / "deployment.template.json")
    module_process(hub, "filter", env={"EDGELOOP_STATE_DIR": str(tmp_path / "state")})
    module_process(hub, "inference", package=FEEDER)
    hub.wait_connected("filter", inputs=True)
    hub.wait_connected("inference")
    reported = hub.wait_reported("filter", lambda r: r.get("filter", {}).get("policyVersion") == "default-2")

    # when: uncertain predictions (margin 0.1) arrive by the inferenceToFilter route
    assert hub.invoke("inference", "send", {"count": 8, "margin": 0.1})["status"] == 200

    # then: the default policy's uncertainty strategy takes its top share of the stream (5%:
    # one of eight frames, within its per-minute limit of 5)
    stats = wait_for(lambda: (s := hub.invoke("filter", "getStats")["payload"]["module"])["seen"] == 8 and s)
    assert stats["selected_by_strategy"]["uncertain"] == 1
    assert reported["config"]["policy"]["strategies"][0]["rules"][0]["type"] == "top_share"
    assert reported.get("configError") is None
    assert isinstance(reported["configVersion"], int)  # the manifest's desired properties applied
    assert reported["config"]["policy"]["strategies"][1]["rules"] == [
        {"type": "random", "p": 0.02, "drift_p": None, "seed": None}
    ]
    assert reported["filter"]["gates"] == {}
