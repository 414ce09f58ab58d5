"""Rollout: tell devices' inference modules which model to run, canary first, and watch them.

The inference module reads the ``model`` key of its desired properties (name, version, url,
sha256, signature), fetches and verifies the file, and reports ``model.status`` (``loaded``,
``failed``, ``loading``...) with the sha256 it serves and, after a failure, ``model.failed``.

Three ways out:

- one device, or a list, through a ``TwinService`` (the IoT Hub service SDK ``azure-iot-hub``,
  the dev hub's control API, or the in-memory one for tests);
- a fleet as a layered deployment (``layered_deployment``) for
  ``az iot edge deployment create --layered``, with a target condition and metrics queries
  that count ready and failed devices;
- staged by ``RolloutController``: the canary devices (a tag) first, the rest only when every
  canary reports the new model loaded, and every updated device back to the previous model
  when any reports failure.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from edgeloop.clock import Clock, SystemClock
from edgeloop_cloud.errors import RolloutError
from edgeloop_cloud.registry import Champion, Registry
from edgeloop_cloud.storage import BlobContainer

log = logging.getLogger(__name__)


class RolloutConfig(BaseModel):
    """Where and how promoted models are rolled out."""

    model_config = ConfigDict(extra="forbid")

    module_id: str = Field(default="inference", description="Module whose twin receives the model.")
    twin_key: str = Field(default="model", description="Desired-properties key the module reads.")
    sas_hours: float = Field(default=24 * 30, gt=0, description="Lifetime of the read-only SAS in the URL.")
    target_condition: str = Field(
        default="tags.edgeloop.model='digits'", description="IoT Hub condition selecting the fleet."
    )
    canary_condition: str = Field(
        default="tags.edgeloop.ring='canary'", description="Condition (ANDed with the target) for canaries."
    )
    deployment_priority: int = Field(default=20, ge=0, description="Priority of the layered deployment.")
    timeout_minutes: float = Field(
        default=30, gt=0, description="A stage whose devices do not all report within this is rolled back."
    )


class TwinService(Protocol):
    """The service side of module twins: what a rollout needs from IoT Hub."""

    def devices(self, condition: str) -> list[str]:
        """Device ids whose twins match an IoT Hub condition on tags (``tags.x='y' AND ...``)."""
        ...

    def set_desired(self, device_id: str, module_id: str, patch: dict[str, Any]) -> None:
        """Merge ``patch`` into the module twin's desired properties."""
        ...

    def reported(self, device_id: str, module_id: str) -> dict[str, Any]:
        """The module twin's reported properties."""
        ...


def desired_model(registry: Registry, champion: Champion, *, sas_hours: float) -> dict[str, Any]:
    """The ``model`` desired properties for a champion: a read-only SAS URL and its proofs."""
    url = registry.container.read_url(champion.model_blob, expires_in=timedelta(hours=sas_hours))
    return {
        "name": champion.name,
        "version": champion.version,
        "url": url,
        "sha256": champion.sha256,
        "signature": champion.signature,
    }


def device_state(reported: dict[str, Any], target: dict[str, Any], twin_key: str = "model") -> str:
    """``ready``, ``failed`` or ``pending`` for a device asked to run ``target``."""
    model = reported.get(twin_key) or {}
    if model.get("sha256") == target["sha256"] and model.get("status") == "loaded":
        return "ready"
    failed = model.get("failed") or {}
    if failed.get("sha256") == target["sha256"] or (
        model.get("status") == "failed" and failed.get("version") == target["version"]
    ):
        return "failed"
    return "pending"


