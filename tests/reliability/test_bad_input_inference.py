"""Bad input against inference: truncated, garbage, empty, hostile and huge images, vectors with
NaN or infinite values or the wrong length; models with the wrong input shape, a bad signature
or a hash that does not match.

Every frame in gets exactly one prediction out (an error record naming what was wrong for a bad
one), the module keeps scoring the good ones, and a bad model is never loaded.
"""

from __future__ import annotations

import math
import struct
import time
import zlib
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from edgeloop import signing
from tests import model_factory as mf
from tests.reliability.conftest import AreaLedger
from tests.unit.test_inference_module import Harness


def _png_bomb(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + idat + chunk(b"IEND", b"")


def _digit_jpeg(index: int) -> bytes:
    pixels = (mf.digit_pixels(index) * 255 / 16).clip(0, 255).astype(np.uint8)
    ok, data = cv2.imencode(".jpg", cv2.resize(pixels, (16, 16)))
    assert ok
    return bytes(data)


BAD_IMAGES: dict[str, bytes] = {
    "truncated-header": _digit_jpeg(3)[:20],
    "truncated-half": _digit_jpeg(3)[: len(_digit_jpeg(3)) // 2],
    "garbage": bytes(range(256)) * 4,
    "zero-bytes": b"",
    "png-bomb": _png_bomb(60_000, 60_000),
    "text": b"not an image at all\n",
}


def test_bad_image_files_get_one_error_record_each_and_good_frames_are_scored(
    tmp_path: Path, ledger: AreaLedger
) -> None:
    with Harness(tmp_path, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        # given: good frames around the corpus, and a big valid image
        before = h.digit_frames([1, 2])
        bad = []
        for n, (name, data) in enumerate(BAD_IMAGES.items(), start=500):
            ref = f"frames/{name}.jpg"
            (h.samples / ref).write_bytes(data)
            bad.append(mf.frame_ref(n, file_ref=ref))
        big = np.full((3000, 4000), 128, dtype=np.uint8)
        cv2.imwrite(str(h.samples / "frames/big.png"), big)
        huge = mf.frame_ref(600, file_ref="frames/big.png")
        after = h.digit_frames([4, 5])
        frames = [*before, *bad, huge, *after]
        ledger.record(inputs=len(bad) + 1)
        # when
        h.hub.push_input("frames", frames, max_batch=4)
        preds = h.wait_predictions(len(frames), timeout=60)
        alive = h.thread.is_alive()
    # then: one prediction per frame, none twice
    ids = [p.sample_id for p in preds]
    assert sorted(ids) == sorted(f.sample_id for f in frames)
    by_id = {p.sample_id: p for p in preds}
    ledger.record(lost=len({f.sample_id for f in frames} - set(ids)))
    assert alive
    for frame in [*before, *after]:
        assert by_id[frame.sample_id].status == "ok"
    for frame in bad:
        pred = by_id[frame.sample_id]
        name = (frame.file_ref or "").split("/")[-1]
        if pred.status == "ok":  # a truncated JPEG that still decodes (libjpeg fills the rest)
            assert name.startswith("truncated-half"), f"{name} was scored as if it were an image"
            continue
        assert pred.status == "error"
        assert name in (pred.error or ""), f"{name}: {pred.error}"
    assert by_id[huge.sample_id].status in ("ok", "error")


@pytest.mark.parametrize(
    ("vector", "names"),
    [
        ([math.nan, 0.2, 0.3, 0.4], "NaN"),
        ([0.1, math.inf, 0.3, 0.4], "inf"),
        ([0.1, 0.2, -math.inf, 0.4], "inf"),
        ([1e308, 1e308, 1e308, 1e308], "beyond float32"),
        ([0.1], "has 1 values"),
        ([0.1] * 5000, "has 5000 values"),
    ],
    ids=["nan", "inf", "-inf", "huge", "short", "long"],
)
def test_vectors_that_are_not_finite_or_of_the_wrong_length_never_take_their_batch_mates_down(
    tmp_path: Path, vector: list[float], names: str, ledger: AreaLedger
) -> None:
    with Harness(tmp_path, initial=mf.vector_model(features=4)) as h:
        h.wait_model(status="loaded")
        ledger.record(inputs=1)
        # when
        h.hub.push_input(
            "frames",
            [mf.frame_ref(1, vector=[0.1, 0.2, 0.3, 0.4]), mf.frame_ref(2, vector=vector),
             mf.frame_ref(3, vector=[0.4, 0.3, 0.2, 0.1])],
        )  # fmt: skip
        # then: the good ones are scored
        h.wait_predictions(2)
        time.sleep(0.3)
        preds = {p.sample_id: p for p in h.predictions()}
        rejected = h.runtime.counters["items_rejected"]
        alive = h.thread.is_alive()
    assert alive
    assert preds["s000001"].status == preds["s000003"].status == "ok"
    # and: the bad one either never passed the contract (NaN and inf travel as null and are
    # refused on arrival, counted and logged, without its batch mates) or got an error record
    if "s000002" not in preds:
        assert rejected == 1
        assert names in ("NaN", "inf")
        return
    bad = preds["s000002"]
    assert rejected == 0
    if bad.status == "ok":
        assert not names
        assert all(math.isfinite(s) for s in bad.scores or [])
        assert math.isfinite(bad.confidence or 0.0)
    else:
        assert names.lower() in (bad.error or "").lower(), bad.error


def _wrong_hash(spec: dict[str, Any], data: bytes, keys: tuple[bytes, bytes]) -> None:
    spec["sha256"] = "0" * 64


def _other_key(spec: dict[str, Any], data: bytes, keys: tuple[bytes, bytes]) -> None:
    other_private, _ = signing.generate_keypair()
    spec["signature"] = signing.sign(other_private, data)


def _swapped_after_signing(spec: dict[str, Any], data: bytes, keys: tuple[bytes, bytes]) -> None:
    # the published file is replaced by another model; the twin still names the old hash and signature
    Path(spec["url"].removeprefix("file://")).write_bytes(mf.digits_model("mlp"))


@pytest.mark.parametrize(
    ("model", "mutate", "expected"),
    [
        (lambda: mf.digits_model("logreg"), _wrong_hash, "sha256"),
        (lambda: mf.digits_model("logreg"), _other_key, "signature"),
        (lambda: mf.digits_model("logreg"), _swapped_after_signing, "sha256"),
        (lambda: mf.tiny_cnn(input_shape=["N", 1, 8, 8]), None, "input"),
    ],
    ids=["hash", "other-key", "swapped-file", "input-shape"],
)
def test_a_bad_model_is_never_loaded(
    tmp_path: Path, model: Any, mutate: Any, expected: str, ledger: AreaLedger
) -> None:
    private, public = signing.generate_keypair()
    with Harness(tmp_path, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        data = model()
        spec = h.publish(data, private, version="9")
        if mutate is not None:
            mutate(spec, data, (private, public))
        ledger.record(inputs=1)
        # when
        h.hub.patch_desired({"public_key": public.decode(), "download_attempts": 1, "model": spec})
        reported = h.wait_model(status="failed")
        # then
        assert expected in reported["error"].lower()
        assert reported["version"] == "1"
        h.hub.push_input("frames", h.digit_frames([4]))
        pred = h.wait_predictions(1)[0]
    assert (pred.status, pred.model_version) == ("ok", "1")
