"""Module-to-module direct methods over HTTPS, as edgeHub serves them.

``POST /twins/{device}/modules/{module}/methods?api-version=...`` with the calling module's
SAS token in ``Authorization`` and ``{"methodName", "payload", "responseTimeoutInSeconds"}``
as body: the hub calls the target module's method handler over its MQTT connection and
answers 200 with ``{"status", "payload"}`` (the module's own status inside). The hub's own
failures are HTTP statuses: 401 bad token, 404 unknown device/module or a module that is not
connected, 400 a body that is not a valid request, 504 no answer in time.
"""

from __future__ import annotations

import json
import logging
import re
import urllib.parse
from typing import Any

from edgeloop.devhub import sas
from edgeloop.devhub.broker import Broker
from edgeloop.devhub.httpwire import HttpRequest, HttpResponse

log = logging.getLogger(__name__)

_PATH = re.compile(r"^/twins/(?P<device>[^/]+)(?:/modules/(?P<module>[^/]+))?/methods/?$")
DEFAULT_TIMEOUT_SECS = 30.0
MAX_TIMEOUT_SECS = 300.0


def _error(status: int, message: str) -> HttpResponse:
    # IoT Hub's error bodies carry an errorCode (status * 1000 + n) and a message.
    return HttpResponse(status, {"errorCode": status * 1000 + 1, "message": message})


class ModuleMethodsApi:
    """Answers direct-method requests of one module to another."""

    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def __call__(self, request: HttpRequest) -> HttpResponse:
        match = _PATH.match(request.path)
        if match is None:
            return _error(
                404,
                f"no such resource {request.path!r} (direct methods: "
                "POST /twins/{device}/modules/{module}/methods)",
            )
        if request.method != "POST":
            return _error(405, f"{request.method} is not allowed on {request.path!r}; use POST")
        caller = self._authenticate(request)
        if isinstance(caller, HttpResponse):
            return caller
        device, module = match["device"], match["module"]
        identity = self._broker.identity
        if device != identity.device_id or module is None or module not in self._broker.manifest.modules:
            target = f"{device}/{module}" if module else device
            return _error(
                404,
                f"{target!r} is not a module of device {identity.device_id!r} "
                f"(modules: {', '.join(sorted(self._broker.manifest.modules))})",
            )
        parsed = _parse_body(request.body)
        if isinstance(parsed, HttpResponse):
            return parsed
        name, payload, timeout = parsed
        self._broker.stats["module_method_calls"] += 1
        result = await self._broker.invoke(module, name, json.dumps(payload).encode(), timeout)
        if result.by_hub:
            return _error(result.status, str(result.payload.get("error")))
        log.info("module %s called %s.%s: status %d", caller, module, name, result.status)
        return HttpResponse(200, {"status": result.status, "payload": result.payload})

    def _authenticate(self, request: HttpRequest) -> str | HttpResponse:
        """The calling module's id, or a 401 response saying what was wrong."""
        token = request.header("authorization")
        identity = self._broker.identity
        fields = dict(
            part.partition("=")[::2] for part in token.removeprefix("SharedAccessSignature ").split("&")
        )
        resource = urllib.parse.unquote(fields.get("sr", ""))
        prefix = f"{identity.hub_host}/devices/{identity.device_id}/modules/".lower()
        caller = resource[len(prefix) :] if resource.lower().startswith(prefix) else ""
        if not token:
            reason = "no Authorization header (a module's SAS token)"
        elif caller not in self._broker.manifest.modules:
            reason = f"token resource {resource!r} is not a module of device {identity.device_id!r}"
        else:
            key, _ = self._broker.credentials(caller)
            uri = sas.resource_uri(identity.hub_host, identity.device_id, caller)
            check = sas.check_token(token, key=key, uri=uri, now=self._broker.clock())
            reason = check.reason
            edge_id = request.header("x-ms-edge-moduleid")
            if check.ok and edge_id and edge_id != f"{identity.device_id}/{caller}":
                reason = f"x-ms-edge-moduleId {edge_id!r} does not match the token's module {caller!r}"
            if not reason:
                return caller
        self._broker.stats["module_method_auth_failures"] += 1
        log.warning("refused a direct-method call to %s: %s", request.path, reason)
        return _error(401, f"unauthorized: {reason}")


def _parse_body(body: bytes) -> tuple[str, Any, float] | HttpResponse:
    try:
        doc = json.loads(body or b"null")
    except ValueError as exc:
        return _error(400, f"the request body is not JSON: {exc}")
    if not isinstance(doc, dict):
        return _error(400, "the request body must be a JSON object with methodName and payload")
    name = doc.get("methodName")
    if not isinstance(name, str) or not name:
        return _error(400, f"methodName must be a non-empty string, got {name!r}")
    raw_timeout = doc.get("responseTimeoutInSeconds")
    timeout = DEFAULT_TIMEOUT_SECS if raw_timeout is None else raw_timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not 0 < timeout <= MAX_TIMEOUT_SECS
    ):
        return _error(
            400,
            f"responseTimeoutInSeconds must be a number in (0, {MAX_TIMEOUT_SECS:g}], got {raw_timeout!r}",
        )
    return name, doc.get("payload"), float(timeout)
