"""The dev hub runs the manifest that iotedgedev generates, unchanged: stringified createOptions,
expanded images, the routes with priorities and TTLs. Probe modules stand in for the four
modules under their module ids and exercise every route of the deployment."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import PROBE
from tests.packaging_layout import MODULES, copy_layout, ensure_iotedgedev, genconfig, write_dotenv
from tests.support import wait_for

pytestmark = pytest.mark.integration


def records(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return [entry for entry in lines if entry["event"] == "input"]


@pytest.fixture(scope="module")
def generated_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = copy_layout(tmp_path_factory.mktemp("solution"))
    write_dotenv(root)
    genconfig(ensure_iotedgedev(), root, "deployment.template.json", "amd64")
    return root / "config" / "deployment.amd64.json"


def test_dev_hub_routes_every_flow_of_the_generated_manifest(
    generated_manifest: Path, dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path
) -> None:
    # given: the generated file as iotedgedev wrote it, and a probe per module id
    assert isinstance(
        json.loads(generated_manifest.read_text())["modulesContent"]["$edgeAgent"]["properties.desired"][
            "modules"
        ]["capture"]["settings"]["createOptions"],
        str,
    )
    hub = dev_hub(generated_manifest)
    received = {name: tmp_path / f"{name}.jsonl" for name in MODULES}
    for name in MODULES:
        module_process(
            hub, name, package=PROBE, env={"PROBE_RECORD": str(received[name]), "PROBE_SOURCE": name}
        )
    for name in MODULES:
        hub.wait_connected(name, inputs=name != "capture")

    # when: each module sends on its outputs
    sends = [("capture", "frames", 3), ("inference", "predictions", 2), ("filter", "selected", 1)]
    sends += [("filter", "summaries", 1), ("uploader", "uploaded", 1)]
    for module, output, count in sends:
        assert hub.invoke(module, "send", {"count": count, "output": output})["status"] == 200

    # then: the routes of deployment.template.json carried them
    got = {
        name: wait_for(lambda n=name: records(received[n]), what=f"input to {name}") for name in MODULES[1:]
    }
    wait_for(lambda: len(records(received["uploader"])) >= 3, what="selected and predictions at the uploader")
    assert {r["input"] for r in got["inference"]} == {"frames"}
    assert {r["input"] for r in got["filter"]} == {"predictions"}
    assert sorted(r["input"] for r in records(received["uploader"])) == [
        "predictions",
        "predictions",
        "selected",
    ]
    upstream = wait_for(lambda: len(hub.upstream()) >= 2 and hub.upstream(), what="two upstream messages")
    assert sorted((u["module"], u["output"]) for u in upstream) == [
        ("filter", "summaries"),
        ("uploader", "uploaded"),
    ]


def test_dev_hub_serves_the_generated_twins(generated_manifest: Path, dev_hub: HubFactory) -> None:
    # given
    generated = json.loads(generated_manifest.read_text())
    # when
    hub = dev_hub(generated_manifest)
    # then
    for name in MODULES:
        desired = hub.twin(name)["properties"]["desired"]
        expected = generated["modulesContent"][name]["properties.desired"]
        assert {k: v for k, v in desired.items() if not k.startswith("$")} == expected
