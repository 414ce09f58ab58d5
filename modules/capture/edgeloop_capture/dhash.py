"""64-bit difference hash (dHash) of an image, for near-duplicate checks downstream.

The image is reduced to 9x8 grey cells; each bit says whether a cell is brighter than its
right-hand neighbour. Near-identical images differ in a few bits (Hamming distance).
"""

from __future__ import annotations

import cv2
import numpy as np

from edgeloop_capture.sources.base import Image

_WIDTH, _HEIGHT = 9, 8
#: Bilinear to 8x the hash size first (then grey), then 8x8 block means: close to one
#: INTER_AREA resize to 9x8 at a fraction of its cost (OpenCV's area resize is slow at odd
#: ratios), and the colour conversion runs on 72x64 pixels instead of the whole frame.
_STEP = 8


def dhash(image: Image) -> str:
    """The dHash of a BGR or grey image as 16 lowercase hex digits."""
    coarse = cv2.resize(image, (_WIDTH * _STEP, _HEIGHT * _STEP), interpolation=cv2.INTER_LINEAR)
    if coarse.ndim == 3:
        coarse = cv2.cvtColor(coarse, cv2.COLOR_BGR2GRAY)
    cells = cv2.resize(coarse, (_WIDTH, _HEIGHT), interpolation=cv2.INTER_AREA)
    bits = cells[:, 1:] > cells[:, :-1]  # compared as uint8: no subtraction, so no wrap-around
    # row by row, the first cell's bit the most significant
    return np.packbits(bits).tobytes().hex()


def hamming(a: str, b: str) -> int:
    """Number of differing bits between two hex hashes."""
    return (int(a, 16) ^ int(b, 16)).bit_count()
