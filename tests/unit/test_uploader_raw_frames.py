"""Encode on claim: a raw frame selected for upload is encoded (PNG or JPEG, as capture asked)
and uploaded as an image the cloud decodes; the raw file is marked claimed once recorded; an
evicted, torn or damaged frame is refused with the reason and counted."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edgeloop import rawframe
from edgeloop.contracts import RawPixels, SelectedSample
from tests.unit.uploader_support import Harness, prediction, selected


def raw_selected(samples: Path, sample_id: str, *, content_type: str = "image/png", quality: int = 3,
                 write: bool = True) -> tuple[SelectedSample, np.ndarray]:  # fmt: skip
    pixels = np.random.default_rng(len(sample_id)).integers(0, 256, size=(24, 32, 3), dtype=np.uint8)
    file_ref = f"frames/20260105T1230/{sample_id}.raw"
    header, payload = rawframe.pack(pixels)
    if write:
        (samples / file_ref).parent.mkdir(parents=True, exist_ok=True)
        (samples / file_ref).write_bytes(header + bytes(payload))
    base = prediction(sample_id, file_ref=file_ref)
    frame = base.frame.model_copy(
        update={
            "content_type": content_type,
            "raw": RawPixels(channels=3, quality=quality),
            "bytes": rawframe.HEADER_SIZE + pixels.nbytes,
            "width": 32,
            "height": 24,
        }
    )
    item = selected(samples, sample_id, write=False)
    return item.model_copy(update={"prediction": base.model_copy(update={"frame": frame})}), pixels


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def test_a_raw_frame_is_encoded_on_claim_and_uploads_as_the_image(h: Harness) -> None:
    # given
    item, pixels = raw_selected(h.samples, "01R1")
    raw_file = h.samples / str(item.prediction.frame.file_ref)
    # when
    assert h.uploader.accept_selected(item)
    h.pump()
    # then: a PNG blob whose pixels are the frame's
    name = "digits/3/2026/01/05/dev-1/01R1.png.elenv"
    assert h.store.puts == [name]
    assert h.store.blobs[name].metadata["content_type"] == "image/png"
    decoded = cv2.imdecode(np.frombuffer(h.open_sample("01R1"), np.uint8), cv2.IMREAD_COLOR)
    assert np.array_equal(decoded, pixels)
    # and the raw frame is marked claimed, for capture's janitor to release
    assert not raw_file.exists()
    assert rawframe.claimed_path(raw_file).exists()
    assert h.uploader.counters["raw_claimed"] == 1


def test_a_jpeg_is_encoded_with_the_quality_capture_named(tmp_path: Path) -> None:
    # given: no key yet: the encoded sample waits in claims as plaintext
    h = Harness(tmp_path, key=None)
    low, _ = raw_selected(h.samples, "01RL", content_type="image/jpeg", quality=5)
    high, _ = raw_selected(h.samples, "01RH", content_type="image/jpeg", quality=95)
    # when
    assert h.uploader.accept_selected(low)
    assert h.uploader.accept_selected(high)
    # then
    claims = {p.name: p.read_bytes() for p in (h.outbox / "claims").iterdir()}
    assert set(claims) == {"01RL.jpg", "01RH.jpg"}
    assert all(data[:2] == b"\xff\xd8" for data in claims.values())
    assert len(claims["01RL.jpg"]) < len(claims["01RH.jpg"])


def test_an_evicted_raw_frame_is_refused_as_evicted_and_counted(h: Harness) -> None:
    # given: capture's ring evicted the frame before the uploader got to it
    item, _ = raw_selected(h.samples, "01RE", write=False)
    # when
    assert not h.uploader.accept_selected(item)
    # then
    assert h.uploader.counters["rejected_evicted"] == 1
    rejection = h.uploader.stats()["recent_rejections"][-1]
    assert rejection["sample_id"] == "01RE"
    assert "evicted from capture's frame ring before it was claimed" in rejection["reason"]
    assert h.store.puts == []


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda b: b[: len(b) // 2], "short (torn)"),
        (lambda b: b[:-1] + bytes([b[-1] ^ 1]), "fails its checksum"),
    ],
)
def test_a_torn_or_damaged_raw_frame_is_refused_with_the_reason(h: Harness, damage, reason: str) -> None:  # type: ignore[no-untyped-def]
    # given
    item, _ = raw_selected(h.samples, "01RD")
    path = h.samples / str(item.prediction.frame.file_ref)
    path.write_bytes(damage(path.read_bytes()))
    # when
    assert not h.uploader.accept_selected(item)
    # then
    assert h.uploader.counters["rejected_damaged"] == 1
    assert reason in h.uploader.stats()["recent_rejections"][-1]["reason"]


def test_a_redelivered_raw_sample_is_a_duplicate_and_its_frame_is_still_claimed(h: Harness) -> None:
    # given: recorded by an earlier life that died before it renamed the frame
    item, _ = raw_selected(h.samples, "01RR")
    assert h.uploader.accept_selected(item)
    path = h.samples / str(item.prediction.frame.file_ref)
    rawframe.claimed_path(path).rename(path)
    # when: the selection comes again
    assert not h.uploader.accept_selected(item)
    # then: not taken twice, and the frame is claimed now
    assert h.uploader.counters["duplicates"] == 1
    assert rawframe.claimed_path(path).exists()
    h.pump()
    assert len(h.store.puts) == 1
