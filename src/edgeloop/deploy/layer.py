"""The layered deployment that gives a device what the cloud prepared, and applying it.

It sets leaf twin paths only (``properties.desired.<section>.<key>``, merged over the base
deployment's twin with a higher priority), never a secret: the storage SAS stays
in a secret file on the device, named relative to ``EDGELOOP_SECRETS_DIR``.
"""

from __future__ import annotations

import copy
from typing import Any

#: File name of the storage SAS URL in the device's secrets folder.
STORAGE_SECRET = "storage-sas-url"


def device_layer(
    *,
    container: str,
    envelope_public: str,
    signing_public: str,
    model: dict[str, Any],
    deployment_id: str,
    target_condition: str,
    priority: int,
) -> dict[str, Any]:
    """A layered deployment for ``az iot edge deployment create --layered``."""
    return {
        "id": deployment_id,
        "content": {
            "modulesContent": {
                "uploader": {
                    "properties.desired.storage.container": container,
                    "properties.desired.storage.credentials_file": STORAGE_SECRET,
                    "properties.desired.storage.create_container": False,
                    "properties.desired.encryption.public_key_pem": envelope_public,
                },
                "inference": {
                    "properties.desired.public_key": signing_public,
                    "properties.desired.model": model,
                },
            }
        },
        "targetCondition": target_condition,
        "priority": priority,
        "labels": {"edgeloop.part": "device-setup"},
    }


def apply_layer(manifest: dict[str, Any], layer: dict[str, Any]) -> dict[str, Any]:
    """The manifest with the layer's twin paths set, as IoT Hub merges them onto the base."""
    out = copy.deepcopy(manifest)
    for module, paths in layer["content"]["modulesContent"].items():
        target = out["modulesContent"].setdefault(module, {})
        for path, value in paths.items():
            parts = path.split(".")
            head, rest = ".".join(parts[:2]), parts[2:]  # "properties.desired"
            node = target.setdefault(head, {})
            for part in rest[:-1]:
                node = node.setdefault(part, {})
            node[rest[-1]] = copy.deepcopy(value)
    return out
