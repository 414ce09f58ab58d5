"""A user's own app under the dev hub, traced with OpenTelemetry: EdgeLoop's span processor turns
its ``inference`` spans into predictions sent with the real SDK (one a message, or several in a
batch), routed like the inference module's, each carrying its span's trace context; the real
filter selects them and its select span continues each span's trace."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from edgeloop.contracts import Prediction
from edgeloop.runtime.codec import decode_each
from tests.integration.conftest import HubFactory, ModuleFactory
from tests.integration.modules.manifests import manifest
from tests.integration.test_filter_devhub import upstream_items
from tests.support import wait_for

pytestmark = pytest.mark.integration

APP = "tests.integration.modules.otel_app"
COUNT = 5


def at_least(count: int, items: list[Any]) -> list[Any] | None:
    return items if len(items) >= count else None


def recorded_spans(record: Path) -> dict[str, str]:
    """The app's record: each inference span's sample id and traceparent."""
    return {s["sample_id"]: s["traceparent"] for s in map(json.loads, record.read_text().splitlines())}


def upstream_predictions(hub: Any) -> list[tuple[dict[str, Any], Prediction]]:
    """Each prediction upstream with the message it came in, whatever the message's shape."""
    found = []
    for entry in hub.upstream():
        items, rejected = decode_each(json.dumps(entry["body"]))
        assert rejected == [], rejected
        found.extend((entry, item) for item in items if isinstance(item, Prediction))
    return found


@pytest.mark.parametrize("max_batch", [1, 4])
def test_inference_spans_of_an_app_arrive_as_predictions_with_their_trace_context(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path, max_batch: int
) -> None:
    # given: the app's predictions output routed upstream, as the hub records it
    hub = dev_hub(manifest(["app"], {"up": "FROM /messages/modules/app/outputs/predictions INTO $upstream"}))
    record = tmp_path / "spans.jsonl"
    env = {"OTEL_APP_RECORD": str(record), "OTEL_APP_COUNT": str(COUNT), "OTEL_APP_MAX_BATCH": str(max_batch)}
    # when: the app emits inference spans, one other span and one bad inference span
    app = module_process(hub, "app", package=APP, env=env)
    assert app.wait(60) == 0, app.log()[-3000:]
    found = wait_for(lambda: at_least(COUNT, upstream_predictions(hub)), 30, f"{COUNT} predictions upstream")
    # then: one prediction per inference span, with the span's fields and its traceparent
    spans = recorded_spans(record)
    assert sorted(p.sample_id for _, p in found) == sorted(spans)
    for entry, prediction in found:
        assert entry["system"]["contentType"] == "application/json"
        assert entry["system"]["connectionModuleId"] == "app"
        assert entry["output"] == "predictions"
        n = int(prediction.sample_id.removeprefix("app-"))
        assert prediction.model_name == "app-model"
        assert prediction.model_version == str(n + 1)
        assert prediction.confidence == pytest.approx(0.25 + n / 10)
        assert prediction.label == f"class-{n}"
        assert prediction.frame.file_ref == f"cam/{n:03d}.jpg"
        assert prediction.frame.source_id == "app-cam"
        assert prediction.traceparent == spans[prediction.sample_id]
    messages = {id(entry): entry for entry, _ in found}.values()
    assert max(len(decode_each(json.dumps(m["body"]))[0]) for m in messages) <= max_batch
    if max_batch == 1:  # a message of its own: the properties name its span's trace
        for entry, prediction in found:
            assert entry["properties"]["traceparent"] == spans[prediction.sample_id]
            assert entry["properties"]["sample_id"] == prediction.sample_id
    else:  # the spans ended together, so the processor packed them together
        assert len(messages) < COUNT
    # and the span without model_version was dropped with the reason, not sent
    assert "span attribute 'model_version' is missing" in app.log()


@pytest.mark.parametrize("max_batch", [1, 4])
def test_the_real_filter_selects_an_apps_span_predictions_and_continues_their_traces(
    dev_hub: HubFactory, module_process: ModuleFactory, tmp_path: Path, max_batch: int
) -> None:
    # given: the app's predictions routed to the filter, which selects every one
    policy = {
        "version": "otel-it",
        "audit": {"share": 0},  # no random audit draw: every prediction goes to the "all" strategy
        "strategies": [{"name": "all", "rules": [{"type": "every_nth", "n": 1}]}],
    }
    routes = {
        "toFilter": "FROM /messages/modules/app/outputs/predictions "
        'INTO BrokeredEndpoint("/modules/filter/inputs/predictions")',
        "up": "FROM /messages/modules/filter/outputs/selected INTO $upstream",
    }  # fmt: skip
    hub = dev_hub(manifest(["app", "filter"], routes, desired={"filter": {"policy": policy}}))
    module_process(hub, "filter", env={"EDGELOOP_STATE_DIR": str(tmp_path / "filter-state")})
    hub.wait_connected("filter", inputs=True)
    hub.wait_reported("filter", lambda r: r.get("filter", {}).get("policyVersion") == "otel-it")
    record = tmp_path / "spans.jsonl"
    env = {"OTEL_APP_RECORD": str(record), "OTEL_APP_COUNT": str(COUNT), "OTEL_APP_MAX_BATCH": str(max_batch)}
    # when
    app = module_process(hub, "app", package=APP, env=env)
    assert app.wait(60) == 0, app.log()[-3000:]
    selected = wait_for(
        lambda: at_least(COUNT, upstream_items(hub, "edgeloop.selected/1")), 30, f"{COUNT} selections"
    )
    # then: each of the app's span predictions is selected, in the trace of the app's span
    spans = recorded_spans(record)
    assert sorted(s["sample_id"] for s in selected) == sorted(spans)
    for item in selected:
        prediction, span = item["prediction"], spans[item["sample_id"]]
        assert (item["strategy"], prediction["model_name"]) == ("all", "app-model")
        assert prediction["frame"]["file_ref"] == f"cam/{int(item['sample_id'].removeprefix('app-')):03d}.jpg"
        assert prediction["traceparent"] == span
        _, trace_id, span_id, _ = item["traceparent"].split("-")
        assert trace_id == span.split("-")[1]  # the app's trace goes on...
        # ...with the app's span as the parent still: a filter with no span exporter makes none
        assert span_id == span.split("-")[2]
