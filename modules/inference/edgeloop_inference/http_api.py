"""The optional HTTP scoring endpoint (FastAPI + uvicorn, imported only when enabled).

Other containers on the device post an image or a feature vector and get a prediction from
the same model and micro-batches as the pipeline:

- ``POST /predict`` with an image body (``Content-Type: image/jpeg``, ``image/png``,
  ``application/octet-stream``) or JSON ``{"vector": [...]}`` / ``{"image_base64": "..."}``;
- ``GET /model``: the serving model and its status; ``GET /healthz``: 200 once a model serves;
- ``GET /docs``: OpenAPI documentation.

No ``from __future__ import annotations`` here: FastAPI reads the route annotations at run
time, and the FastAPI types are imported inside ``build_app`` (only when the endpoint is on).
"""

import asyncio
import base64
import binascii
import logging
import threading
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edgeloop_inference.config import HttpConfig

if TYPE_CHECKING:
    from edgeloop_inference.module import InferenceModule

log = logging.getLogger(__name__)

_IMAGE_TYPES = ("image/", "application/octet-stream")


class PredictJson(BaseModel):
    """JSON body of ``POST /predict``: exactly one of ``vector`` or ``image_base64``."""

    model_config = ConfigDict(extra="forbid")
    vector: list[float] | None = Field(default=None, description="Feature vector, for vector models.")
    image_base64: str | None = Field(default=None, description="An encoded image (JPEG, PNG), base64.")


_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/jpeg": {"schema": {"type": "string", "format": "binary"}},
            "image/png": {"schema": {"type": "string", "format": "binary"}},
            "application/json": {"schema": PredictJson.model_json_schema()},
        },
    }
}


def build_app(module: "InferenceModule", settings: HttpConfig) -> Any:
    from fastapi import FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse

    app = FastAPI(
        title="EdgeLoop inference",
        description="Score an image or a feature vector with the model the inference module serves.",
        version="1",
    )
    limit = settings.max_body_kb * 1024

    @app.post("/predict", openapi_extra=_REQUEST_BODY, summary="Score one sample")
    async def predict(request: Request) -> JSONResponse:
        body = await request.body()
        if len(body) > limit:
            raise HTTPException(
                413, f"body is {len(body)} bytes, over the {limit}-byte limit (http.max_body_kb)"
            )
        data, vector = _parse(request.headers.get("content-type", ""), body)
        future = module.score_now(data=data, vector=vector)
        try:
            prediction = await asyncio.wait_for(asyncio.wrap_future(future), settings.timeout_ms / 1000.0)
        except TimeoutError as exc:
            raise HTTPException(504, f"no score within {settings.timeout_ms} ms (http.timeout_ms)") from exc
        status = 200 if prediction.status == "ok" else 422
        return JSONResponse(prediction.to_wire(), status_code=status)

    @app.get("/model", summary="The serving model, its status and latency")
    def model() -> dict[str, Any]:
        return module.model_report()

    @app.get("/healthz", summary="200 when a model is serving, 503 otherwise")
    def healthz() -> JSONResponse:
        serving = module.models.current is not None
        return JSONResponse({"serving": serving}, status_code=200 if serving else 503)

    def _parse(content_type: str, body: bytes) -> tuple[bytes | None, list[float] | None]:
        if content_type.startswith("application/json"):
            try:
                doc = PredictJson.model_validate_json(body)
            except ValidationError as exc:
                raise HTTPException(400, f"bad JSON body: {exc.errors()[0]['msg']}") from exc
            if (doc.vector is None) == (doc.image_base64 is None):
                raise HTTPException(400, "give exactly one of 'vector' or 'image_base64'")
            if doc.vector is not None:
                return None, doc.vector
            try:
                return base64.b64decode(doc.image_base64 or "", validate=True), None
            except (binascii.Error, ValueError) as exc:
                raise HTTPException(400, f"image_base64 is not base64: {exc}") from exc
        if content_type.startswith(_IMAGE_TYPES):
            if not body:
                raise HTTPException(400, "empty body: post the image bytes")
            return body, None
        raise HTTPException(
            415, f"Content-Type {content_type!r}: use image/* or application/octet-stream or application/json"
        )

    return app


class HttpEndpoint:
    """uvicorn serving ``build_app`` on its own thread."""

    def __init__(self, module: "InferenceModule", settings: HttpConfig) -> None:
        import uvicorn

        self.settings = settings
        config = uvicorn.Config(
            build_app(module, settings),
            host=settings.host,
            port=settings.port,
            log_level="warning",
            lifespan="off",
            access_log=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="inference-http", daemon=True)

    @property
    def started(self) -> bool:
        return bool(self._server.started)

    def start(self) -> None:
        self._thread.start()
        log.info("HTTP scoring endpoint on %s:%d", self.settings.host, self.settings.port)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)