def layered_deployment(desired: dict[str, Any], config: RolloutConfig, *, canary: bool) -> dict[str, Any]:
    """A layered deployment that sets only the inference module's ``model`` desired property.

    Write ``content`` to a file for ``az iot edge deployment create --layered --content`` and pass
    ``targetCondition``, ``priority`` and ``metrics`` as its other arguments (``deployment_command``).
    """
    condition = config.target_condition
    if canary:
        condition = f"{condition} AND {config.canary_condition}"
    module, key = config.module_id, config.twin_key
    where = f"moduleId='{module}' AND properties.reported.{key}.sha256='{desired['sha256']}'"
    return {
        "id": f"{desired['name']}-{desired['version']}-{'canary' if canary else 'fleet'}".lower(),
        "content": {"modulesContent": {module: {f"properties.desired.{key}": desired}}},
        "targetCondition": condition,
        "priority": config.deployment_priority + (1 if canary else 0),
        "labels": {"edgeloop.model": desired["name"], "edgeloop.version": desired["version"]},
        "metrics": {
            "queries": {
                "ready": f"SELECT deviceId FROM devices.modules WHERE {where} "
                f"AND properties.reported.{key}.status='loaded'",
                "failed": f"SELECT deviceId FROM devices.modules WHERE moduleId='{module}' "
                f"AND properties.reported.{key}.failed.sha256='{desired['sha256']}'",
            }
        },
    }


def deployment_command(deployment: dict[str, Any], *, hub: str, content_file: str, metrics_file: str) -> str:
    """The ``az`` command line that creates ``deployment`` from its two files."""
    return (
        f"az iot edge deployment create --layered --hub-name {hub} --deployment-id {deployment['id']} "
        f"--content {content_file} --metrics {metrics_file} "
        f'--target-condition "{deployment["targetCondition"]}" --priority {deployment["priority"]}'
    )


@dataclass
class RolloutState:
    """Where a staged rollout stands; saved as JSON after every step."""

    model: str
    version: str
    target: dict[str, Any]
    previous: dict[str, Any] | None
    stage: str = "canary"  # canary -> fleet -> done | rolled_back | timed_out
    updated: list[str] = field(default_factory=list)
    ready: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    stage_started: datetime | None = None
    history: list[str] = field(default_factory=list)

    @property
    def finished(self) -> bool:
        return self.stage in ("done", "rolled_back", "timed_out")

    def as_dict(self) -> dict[str, Any]:
        target = {**self.target, "url": self.target["url"].split("?", 1)[0]}
        previous = {**self.previous, "url": self.previous["url"].split("?", 1)[0]} if self.previous else None
        return {
            "model": self.model,
            "version": self.version,
            "target": target,
            "previous": previous,
            "stage": self.stage,
            "updated": self.updated,
            "ready": self.ready,
            "failed": self.failed,
            "history": self.history,
            "stage_started": self.stage_started.isoformat() if self.stage_started else None,
        }

    @classmethod
    def resume(
        cls, doc: dict[str, Any], target: dict[str, Any], previous: dict[str, Any] | None
    ) -> RolloutState:
        """A saved state with fresh URLs (saved states hold no SAS tokens)."""
        started = doc.get("stage_started")
        return cls(
            model=doc["model"],
            version=doc["version"],
            target=target,
            previous=previous,
            stage=doc["stage"],
            updated=list(doc.get("updated", [])),
            ready=list(doc.get("ready", [])),
            failed=list(doc.get("failed", [])),
            stage_started=datetime.fromisoformat(started) if started else None,
            history=list(doc.get("history", [])),
        )


