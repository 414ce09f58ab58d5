"""A model's embedding of one sample, compact enough to ride along in a prediction.

``Prediction.embedding`` carries at most ``MAX_EMBEDDING_VALUES`` values as little-endian
IEEE float16, base64-encoded: 64 values are 128 bytes, 172 characters. Pure Python (``struct``),
so every module can read it without numpy.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Iterable

from edgeloop.errors import ContractError

#: The most values an embedding may have (a model's larger embedding is not forwarded).
MAX_EMBEDDING_VALUES = 64
#: The largest finite float16; larger magnitudes are clipped to it when encoding.
FLOAT16_MAX = 65504.0
#: Characters of the base64 text of a full-length embedding.
MAX_EMBEDDING_CHARS = 4 * math.ceil(2 * MAX_EMBEDDING_VALUES / 3)


class EmbeddingError(ContractError):
    """An embedding cannot be encoded or decoded (the message says why)."""


def encode_embedding(values: Iterable[float]) -> str:
    """Base64 of the values as little-endian float16 (values beyond +-65504 are clipped).

    Raises:
        EmbeddingError: no values, more than ``MAX_EMBEDDING_VALUES``, or a NaN/infinity.
    """
    floats = [float(v) for v in values]
    if not floats:
        raise EmbeddingError("an embedding needs at least one value")
    if len(floats) > MAX_EMBEDDING_VALUES:
        raise EmbeddingError(f"an embedding has at most {MAX_EMBEDDING_VALUES} values, got {len(floats)}")
    if not all(math.isfinite(v) for v in floats):
        raise EmbeddingError("an embedding's values must be finite (got NaN or infinity)")
    clipped = [min(FLOAT16_MAX, max(-FLOAT16_MAX, v)) for v in floats]
    return base64.b64encode(struct.pack(f"<{len(clipped)}e", *clipped)).decode("ascii")


def decode_embedding(text: str) -> tuple[float, ...]:
    """The values of an embedding written by ``encode_embedding``.

    Raises:
        EmbeddingError: not base64, an odd number of bytes, none or more than
            ``MAX_EMBEDDING_VALUES`` values, or a NaN/infinity among them.
    """
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error, ValueError) as exc:
        raise EmbeddingError(f"embedding is not base64: {exc}") from exc
    if not raw or len(raw) % 2:
        raise EmbeddingError(f"embedding holds {len(raw)} bytes; float16 values take 2 bytes each")
    count = len(raw) // 2
    if count > MAX_EMBEDDING_VALUES:
        raise EmbeddingError(f"embedding has {count} values; at most {MAX_EMBEDDING_VALUES} are accepted")
    values = struct.unpack(f"<{count}e", raw)
    if not all(math.isfinite(v) for v in values):
        raise EmbeddingError("embedding holds NaN or infinite values")
    return values
