"""EdgeLoop's cloud side as an Azure Functions app (Python v2 programming model).

- ``on_upload`` (blob trigger on the data container): a sealed sample or a labels file arrived;
  run one trigger pass (the policy decides whether to train).
- ``retrain_timer`` (timer): a trigger pass on a schedule, so age and drift rules fire even
  when nothing is uploaded.
- ``rollout_timer`` (timer): move the champion's staged rollout one step (canary, fleet,
  rollback), when an IoT Hub connection is configured.

Every function calls the plain library in ``edgeloop_cloud``; the same code runs locally as
``edgeloop cloud trigger|train|gate|rollout``. App settings: see ``edgeloop_cloud.factory``
(``EDGELOOP_STORAGE_CONNECTION_STRING`` doubles as the blob trigger's connection), plus
``EDGELOOP_TRIGGER_SCHEDULE`` and ``EDGELOOP_ROLLOUT_SCHEDULE`` (NCRONTAB).
"""

from __future__ import annotations

import json
import logging
import os

import azure.functions as func
from edgeloop_cloud.factory import services_from_env
from edgeloop_cloud.pipeline import run_trigger_once

app = func.FunctionApp()
log = logging.getLogger("edgeloop.functions")

#: Only these uploads can change the trigger's verdict.
_RELEVANT = (".elenv", ".csv", ".jsonl")


def _trigger_pass() -> None:
    outcome = run_trigger_once(services_from_env())
    log.info("trigger pass: %s", json.dumps(outcome.as_dict(), default=str))


@app.function_name("on_upload")
@app.blob_trigger(arg_name="blob", path="data/{name}", connection="EDGELOOP_STORAGE_CONNECTION_STRING")
def on_upload(blob: func.InputStream) -> None:
    name = blob.name or ""
    if not name.endswith(_RELEVANT) or "/labelling/" in name or name.startswith("data/predictions/"):
        return
    _trigger_pass()


@app.function_name("retrain_timer")
@app.timer_trigger(arg_name="timer", schedule="%EDGELOOP_TRIGGER_SCHEDULE%", run_on_startup=False)
def retrain_timer(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.info("retrain timer is past due; running now")
    _trigger_pass()


@app.function_name("rollout_timer")
@app.timer_trigger(arg_name="timer", schedule="%EDGELOOP_ROLLOUT_SCHEDULE%", run_on_startup=False)
def rollout_timer(timer: func.TimerRequest) -> None:
    connection = os.environ.get("EDGELOOP_IOTHUB_CONNECTION_STRING", "")
    if not connection:
        log.info("EDGELOOP_IOTHUB_CONNECTION_STRING is not set; no rollout")
        return
    from edgeloop_cloud.iothub import IoTHubTwinService
    from edgeloop_cloud.rollout_job import rollout_step

    state = rollout_step(services_from_env(), IoTHubTwinService(connection))
    log.info("rollout step: %s", json.dumps(state, default=str))
