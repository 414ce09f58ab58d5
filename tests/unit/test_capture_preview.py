"""MJPG packets are not decoded whole: the size comes from the JPEG header and the dHash from a
grey decode at a fraction of the size (the preview); the pipeline decodes the packet whole only
when it needs the pixels."""

from __future__ import annotations

import struct
import threading
from datetime import UTC, datetime
from pathlib import Path

import cv2
import edgeloop_capture.pipeline as pipeline_module
import numpy as np
import pytest
from edgeloop_capture.dhash import dhash, hamming
from edgeloop_capture.ids import SampleIds
from edgeloop_capture.pipeline import EncodeError, FramePipeline
from edgeloop_capture.ring import RawRing
from edgeloop_capture.sources import mjpeg
from edgeloop_capture.sources.base import Captured
from edgeloop_capture.testing import write_video
from edgeloop_capture.writer import FRAMES_DIR, SampleWriter

from edgeloop import rawframe
from tests.support import wait_for
from tests.unit.capture_support import Capture
from tests.unit.test_capture_module import folder_settings

AT = datetime(2026, 1, 5, 12, 0, 0, tzinfo=UTC)


def scene(seed: int, width: int = 640, height: int = 480) -> np.ndarray:
    """A smooth colour scene with a little grain, like a camera's (not a synthetic pattern)."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
    image = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    return cv2.add(image, rng.integers(0, 12, size=image.shape, dtype=np.uint8))


def jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return buf.tobytes()


def with_orientation(data: bytes, orientation: int) -> bytes:
    """``data`` with an EXIF segment saying how the image is turned (big-endian TIFF, one tag)."""
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">HHHIHHI", 1, 0x0112, 3, 1, orientation, 0, 0)
    body = b"Exif\x00\x00" + tiff
    return data[:2] + b"\xff\xe1" + struct.pack(">H", len(body) + 2) + body + data[2:]


@pytest.mark.parametrize(("width", "height"), [(640, 480), (642, 481), (64, 48), (1920, 1080)])
def test_the_size_comes_from_the_jpeg_header(width: int, height: int) -> None:
    assert mjpeg.jpeg_size(jpeg(scene(1, width, height))) == (width, height)


@pytest.mark.parametrize(
    "data",
    [b"", b"\xff\xd8", b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)), b"\xff\xd8\xff\xda\x00\x02"],
    ids=["empty", "only SOI", "garbage after a header", "scan before any frame header"],
)
def test_a_jpeg_without_a_frame_header_has_no_size(data: bytes) -> None:
    assert mjpeg.jpeg_size(data) is None


def test_a_frame_header_cut_short_has_no_size() -> None:
    data = jpeg(scene(1, 64, 48))
    sof = data.index(b"\xff\xc0")
    assert mjpeg.jpeg_size(data[: sof + 6]) is None


@pytest.mark.parametrize(
    ("width", "height", "preview"),
    [
        (640, 480, (60, 80)),
        (642, 481, (61, 81)),
        (320, 240, (60, 80)),
        (100, 80, (40, 50)),
        (64, 48, (48, 64)),
    ],
)
def test_the_preview_is_grey_at_the_smallest_scale_that_leaves_4x4_pixels_a_hash_cell(
    width: int, height: int, preview: tuple[int, int]
) -> None:
    # when
    packet = mjpeg.preview(jpeg(scene(2, width, height)))
    # then
    assert packet is not None
    assert (packet.width, packet.height) == (width, height)
    assert packet.preview.shape == preview
    assert packet.preview.dtype == np.uint8


def test_the_preview_dhash_is_near_the_whole_decodes_and_keeps_near_duplicates_apart() -> None:
    for seed in range(20):
        # given: a frame, the same frame a shade brighter, and another frame
        data, brighter, other = (
            jpeg(scene(seed)),
            jpeg(cv2.add(scene(seed), np.full((480, 640, 3), 3, np.uint8))),
            jpeg(scene(seed + 100)),
        )
        # when
        hashes = [mjpeg.preview(d) for d in (data, brighter, other)]
        assert all(h is not None for h in hashes)
        h, h_brighter, h_other = (dhash(p.preview) for p in hashes if p is not None)
        whole = dhash(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
        # then: the filter's default max_distance (4) still tells them apart
        assert hamming(h, whole) <= 2
        assert hamming(h, h_brighter) <= 4
        assert hamming(h, h_other) > 4


def test_a_turned_frame_has_the_size_a_whole_decode_gives() -> None:
    # given: a 640x480 JPEG whose EXIF says it is turned a quarter (orientation 6)
    data = with_orientation(jpeg(scene(3)), 6)
    whole = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert whole.shape[:2] == (640, 480)
    # when
    packet = mjpeg.preview(data)
    # then
    assert packet is not None
    assert (packet.height, packet.width) == whole.shape[:2]
    assert packet.preview.shape == (80, 60)


def test_a_packet_libjpeg_cannot_decode_has_no_preview() -> None:
    data = jpeg(scene(4))
    start = data.index(b"\xff\xda")
    broken = data[: start + 2] + b"\x00\x01" + data[start + 4 :]  # a scan header of impossible length
    assert mjpeg.preview(broken) is None
    assert mjpeg.preview(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)) * 4) is None


def test_a_frame_claiming_more_pixels_than_opencv_decodes_whole_has_no_preview() -> None:
    # given: a frame header saying 65535x65535 (over OpenCV's 2^30 pixels)
    data = jpeg(scene(9, 64, 48))
    sof = data.index(b"\xff\xc0")
    huge = data[: sof + 5] + struct.pack(">HH", 65535, 65535) + data[sof + 9 :]
    assert mjpeg.jpeg_size(huge) == (65535, 65535)
    # then
    assert mjpeg.preview(huge) is None


def previewed(data: bytes) -> Captured:
    packet = mjpeg.preview(data)
    assert packet is not None
    return Captured(encoded=packet.data, preview=packet.preview, size=(packet.width, packet.height))


def test_a_previewed_frame_is_stored_as_read_with_its_size_and_preview_hash(tmp_path: Path) -> None:
    # given
    data = jpeg(scene(5))
    captured = previewed(data)
    # when
    ref = FramePipeline(SampleWriter(tmp_path), SampleIds()).process(
        folder_settings(), captured, seq=0, captured_at=AT
    )
    # then: the packet's bytes, not decoded whole
    assert ref.file_ref is not None
    assert (tmp_path / ref.file_ref).read_bytes() == data
    assert (ref.width, ref.height, ref.bytes) == (640, 480, len(data))
    assert ref.dhash == dhash(mjpeg.preview(data).preview)  # type: ignore[union-attr]
    assert captured.image is None


@pytest.mark.parametrize(
    ("settings", "size"),
    [({"max_width": 320}, (320, 240)), ({"grayscale": True}, (640, 480)), ({"format": "png"}, (640, 480))],
    ids=["resized", "grey", "png"],
)
def test_a_previewed_frame_whose_pixels_are_needed_is_decoded_whole(
    tmp_path: Path, settings: dict[str, object], size: tuple[int, int]
) -> None:
    # given
    data = jpeg(scene(6))
    # when
    ref = FramePipeline(SampleWriter(tmp_path), SampleIds()).process(
        folder_settings(**settings), previewed(data), seq=0, captured_at=AT
    )
    # then: encoded from the whole decode at the settings
    assert ref.file_ref is not None
    stored = (tmp_path / ref.file_ref).read_bytes()
    assert stored != data
    decoded = cv2.imdecode(np.frombuffer(stored, np.uint8), cv2.IMREAD_UNCHANGED)
    assert (decoded.shape[1], decoded.shape[0]) == size == (ref.width, ref.height)
    assert decoded.ndim == (2 if settings.get("grayscale") else 3)


def test_a_previewed_frame_on_the_raw_path_is_stored_as_its_whole_decode(tmp_path: Path) -> None:
    # given
    data = jpeg(scene(7))
    p = FramePipeline(
        SampleWriter(tmp_path),
        SampleIds(),
        raw_writer=SampleWriter(tmp_path, subdir=FRAMES_DIR),
        ring=RawRing(max_bytes=10**9),
    )
    p.store_kind = "raw"
    # when
    ref = p.process(folder_settings(), previewed(data), seq=0, captured_at=AT)
    # then: the pixels of a whole decode
    assert ref.file_ref is not None
    assert ref.raw is not None
    pixels = rawframe.read(tmp_path / ref.file_ref, display="x")
    assert np.array_equal(pixels, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    # and its dHash is the preview's, as on the JPEG path: a source's hashes do not change with
    # the store kind
    packet = mjpeg.preview(data)
    assert packet is not None
    assert ref.dhash == dhash(packet.preview)


def test_a_previewed_frame_that_does_not_decode_whole_is_an_encode_error(tmp_path: Path) -> None:
    # given: a preview of one frame standing beside bytes that are not a JPEG
    captured = previewed(jpeg(scene(8)))
    captured.encoded = b"\xff\xd8\xff" + bytes(100)
    # then
    with pytest.raises(EncodeError, match="could not decode"):
        FramePipeline(SampleWriter(tmp_path), SampleIds()).prepare(
            folder_settings(max_width=100), captured, captured_at=AT
        )


def test_an_mjpg_video_frame_is_not_decoded_whole_and_its_reference_has_its_size(tmp_path: Path) -> None:
    # given: a 640x480 MJPG video read as packets
    write_video(tmp_path / "input" / "clip.avi", 4, width=640, height=480)
    source = {"id": "cam", "kind": "video", "path": "input/clip.avi", "realtime": False}
    # when
    with Capture(tmp_path, {"sources": [source]}) as capture:
        wait_for(lambda: len(capture.frames()) == 4)
        refs = capture.frames()
    # then: each reference has the frame's size and the preview's dHash of the stored JPEG
    for ref in refs:
        assert ref.file_ref is not None
        stored = (tmp_path / ref.file_ref).read_bytes()
        packet = mjpeg.preview(stored)
        assert packet is not None
        assert (ref.width, ref.height) == (640, 480)
        assert ref.dhash == dhash(packet.preview)


def raw_pipeline(root: Path, store: str = "raw") -> FramePipeline:
    p = FramePipeline(
        SampleWriter(root),
        SampleIds(),
        raw_writer=SampleWriter(root, subdir=FRAMES_DIR),
        ring=RawRing(max_bytes=10**9),
    )
    p.store_kind = store
    return p


def test_a_packet_decoded_ahead_is_not_decoded_again_and_stores_the_same_pixels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a packet decoded ahead, as the source's thread does on the raw path
    data = jpeg(scene(10))
    p = raw_pipeline(tmp_path)
    captured = previewed(data)
    p.decode_ahead(folder_settings(), captured)
    assert captured.image is not None
    decodes: list[bytes | None] = []
    monkeypatch.setattr(pipeline_module, "decode", lambda d: decodes.append(d) or captured.image)
    # when: stored
    ref = p.process(folder_settings(), captured, seq=0, captured_at=AT)
    # then: no second decode, the pixels of a whole decode, the preview's dHash
    assert decodes == []
    assert ref.file_ref is not None
    pixels = rawframe.read(tmp_path / ref.file_ref, display="x")
    assert np.array_equal(pixels, cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR))
    assert ref.dhash == dhash(mjpeg.preview(data).preview)  # type: ignore[union-attr]


def test_decoding_ahead_leaves_a_packet_the_jpeg_path_stores_as_read(tmp_path: Path) -> None:
    data = jpeg(scene(11))
    p = raw_pipeline(tmp_path, store="jpeg")
    captured = previewed(data)
    p.decode_ahead(folder_settings(), captured)
    assert captured.image is None
    ref = p.process(folder_settings(), captured, seq=0, captured_at=AT)
    assert ref.file_ref is not None
    assert (tmp_path / ref.file_ref).read_bytes() == data


def test_a_packet_that_does_not_decode_ahead_is_still_an_encode_error_when_stored(tmp_path: Path) -> None:
    # given: a preview beside bytes that are not a JPEG, on the raw path
    captured = previewed(jpeg(scene(12)))
    captured.encoded = b"\xff\xd8\xff" + bytes(100)
    p = raw_pipeline(tmp_path)
    # when: decoding ahead fails quietly
    p.decode_ahead(folder_settings(), captured)
    assert captured.image is None
    # then: storing it reports why, as before
    with pytest.raises(EncodeError, match="could not decode"):
        p.prepare(folder_settings(), captured, captured_at=AT)


def test_on_the_raw_path_an_mjpg_frame_is_decoded_on_the_source_thread_not_the_store_stage(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given: a 640x480 MJPG video read as packets, frames stored raw; each whole decode's thread
    write_video(tmp_path / "input" / "clip.avi", 4, width=640, height=480)
    source = {"id": "cam", "kind": "video", "path": "input/clip.avi", "realtime": False}
    threads: list[str] = []
    whole = pipeline_module.decode

    def decode(data: bytes | None) -> np.ndarray:
        threads.append(threading.current_thread().name)
        return whole(data)

    monkeypatch.setattr(pipeline_module, "decode", decode)
    # when
    with Capture(tmp_path, {"sources": [source], "frames": {"store": "raw"}}) as capture:
        wait_for(lambda: len(capture.frames()) == 4)
        refs = capture.frames()
    # then: the source's own thread decoded each frame once, and the raw frames are the whole
    # decodes of the video's packets
    assert threads == ["capture-cam"] * 4
    cap = mjpeg.open_packets(tmp_path / "input" / "clip.avi")
    assert cap is not None
    for ref in refs:
        assert cap.grab()
        packet = mjpeg.retrieve(cap)
        assert packet is not None
        expected = cv2.imdecode(np.frombuffer(packet.data, np.uint8), cv2.IMREAD_COLOR)
        assert ref.raw is not None
        assert ref.file_ref is not None
        assert np.array_equal(rawframe.read(tmp_path / ref.file_ref, display="x"), expected)
    cap.release()
