"""The control API: how ``edgeloop dev`` commands and tests talk to a running hub.

HTTP over the unix socket ``<state-dir>/control.sock``:

- ``GET /status``: hub settings, per-module connection state, counters
- ``GET /modules/{m}/twin``; ``PATCH /modules/{m}/twin/desired`` (body: a merge patch)
- ``POST /modules/{m}/methods/{name}?timeout=S`` (body: the payload, JSON) -> ``{"status", "payload"}``
- ``GET /modules/{m}/env``: the module's environment
- ``GET /upstream?after=ID&limit=N``: what reached ``$upstream``
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgeloop.devhub.broker import Broker, upstream_view
from edgeloop.devhub.httpunix import Request, Response, request
from edgeloop.errors import EdgeLoopError

_MODULE = re.compile(r"^/modules/(?P<m>[^/]+)(?P<rest>/.*)$")
_METHOD = re.compile(r"^/methods/(?P<name>[^/]+)$")
MAX_METHOD_TIMEOUT = 300.0


class ControlApi:
    def __init__(
        self, broker: Broker, info: Callable[[], dict[str, Any]], env: Callable[[str], dict[str, str]]
    ) -> None:
        self._broker = broker
        self._info = info
        self._env = env

    async def __call__(self, req: Request) -> Response:
        if req.path == "/status" and req.method == "GET":
            return Response(200, {"hub": self._info(), "modules": self._broker.module_status(),
                                  "stats": dict(self._broker.stats)})  # fmt: skip
        if req.path == "/upstream" and req.method == "GET":
            return self._upstream(req)
        match = _MODULE.match(req.path)
        if match is None:
            return Response(404, {"message": f"no such resource {req.path!r}"})
        module, rest = match["m"], match["rest"]
        if module not in self._broker.manifest.modules:
            known = ", ".join(sorted(self._broker.manifest.modules))
            return Response(404, {"message": f"module {module!r} is not in the manifest (modules: {known})"})
        if rest == "/twin" and req.method == "GET":
            return Response(200, self._twin(module))
        if rest == "/twin/desired" and req.method == "PATCH":
            try:
                patch = req.json()
            except ValueError:
                patch = None
            if not isinstance(patch, dict):
                return Response(400, {"message": "a desired-properties patch is a JSON object"})
            self._broker.patch_desired(module, patch)
            return Response(200, self._twin(module))
        if rest == "/env" and req.method == "GET":
            return Response(200, self._env(module))
        method = _METHOD.match(rest)
        if method is not None and req.method == "POST":
            try:
                timeout = float(req.query.get("timeout", "30"))
            except ValueError:
                return Response(400, {"message": "timeout must be a number of seconds"})
            if not 0 < timeout <= MAX_METHOD_TIMEOUT:
                return Response(400, {"message": f"timeout must be in (0, {MAX_METHOD_TIMEOUT:g}] seconds"})
            result = await self._broker.invoke(module, method["name"], req.body, timeout)
            return Response(200, {"status": result.status, "payload": result.payload})
        return Response(404, {"message": f"no such resource {req.path!r} for {req.method}"})

    def _twin(self, module: str) -> dict[str, Any]:
        identity = self._broker.identity
        return {
            "deviceId": identity.device_id,
            "moduleId": module,
            "properties": self._broker.twin_document(module),
        }

    def _upstream(self, req: Request) -> Response:
        try:
            after = int(req.query.get("after", "0"))
            limit = min(10000, int(req.query.get("limit", "1000")))
        except ValueError:
            return Response(400, {"message": "after and limit are integers"})
        return Response(200, [upstream_view(entry) for entry in self._broker.store.upstream(after, limit)])


def _q(text: str) -> str:
    return urllib.parse.quote(text, safe="")


class ControlError(EdgeLoopError):
    """The hub could not be reached, or refused a control request."""


class ControlClient:
    """Synchronous client of a running hub's control API."""

    def __init__(self, socket_path: Path, timeout: float = 30.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout

    def _call(self, method: str, target: str, body: bytes | None = None, timeout: float | None = None) -> Any:
        try:
            status, doc = request(self.socket_path, method, target, body, timeout or self.timeout)
        except OSError as exc:
            raise ControlError(
                f"no dev hub answers on {self.socket_path} ({exc.strerror or exc}); start one with "
                "'edgeloop dev hub' or 'edgeloop dev up', or pass the --state-dir it uses"
            ) from exc
        if status >= 400:
            message = doc.get("message") if isinstance(doc, dict) else doc
            raise ControlError(f"the hub answered {status}: {message}")
        return doc

    def status(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/status")
        return result

    def twin(self, module: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", f"/modules/{_q(module)}/twin")
        return result

    def patch_desired(self, module: str, patch: dict[str, Any]) -> dict[str, Any]:
        import json

        result: dict[str, Any] = self._call(
            "PATCH", f"/modules/{_q(module)}/twin/desired", json.dumps(patch).encode()
        )
        return result

    def invoke(self, module: str, method: str, payload: bytes, timeout: float = 30.0) -> dict[str, Any]:
        """``{"status": int, "payload": ...}``; hub-side failures are statuses too (400, 404, 504)."""
        target = f"/modules/{_q(module)}/methods/{_q(method)}?timeout={timeout:g}"
        result: dict[str, Any] = self._call("POST", target, payload, timeout=timeout + 10)
        return result

    def env(self, module: str) -> dict[str, str]:
        result: dict[str, str] = self._call("GET", f"/modules/{_q(module)}/env")
        return result

    def upstream(self, after: int = 0, limit: int = 1000) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", f"/upstream?after={after}&limit={limit}")
        return result
