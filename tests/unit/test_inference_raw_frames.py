"""Inference on the raw frame path: the pixels capture wrote, read without decoding, give the
same model input as the lossless file; a torn, damaged or evicted frame is a prediction with
status error and the reason, never a crash, and its batch mates are scored."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from edgeloop_inference.preprocess import Preprocessor, SampleError

from edgeloop import rawframe
from edgeloop.contracts import FrameRef, RawPixels
from edgeloop.model_metadata import Preprocess
from tests import model_factory as mf
from tests.unit.test_inference_module import Harness, reference_labels


def write_raw(path: Path, pixels: np.ndarray) -> Path:
    header, payload = rawframe.pack(pixels)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(header + bytes(payload))
    return path


@pytest.mark.parametrize("color", ["rgb", "bgr", "gray"])
@pytest.mark.parametrize("channels", [3, 1])
def test_a_raw_frame_gives_the_model_input_the_lossless_file_gives(
    tmp_path: Path, color: str, channels: int
) -> None:
    # given: the same pixels as a PNG and as a raw frame
    shape = (20, 28, 3) if channels == 3 else (20, 28)
    pixels = np.random.default_rng(5).integers(0, 256, size=shape, dtype=np.uint8)
    png = tmp_path / "f.png"
    cv2.imwrite(str(png), pixels)
    raw = write_raw(tmp_path / "f.raw", pixels)
    spec = Preprocess(width=14, height=10, color=color, layout="NHWC", scale=1.0)
    pre = Preprocessor.build(spec, ["N", 10, 14, 1 if color == "gray" else 3])
    # when
    from_raw = pre.decode_raw(raw, display="f.raw")
    from_png = pre.decode_file(png, display="f.png")
    # then: the same, except that the PNG decoder's own colour-to-gray conversion rounds
    # differently from OpenCV's by at most one level
    assert from_raw.shape == from_png.shape
    difference = np.abs(from_raw.astype(int) - from_png.astype(int))
    assert difference.max() <= (1 if (color, channels) == ("gray", 3) else 0)


def test_a_claimed_frame_is_still_read_under_its_announced_name(tmp_path: Path) -> None:
    pixels = np.full((4, 4, 3), 9, np.uint8)
    path = write_raw(tmp_path / "f.raw", pixels)
    path.rename(rawframe.claimed_path(path))
    pre = Preprocessor.build(
        Preprocess(width=4, height=4, color="bgr", layout="NHWC", scale=1.0), ["N", 4, 4, 3]
    )
    np.testing.assert_array_equal(pre.decode_raw(path, display="f.raw"), pixels)


def test_a_missing_frame_names_eviction(tmp_path: Path) -> None:
    pre = Preprocessor.build(Preprocess(width=4, height=4, layout="NHWC", scale=1.0), ["N", 4, 4, 3])
    with pytest.raises(SampleError, match="evicted from the frame ring"):
        pre.decode_raw(tmp_path / "gone.raw", display="gone.raw")


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    with Harness(tmp_path, initial=mf.digits_model()) as h:
        h.wait_model(status="loaded")
        yield h


def raw_frames(h: Harness, indices: list[int]) -> list[FrameRef]:
    """Digit frames as capture writes them on the raw path (decoded BGR pixels)."""
    frames = []
    for n, i in enumerate(indices):
        png = h.samples / f"digit-{n}.png"
        mf.write_digit_image(png, i, size=16)
        ref = f"frames/20260105T1200/r{n:04d}.raw"
        write_raw(h.samples / ref, cv2.imread(str(png)))
        frame = mf.frame_ref(1000 + n, file_ref=ref)
        frames.append(frame.model_copy(update={"raw": RawPixels(channels=3, quality=90), "sha256": None}))
    return frames


def test_raw_frames_score_like_the_bare_model_and_bad_ones_are_refused_with_the_reason(
    harness: Harness,
) -> None:
    # given: six raw digit frames; one torn, one damaged, one evicted
    indices = list(range(1000, 1006))
    frames = raw_frames(harness, indices)
    torn = harness.samples / str(frames[1].file_ref)
    torn.write_bytes(torn.read_bytes()[:100])
    damaged = harness.samples / str(frames[2].file_ref)
    data = bytearray(damaged.read_bytes())
    data[-1] ^= 0xFF
    damaged.write_bytes(bytes(data))
    (harness.samples / str(frames[3].file_ref)).unlink()
    # when
    harness.hub.push_input("frames", frames, max_batch=6)
    preds = {p.sample_id: p for p in harness.wait_predictions(6)}
    # then: the good ones score as the model does on the same pixels
    expected = reference_labels(indices)
    for k in (0, 4, 5):
        assert preds[frames[k].sample_id].status == "ok"
        assert preds[frames[k].sample_id].label == expected[k]
    # and each bad one is an error prediction naming what was wrong
    reasons = {k: str(preds[frames[k].sample_id].error) for k in (1, 2, 3)}
    assert all(preds[frames[k].sample_id].status == "error" for k in (1, 2, 3))
    assert "short (torn)" in reasons[1]
    assert "fails its checksum" in reasons[2]
    assert "evicted from the frame ring" in reasons[3]
    assert harness.module.stats()["sample_errors"] == 3
