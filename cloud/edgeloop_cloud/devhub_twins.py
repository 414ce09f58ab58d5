"""``TwinService`` over the local dev hub's control API (``edgeloop.devhub.control``).

The dev hub plays one device, so every condition selects that device: a staged rollout there is
one canary that, once it reports the model loaded, completes the rollout. The hub is found
through its state dir (``--state-dir`` of ``edgeloop dev``; default ``.edgeloop/dev``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

from edgeloop_cloud.errors import RolloutError


class DevHubTwinService:
    """Module twins of a running dev hub."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._device: str | None = None

    @classmethod
    def from_state_dir(cls, state_dir: Path) -> DevHubTwinService:
        paths = importlib.import_module("edgeloop.devhub.paths")
        control = importlib.import_module("edgeloop.devhub.control")
        return cls(control.ControlClient(paths.StatePaths.of(state_dir).control_socket))

    def _call(self, what: str, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except Exception as exc:  # the control client's own errors and socket errors alike
            raise RolloutError(f"dev hub {what} failed: {exc}") from exc

    def devices(self, condition: str) -> list[str]:
        if self._device is None:
            status = self._call("status", self._client.status)
            self._device = str(
                status.get("hub", {}).get("device_id") or status.get("hub", {}).get("deviceId")
            )
        return [self._device]

    def set_desired(self, device_id: str, module_id: str, patch: dict[str, Any]) -> None:
        self._call(f"patch of {module_id}'s desired properties", self._client.patch_desired, module_id, patch)

    def reported(self, device_id: str, module_id: str) -> dict[str, Any]:
        twin = self._call(f"read of {module_id}'s twin", self._client.twin, module_id)
        return dict(twin.get("properties", {}).get("reported", {}))
