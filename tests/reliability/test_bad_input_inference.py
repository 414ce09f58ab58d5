"""Bad input against inference: truncated, garbage, empty, hostile and huge images (encoded
files, and raw frames of the memory-backed frame path), vectors with
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

from edgeloop import rawframe, signing
from edgeloop.contracts import RawPixels
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


def _raw(pixels: np.ndarray) -> bytes:
    header, payload = rawframe.pack(pixels)
    return header + bytes(payload)


def _raw_with(header_fields: dict[str, int], payload: bytes = b"") -> bytes:
    fields = {"version": 1, "dtype": 1, "channels": 3, "width": 16, "height": 16, "length": 768, "crc": 0}
    fields.update(header_fields)
    header = rawframe.HEADER.pack(
        rawframe.MAGIC, fields["version"], fields["dtype"], fields["channels"], 0,
        fields["width"], fields["height"], fields["length"], fields["crc"],
    )  # fmt: skip
    return header + payload


_GOOD_RAW = _raw(np.full((16, 16, 3), 90, np.uint8))
BAD_RAW_FRAMES: dict[str, tuple[bytes, str]] = {
    "torn-header": (_GOOD_RAW[:20], "shorter than its header"),
    "torn-pixels": (_GOOD_RAW[:-100], "short (torn)"),
    "longer": (_GOOD_RAW + b"\0", "longer than its header says"),
    "flipped-bit": (_GOOD_RAW[:-1] + bytes([_GOOD_RAW[-1] ^ 1]), "fails its checksum"),
    "jpeg-named-raw": (_digit_jpeg(3), "not a raw frame"),
    "zero-bytes": (b"", "shorter than its header"),
    "bomb-header": (_raw_with({"width": 60_000, "height": 60_000, "length": 60_000**2 * 3}), "claims"),
    "lying-length": (_raw_with({"length": 10}), "claims a payload of 10 bytes"),
    "future-version": (_raw_with({"version": 7}), "format version 7"),
    "four-channels": (_raw_with({"channels": 4, "length": 1024}), "16x16x4"),
}


def test_bad_raw_frames_get_one_error_record_each_naming_why_and_good_frames_are_scored(
    tmp_path: Path, ledger: AreaLedger
) -> None:
    with Harness(tmp_path, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        # given: good frames around a corpus of torn, damaged and hostile raw frames
        before = h.digit_frames([1, 2])
        bad = {}
        for n, (name, (data, _)) in enumerate(BAD_RAW_FRAMES.items(), start=700):
            ref = f"frames/{name}.raw"
            (h.samples / ref).write_bytes(data)
            raw = RawPixels(channels=3, quality=90)
            bad[name] = mf.frame_ref(n, file_ref=ref).model_copy(update={"raw": raw, "sha256": None})
        after = h.digit_frames([4, 5])
        frames = [*before, *bad.values(), *after]
        ledger.record(inputs=len(bad))
        # when
        h.hub.push_input("frames", frames, max_batch=4)
        preds = h.wait_predictions(len(frames), timeout=60)
        alive = h.thread.is_alive()
    # then: one prediction per frame; the bad ones are errors naming the frame and the reason
    by_id = {p.sample_id: p for p in preds}
    assert sorted(by_id) == sorted(f.sample_id for f in frames)
    assert len(preds) == len(frames)
    ledger.record(lost=len({f.sample_id for f in frames} - set(by_id)))
    assert alive
    assert all(by_id[f.sample_id].status == "ok" for f in [*before, *after])
    for name, frame in bad.items():
        pred = by_id[frame.sample_id]
        assert pred.status == "error", name
        assert f"{name}.raw" in (pred.error or ""), pred.error
        assert BAD_RAW_FRAMES[name][1] in (pred.error or ""), f"{name}: {pred.error}"


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
