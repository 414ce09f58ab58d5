"""Encoding a raw frame when it is claimed (the memory-backed frame path).

Capture writes raw pixels for inference to read without decoding; only the frames the filter
selects are encoded, here, into the type capture named (``content_type``: JPEG or PNG), so the
uploaded sample is an image file the cloud decodes as on the JPEG path.
"""

from __future__ import annotations

from pathlib import Path

from edgeloop import rawframe
from edgeloop.contracts import RawPixels

_SUFFIXES = {"image/jpeg": ".jpg", "image/png": ".png"}


class RawEncodeError(Exception):
    """A raw frame cannot be turned into an upload; ``category`` says why (``evicted``: its file
    was deleted before it was claimed; ``damaged``: torn, short or a bad checksum; ``io``)."""

    def __init__(self, reason: str, category: str) -> None:
        super().__init__(reason)
        self.category = category


def suffix_for(content_type: str | None) -> str:
    """The file suffix of the encoded upload. Raises ``RawEncodeError`` for a type not encodable."""
    suffix = _SUFFIXES.get(content_type or "")
    if suffix is None:
        raise RawEncodeError(
            f"a raw frame is uploaded as {' or '.join(_SUFFIXES)}, not {content_type!r}", "bad_reference"
        )
    return suffix


def encode_raw_frame(path: Path, *, raw: RawPixels, content_type: str | None, display: str) -> bytes:
    """Read a raw frame and encode it as ``content_type`` with ``raw.quality``.

    Raises:
        RawEncodeError: missing (evicted), damaged, unreadable or not encodable.
    """
    import cv2

    suffix = suffix_for(content_type)
    try:
        image = rawframe.read(path, display=display)
    except FileNotFoundError as exc:
        raise RawEncodeError(
            f"raw frame {display!r} was evicted from capture's frame ring before it was claimed "
            "(capture's frames.ring.evictedUnclaimed counts it; raise frames.max_bytes or the mount size)",
            "evicted",
        ) from exc
    except rawframe.RawFrameError as exc:
        raise RawEncodeError(str(exc), "damaged") from exc
    except OSError as exc:
        raise RawEncodeError(f"cannot read raw frame {display!r}: {exc.strerror or exc}", "io") from exc
    if suffix == ".jpg":
        params = [cv2.IMWRITE_JPEG_QUALITY, max(1, raw.quality)]
    else:
        params = [cv2.IMWRITE_PNG_COMPRESSION, min(9, raw.quality)]
    ok, buffer = cv2.imencode(suffix, image, params)
    if not ok:
        reason = f"raw frame {display!r} ({image.shape}) cannot be encoded as {content_type}"
        raise RawEncodeError(reason, "io")
    return bytes(buffer.tobytes())
