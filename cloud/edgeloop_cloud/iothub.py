"""``TwinService`` over Azure IoT Hub through the service SDK (``azure-iot-hub``).

Desired properties are merged with ``update_module_twin`` (a PATCH of the module twin);
device selection uses the IoT Hub query language on device twin tags. Vendor exceptions
become ``RolloutError`` naming the device and module.

``azure-iot-hub`` 2.7 imports ``six`` without declaring it; both are pinned in the ``cloud`` extra.
"""

from __future__ import annotations

from typing import Any

from edgeloop_cloud.errors import RolloutError


class IoTHubTwinService:
    """Module twins of an IoT Hub, from a service connection string (``HostName=...;SharedAccessKey...``)."""

    def __init__(self, connection_string: str = "", *, manager: Any = None) -> None:
        """``manager``: an ``IoTHubRegistryManager`` (made from the string on first use if None)."""
        self._connection_string = connection_string
        self._manager: Any = manager

    def _registry(self) -> Any:
        if self._manager is None:
            from azure.iot.hub import IoTHubRegistryManager

            try:
                self._manager = IoTHubRegistryManager.from_connection_string(self._connection_string)
            except Exception as exc:
                raise RolloutError(f"cannot use the IoT Hub connection string: {exc}") from exc
        return self._manager

    def devices(self, condition: str) -> list[str]:
        from azure.iot.hub.models import QuerySpecification

        query = QuerySpecification(query=f"SELECT deviceId FROM devices WHERE {condition}")
        found: list[str] = []
        token = None
        try:
            while True:
                result = self._registry().query_iot_hub(query, token, 100)
                found += [
                    item.device_id if hasattr(item, "device_id") else item["deviceId"]
                    for item in result.items
                ]
                token = result.continuation_token
                if not token:
                    return sorted(set(found))
        except RolloutError:
            raise
        except Exception as exc:
            raise RolloutError(f"IoT Hub query {condition!r} failed: {exc}") from exc

    def set_desired(self, device_id: str, module_id: str, patch: dict[str, Any]) -> None:
        from azure.iot.hub.models import Twin, TwinProperties

        try:
            self._registry().update_module_twin(
                device_id, module_id, Twin(properties=TwinProperties(desired=patch))
            )
        except Exception as exc:
            raise RolloutError(f"cannot update the twin of {device_id}/{module_id}: {exc}") from exc

    def reported(self, device_id: str, module_id: str) -> dict[str, Any]:
        try:
            twin = self._registry().get_module_twin(device_id, module_id)
        except Exception as exc:
            raise RolloutError(f"cannot read the twin of {device_id}/{module_id}: {exc}") from exc
        return dict(twin.properties.reported or {})
