"""Whether a file a source read can be stored as it is, instead of decoded and encoded again.

A folder source reads image files that are often already in the format capture stores (PNG
frames stored as PNG, JPEG stored as JPEG). When a frame is not resized or turned grey, the
file's own bytes are stored: the same pixels (PNG) or the camera's own JPEG, without an encode
per frame. Only plain 8-bit images pass: a PNG with 16-bit samples, a palette or an alpha
channel, or a file in another format, is encoded as before.
"""

from __future__ import annotations

import struct

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
JPEG_SIGNATURE = b"\xff\xd8\xff"
#: PNG colour types stored as read: grey (0) and truecolour (2), 8 bits a sample.
_PNG_PLAIN = frozenset({0, 2})


def stored_as_read(data: bytes, fmt: str) -> bool:
    """True when ``data`` is a file of the stored format ``fmt`` ('png' or 'jpeg') whose
    decoding capture would store unchanged (8 bits a sample, no palette, no alpha)."""
    if fmt == "jpeg":
        return data.startswith(JPEG_SIGNATURE)
    if fmt == "png":
        return _plain_png(data)
    return False


def _plain_png(data: bytes) -> bool:
    # signature, then the IHDR chunk: length, type, width, height, bit depth, colour type
    if len(data) < 26 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        return False
    depth, colour = struct.unpack_from(">BB", data, 24)
    return depth == 8 and colour in _PNG_PLAIN