class RolloutController:
    """Canary, then fleet; roll back every updated device when one reports failure."""

    def __init__(
        self,
        service: TwinService,
        config: RolloutConfig,
        *,
        clock: Clock | None = None,
        record: Callable[[RolloutState], None] | None = None,
    ) -> None:
        self.service = service
        self.config = config
        self._clock = clock or SystemClock()
        self._record = record or (lambda _s: None)

    def start(self, target: dict[str, Any], previous: dict[str, Any] | None) -> RolloutState:
        state = RolloutState(
            model=target["name"], version=target["version"], target=target, previous=previous
        )
        self._begin_stage(state, "canary")
        return state

    def _stage_devices(self, stage: str) -> list[str]:
        condition = self.config.target_condition
        if stage == "canary":
            condition = f"{condition} AND {self.config.canary_condition}"
        return self.service.devices(condition)

    def _begin_stage(self, state: RolloutState, stage: str) -> None:
        devices = [d for d in self._stage_devices(stage) if d not in state.updated]
        state.stage, state.stage_started = stage, self._clock.now()
        for device in devices:
            self.service.set_desired(device, self.config.module_id, {self.config.twin_key: state.target})
            state.updated.append(device)
        state.history.append(f"{stage}: asked {len(devices)} device(s) to load {state.version}: {devices}")
        log.info("rollout %s %s: %s stage on %s", state.model, state.version, stage, devices)
        self._record(state)

    def step(self, state: RolloutState) -> RolloutState:
        """Look at the devices once and move on when the stage is decided."""
        if state.finished:
            return state
        states = {d: device_state(self.service.reported(d, self.config.module_id), state.target,
                                  self.config.twin_key) for d in state.updated}  # fmt: skip
        state.ready = sorted(d for d, s in states.items() if s == "ready")
        state.failed = sorted(d for d, s in states.items() if s == "failed")
        if state.failed:
            self._roll_back(state, f"device(s) {state.failed} reported failure loading {state.version}")
        elif len(state.ready) == len(state.updated):
            if state.stage == "canary":
                state.history.append(f"canary ready on {state.ready}; widening to the fleet")
                self._begin_stage(state, "fleet")
                return state
            state.stage = "done"
            state.history.append(f"done: {len(state.ready)} device(s) run {state.version}")
        elif state.stage_started and self._clock.now() - state.stage_started > timedelta(
            minutes=self.config.timeout_minutes
        ):
            waiting = sorted(set(state.updated) - set(state.ready))
            self._roll_back(state, f"timed out waiting for {waiting}", final="timed_out")
        self._record(state)
        return state

    def _roll_back(self, state: RolloutState, why: str, *, final: str = "rolled_back") -> None:
        state.history.append(f"rolling back: {why}")
        log.warning("rollout %s %s: rolling back: %s", state.model, state.version, why)
        if state.previous is not None:
            for device in state.updated:
                self.service.set_desired(
                    device, self.config.module_id, {self.config.twin_key: state.previous}
                )
        state.stage = final

    def run(self, state: RolloutState, *, poll_s: float = 2.0, max_steps: int = 10_000) -> RolloutState:
        """Step until finished, sleeping ``poll_s`` between looks."""
        for _ in range(max_steps):
            self.step(state)
            if state.finished:
                return state
            self._clock.sleep(poll_s)
        raise RolloutError(f"rollout of {state.model} {state.version} did not finish in {max_steps} steps")


def state_recorder(container: BlobContainer) -> Callable[[RolloutState], None]:
    """Save each rollout state to ``<model>/rollouts/<version>.json`` (SAS tokens stripped)."""

    def record(state: RolloutState) -> None:
        container.write(
            f"{state.model}/rollouts/{state.version}.json",
            json.dumps(state.as_dict(), indent=1).encode(),
            content_type="application/json",
        )

    return record


class MemoryTwinService:
    """Module twins in memory, with device tags; ``on_desired`` plays the device's part."""

    def __init__(self, tags: dict[str, dict[str, str]]) -> None:
        self.tags = tags
        self.desired: dict[tuple[str, str], dict[str, Any]] = {}
        self.reports: dict[tuple[str, str], dict[str, Any]] = {}
        self.on_desired: Callable[[str, str, dict[str, Any]], None] | None = None

    def devices(self, condition: str) -> list[str]:
        wanted = []
        for clause in condition.split(" AND "):
            path, _, value = clause.partition("=")
            wanted.append((path.strip().removeprefix("tags.edgeloop."), value.strip().strip("'")))
        return sorted(d for d, tags in self.tags.items() if all(tags.get(k) == v for k, v in wanted))

    def set_desired(self, device_id: str, module_id: str, patch: dict[str, Any]) -> None:
        self.desired.setdefault((device_id, module_id), {}).update(patch)
        if self.on_desired:
            self.on_desired(device_id, module_id, patch)

    def reported(self, device_id: str, module_id: str) -> dict[str, Any]:
        return self.reports.get((device_id, module_id), {})
