"""The optional HTTP scoring endpoint, served from the same model and batches as the pipeline."""

from __future__ import annotations

import base64
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import model_factory as mf
from tests.unit.test_inference_module import Harness, wait_for


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        yield h


def _png(index: int, tmp_path: Path) -> bytes:
    return mf.write_digit_image(tmp_path / f"{index}.png", index, size=16).read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_endpoint_is_started_and_stopped_by_the_twin(harness: Harness, tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    image = _png(1000, tmp_path)
    # when
    http = {"enabled": True, "host": "127.0.0.1", "port": port, "max_body_kb": 64}
    harness.hub.patch_desired({"http": http})
    wait_for(lambda: _up(url), what="HTTP endpoint up")
    with httpx.Client(base_url=url) as client:
        raw = client.post("/predict", content=image, headers={"content-type": "image/png"})
        as_json = client.post("/predict", json={"image_base64": base64.b64encode(image).decode()})
        garbage = client.post("/predict", content=b"nope", headers={"content-type": "image/png"})
        vector = client.post("/predict", json={"vector": [1.0, 2.0]})
        both = client.post("/predict", json={"vector": [1.0], "image_base64": "AA=="})
        text = client.post("/predict", content=b"x", headers={"content-type": "text/plain"})
        big = client.post("/predict", content=b"x" * 70_000, headers={"content-type": "image/png"})
        model = client.get("/model").json()
        openapi = client.get("/openapi.json").json()
        docs = client.get("/docs")
    harness.hub.patch_desired({"http": {"enabled": False}})
    wait_for(lambda: not _up(url), what="HTTP endpoint down")
    # then
    assert raw.status_code == 200, raw.text
    assert raw.json()["schema"] == "edgeloop.prediction/2"
    assert raw.json()["label"] == as_json.json()["label"]
    assert raw.json()["model_version"] == "1"
    assert garbage.status_code == 422
    assert "cannot be decoded" in garbage.json()["error"]
    assert vector.status_code == 422
    assert both.status_code == 400
    assert text.status_code == 415
    assert big.status_code == 413
    assert model["name"] == "digits"
    assert "/predict" in openapi["paths"]
    assert docs.status_code == 200
    # HTTP samples never reach the hub's predictions output
    assert harness.predictions() == []


def _up(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=0.5).status_code == 200
    except httpx.HTTPError:
        return False
