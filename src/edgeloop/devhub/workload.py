"""The IoT Edge workload API, as much as ``create_from_edge_environment()`` uses:
``GET /trust-bundle`` and ``POST /modules/{m}/genid/{g}/sign``."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

from edgeloop.devhub.httpunix import Request, Response

API_VERSION = "2019-01-30"
_SIGN = re.compile(r"^/modules/(?P<m>[^/]+)/genid/(?P<g>[^/]+)/sign$")

Signer = Callable[[str, str, bytes], str | None]


class WorkloadApi:
    def __init__(self, trust_bundle: str, signer: Signer) -> None:
        self._trust_bundle = trust_bundle
        self._signer = signer

    async def __call__(self, request: Request) -> Response:
        if request.method == "GET" and request.path == "/trust-bundle":
            return Response(200, {"certificate": self._trust_bundle})
        match = _SIGN.match(request.path)
        if match is None:
            return Response(404, {"message": f"no such workload API resource {request.path!r}"})
        if request.method != "POST":
            return Response(405, {"message": "sign takes POST"})
        try:
            body = request.json()
            data = base64.b64decode(body["data"], validate=True)
        except (ValueError, KeyError, TypeError, binascii.Error):
            return Response(400, {"message": "body must be {'keyId','algo','data': base64}"})
        if body.get("algo", "HMACSHA256") != "HMACSHA256":
            return Response(400, {"message": f"algo {body.get('algo')!r} is not supported (HMACSHA256)"})
        digest = self._signer(match["m"], match["g"], data)
        if digest is None:
            return Response(
                404, {"message": f"module {match['m']!r} with generation {match['g']!r} not found"}
            )
        return Response(200, {"digest": digest})
