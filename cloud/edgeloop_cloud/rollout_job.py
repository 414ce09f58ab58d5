"""The rollout as a resumable job: each call moves the champion's rollout one step.

The Functions app's timer (and ``edgeloop cloud rollout --staged``) call ``rollout_step``; the
state lives in the runs container (``<model>/rollouts/<version>.json``), so a restart resumes
where the last step left off. When a rollout is rolled back, the champion alias goes back to
the previous version (with the ETag condition), so the registry names what devices run.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from edgeloop_cloud.errors import BlobNotFoundError
from edgeloop_cloud.pipeline import CloudServices
from edgeloop_cloud.rollout import RolloutController, RolloutState, TwinService, desired_model, state_recorder

log = logging.getLogger(__name__)


def rollout_step(svc: CloudServices, service: TwinService) -> dict[str, Any] | None:
    """Start or advance the rollout of the current champion; None when there is none."""
    name, registry, cfg = svc.config.model_name, svc.registry, svc.config.rollout
    champion = registry.champion(name)
    if champion is None:
        return None
    target = desired_model(registry, champion, sas_hours=cfg.sas_hours)
    previous_version = champion.doc.get("previous_version")
    previous = (
        desired_model(registry, registry.release(name, previous_version), sas_hours=cfg.sas_hours)
        if previous_version
        else None
    )
    controller = RolloutController(service, cfg, clock=svc.clock, record=state_recorder(svc.runs))
    try:
        saved = json.loads(svc.runs.read(f"{name}/rollouts/{champion.version}.json")[0])
    except BlobNotFoundError:
        saved = None
    if saved is None:
        state = controller.start(target, previous)
    else:
        state = RolloutState.resume(saved, target, previous)
        controller.step(state)
    if state.stage in ("rolled_back", "timed_out") and previous_version:
        reason = f"rollout of {champion.version} {state.stage}: {state.history[-1] if state.history else ''}"
        if registry.promote(name, previous_version, expected=champion, reason=reason):
            log.warning("champion of %s moved back to %s: %s", name, previous_version, reason)
    return state.as_dict()
