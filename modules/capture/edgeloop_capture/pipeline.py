"""From a captured frame to a sample on the volume and its ``FrameRef``."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import cv2
import numpy as np

from edgeloop import rawframe
from edgeloop.contracts import FrameRef, RawPixels
from edgeloop_capture import observe
from edgeloop_capture.dhash import dhash
from edgeloop_capture.encoded import stored_as_read
from edgeloop_capture.ids import SampleIds
from edgeloop_capture.ring import RawRing
from edgeloop_capture.sources.base import Captured, Image, ImageSettings, SourceSettings
from edgeloop_capture.writer import SampleWriter

CONTENT_TYPES = {"jpeg": ("jpg", "image/jpeg"), "png": ("png", "image/png")}


class EncodeError(Exception):
    """OpenCV could not encode a frame."""


def fit_scale(width: int, height: int, max_width: int | None, max_height: int | None) -> float:
    """The factor that fits a ``width`` x ``height`` image to the limits (1.0: it fits)."""
    return min(
        (max_width / width) if max_width else 1.0,
        (max_height / height) if max_height else 1.0,
        1.0,
    )


def fit(image: Image, max_width: int | None, max_height: int | None) -> Image:
    """Downscale to fit the limits, keeping the aspect ratio; never upscales."""
    height, width = image.shape[:2]
    scale = fit_scale(width, height, max_width, max_height)
    if scale >= 1.0:
        return image
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def encode(image: Image, settings: ImageSettings) -> bytes:
    if settings.format == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, settings.jpeg_quality]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, settings.png_compression]
    ok, buf = cv2.imencode("." + CONTENT_TYPES[settings.format][0], image, params)
    if not ok:
        raise EncodeError(f"OpenCV could not encode a {image.shape} frame as {settings.format}")
    return buf.tobytes()


def decode(data: bytes | None) -> Image:
    """A frame the source left encoded, decoded whole (BGR). Raises ``EncodeError``."""
    image = None if data is None else cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise EncodeError("OpenCV could not decode the frame as read")
    return image


def new_traceparent() -> str:
    """A W3C trace context starting a trace for this sample (capture is where it begins)."""
    ids = os.urandom(24).hex()
    return f"00-{ids[:32]}-{ids[32:]}-01"


def _trace(
    sample_id: str, source_id: str, captured_at: datetime, *, file_ref: str | None, size: int | None
) -> str:
    """The sample's ``capture`` span recorded (and counted); its traceparent, or a new one
    when no span is made."""
    return (
        observe.record_capture(sample_id, source_id, captured_at, file_ref=file_ref, size=size)
        or new_traceparent()
    )


@dataclass(frozen=True)
class Prepared:
    """A frame encoded and hashed (or kept as pixels, on the raw path), ready to be written; or
    a sensor vector (neither ``data`` nor ``pixels``)."""

    captured: Captured
    captured_at: datetime
    data: bytes | None = None
    pixels: np.ndarray | None = None
    raw_parts: tuple[bytes, memoryview] | None = None  # header and payload of a raw frame
    width: int | None = None
    height: int | None = None
    dhash: str | None = None


class FramePipeline:
    """Resize, hash, encode and write a frame; describe it as a ``FrameRef``. A file read in
    the stored format and not resized is stored as read, not encoded again (``encoded``); one
    the source did not decode whole (``preview``) is decoded only when its pixels are needed.

    ``prepare`` (pixels) and ``store`` (file and reference) can run on different threads.
    With ``store == "raw"`` (and a raw writer and ring) frames skip encoding: the pixels are
    written as a raw frame file into the ring.
    """

    def __init__(
        self,
        writer: SampleWriter,
        ids: SampleIds,
        *,
        raw_writer: SampleWriter | None = None,
        ring: RawRing | None = None,
    ) -> None:
        self.writer = writer
        self.ids = ids
        self.raw_writer = raw_writer
        self.ring = ring
        self.store_kind = "jpeg"

    @property
    def raw(self) -> bool:
        return self.store_kind == "raw" and self.raw_writer is not None and self.ring is not None

    def process(
        self, settings: SourceSettings, captured: Captured, *, seq: int, captured_at: datetime
    ) -> FrameRef:
        """``prepare`` then ``store``."""
        return self.store(settings, self.prepare(settings, captured, captured_at=captured_at), seq=seq)

    def decode_ahead(self, settings: SourceSettings, captured: Captured) -> None:
        """Decode whole, now, a frame the raw path will need the pixels of (one the source left
        encoded: an MJPG packet). The source's thread calls this before handing the frame to its
        store stage, so the decode of one frame overlaps the checksum and write of the one
        before (OpenCV and the file system calls release the GIL); on the JPEG path, and for a
        frame the source decoded itself, it does nothing. A frame that does not decode is left
        as it was: ``prepare`` tries again and reports it."""
        if (
            self.raw
            and captured.image is None
            and captured.encoded is not None
            and isinstance(settings, ImageSettings)
        ):
            with contextlib.suppress(EncodeError):
                captured.image = decode(captured.encoded)

    def prepare(self, settings: SourceSettings, captured: Captured, *, captured_at: datetime) -> Prepared:
        """Raises ``EncodeError``."""
        if captured.image is None and captured.preview is None:
            return Prepared(captured=captured, captured_at=captured_at)
        assert isinstance(settings, ImageSettings)
        if captured.image is None:
            prepared = self._as_read_from_preview(settings, captured, captured_at=captured_at)
            if prepared is not None:
                return prepared
            captured.image = decode(captured.encoded)
        image = fit(captured.image, settings.max_width, settings.max_height)
        unchanged = image is captured.image
        if settings.grayscale and image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
            unchanged = False
        height, width = image.shape[:2]
        # a source's hashes are all taken the same way, whatever the store kind
        hashed = dhash(image if captured.preview is None else captured.preview)
        if self.raw:
            try:
                raw_parts = rawframe.pack(image)
            except ValueError as exc:
                raise EncodeError(str(exc)) from exc
            return Prepared(
                captured=captured,
                captured_at=captured_at,
                pixels=image,
                raw_parts=raw_parts,
                width=width,
                height=height,
                dhash=hashed,
            )
        as_read = captured.encoded if unchanged else None
        if as_read is None or not stored_as_read(as_read, settings.format):
            as_read = encode(image, settings)
        return Prepared(
            captured=captured,
            captured_at=captured_at,
            data=as_read,
            width=width,
            height=height,
            dhash=hashed,
        )

    def _as_read_from_preview(
        self, settings: ImageSettings, captured: Captured, *, captured_at: datetime
    ) -> Prepared | None:
        """A frame the source did not decode whole, stored as read with its size and its
        preview's dHash; None when its pixels are needed (raw frames, resized, grey, another
        format)."""
        assert captured.preview is not None
        assert captured.size is not None
        width, height = captured.size
        if (
            self.raw
            or settings.grayscale
            or captured.encoded is None
            or fit_scale(width, height, settings.max_width, settings.max_height) < 1.0
            or not stored_as_read(captured.encoded, settings.format)
        ):
            return None
        return Prepared(
            captured=captured,
            captured_at=captured_at,
            data=captured.encoded,
            width=width,
            height=height,
            dhash=dhash(captured.preview),
        )

    def store(self, settings: SourceSettings, prepared: Prepared, *, seq: int) -> FrameRef:
        """Write the file (images) and describe the sample. Raises ``OSError``."""
        captured_at = prepared.captured_at
        sample_id = self.ids.new(captured_at)
        common = {
            "sample_id": sample_id,
            "source_id": settings.id,
            "seq": seq,
            "captured_at": captured_at,
            "attributes": prepared.captured.attributes,
        }
        if prepared.pixels is not None:
            assert isinstance(settings, ImageSettings)
            return self._store_raw(settings, prepared, common=common)
        if prepared.data is None:
            traceparent = _trace(sample_id, settings.id, captured_at, file_ref=None, size=None)
            return FrameRef(
                kind="vector", vector=prepared.captured.vector or [], traceparent=traceparent, **common
            )
        assert isinstance(settings, ImageSettings)
        ext, content_type = CONTENT_TYPES[settings.format]
        written = self.writer.write(prepared.data, sample_id=sample_id, captured_at=captured_at, ext=ext)
        traceparent = _trace(
            sample_id, settings.id, captured_at, file_ref=written.file_ref, size=written.size
        )
        return FrameRef(
            traceparent=traceparent,
            kind="image",
            file_ref=written.file_ref,
            content_type=content_type,
            width=prepared.width,
            height=prepared.height,
            bytes=written.size,
            sha256=written.sha256,
            dhash=prepared.dhash,
            **common,
        )

    def _store_raw(
        self,
        settings: ImageSettings,
        prepared: Prepared,
        *,
        common: dict[str, Any],
    ) -> FrameRef:
        assert prepared.pixels is not None
        assert prepared.raw_parts is not None
        assert self.raw_writer is not None
        assert self.ring is not None
        header, payload = prepared.raw_parts
        sample_id = common["sample_id"]
        written = self.raw_writer.write(
            [header, payload],
            sample_id=sample_id,
            captured_at=prepared.captured_at,
            ext=rawframe.SUFFIX,
            digest=False,
        )
        self.ring.add(written, sample_id=sample_id)
        traceparent = _trace(
            sample_id, settings.id, prepared.captured_at, file_ref=written.file_ref, size=written.size
        )
        channels = 1 if prepared.pixels.ndim == 2 else 3
        quality = settings.jpeg_quality if settings.format == "jpeg" else settings.png_compression
        return FrameRef(
            traceparent=traceparent,
            kind="image",
            file_ref=written.file_ref,
            content_type=CONTENT_TYPES[settings.format][1],
            width=prepared.width,
            height=prepared.height,
            bytes=written.size,
            dhash=prepared.dhash,
            raw=RawPixels(channels=channels, quality=quality),
            **common,
        )
