"""The one luma, vectorised: ITU-R 601-2, exactly as Pillow's mode L (``Grayscale.pixel``).

Pillow converts RGB to L in fixed point, ``L = (R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16``: the
weights 0.299, 0.587, 0.114 in units of 2⁻¹⁶, rounded half up. Integer pixels (8 and 16 bits) go
through that formula, so a uint8 image's luma equals ``Image.convert("L")`` bit for bit; floats
(arrays, or values after a float stage) use the weights themselves in float32.

    >>> import numpy as np
    >>> luma(np.array([255, 0, 0], np.uint8).reshape(1, 3, 1, 1)).ravel().tolist()
    [76]
"""

from __future__ import annotations

import numpy as np

from ..core.ops.pointwise import Grayscale

# The constants are Grayscale's (core), so numpy, torch and explain's textbook loop share them.
FIXED_POINT_WEIGHTS = Grayscale.fixed_point_weights  # 0.299, 0.587, 0.114 · 2¹⁶, Pillow's ImagingConvertRGB2L
FIXED_POINT_SHIFT = Grayscale.fixed_point_shift
FLOAT_WEIGHTS = Grayscale.weights


def luma(x: np.ndarray) -> np.ndarray:
    """N×C×H×W → N×1×H×W: channel 0 for L and LA, the ITU-R 601-2 luma of RGB(A) (alpha dropped)."""
    if x.shape[1] < 3:
        return x[:, :1].copy()
    red, green, blue = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    if x.dtype in (np.uint8, np.uint16, np.int32):
        wr, wg, wb = FIXED_POINT_WEIGHTS
        total = red.astype(np.int64) * wr
        total += green * np.int64(wg)
        total += blue * np.int64(wb)
        total += 1 << (FIXED_POINT_SHIFT - 1)
        return (total >> FIXED_POINT_SHIFT).astype(x.dtype)
    wr, wg, wb = (np.float32(w) for w in FLOAT_WEIGHTS)
    return (red * wr + green * wg + blue * wb).astype(np.float32, copy=False)
