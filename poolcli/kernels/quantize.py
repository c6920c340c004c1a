"""The one quantizer's arithmetic: [0, 1] floats → image integers.

round(clip(x, 0, 1) · maxval), half to even as ``torch.round`` and ``np.rint`` both round
(2.5 → 2, 3.5 → 4), NaN → 0. Which values get here, and whether they are first stretched or
folded (``--normalize``), is ``poolcli.execute.quantize``'s policy; the torch engine's same
arithmetic is ``poolcli.kernels.torch.levels``. The encoder (``poolcli.io``) brings float arrays
and 16-bit pixels to an 8-bit format through ``image_integers``.

    >>> import numpy as np
    >>> to_integers(np.array([0.5 / 255, 1.5 / 255, 2.0, np.nan], np.float32), 255, np.uint8).tolist()
    [0, 2, 255, 0]
"""

from __future__ import annotations

import numpy as np


def levels(unit: np.ndarray, out_max: int) -> np.ndarray:
    """[0, 1] → rounded 0..out_max as float32, in one new buffer; fmax/fmin send NaN to 0."""
    out = np.fmax(np.asarray(unit, dtype=np.float32), np.float32(0))
    np.fmin(out, np.float32(1), out=out)
    np.multiply(out, np.float32(out_max), out=out)
    return np.rint(out, out=out)


def to_integers(unit: np.ndarray, out_max: int, dtype) -> np.ndarray:
    """``levels`` as ``dtype`` (uint8 for 255, uint16 for 65535)."""
    return levels(unit, out_max).astype(dtype)


def sixteen_to_eight(data: np.ndarray) -> np.ndarray:
    """16-bit pixels as 8-bit: round(x / 257), which maps 0..65535 onto 0..255 exactly at the ends."""
    return ((data.astype(np.uint32) + 128) // 257).astype(np.uint8)


def image_integers(data: np.ndarray, depth: int) -> np.ndarray:
    """Pixels for an encoder of ``depth`` bits: floats (unit-scaled) quantized, 16-bit narrowed to 8,
    8- and 16-bit integers as they are. Anything else is no image: ValueError."""
    dtype = np.uint8 if depth == 8 else np.uint16
    if data.dtype.kind == "f":
        return to_integers(data, 255 if depth == 8 else 65535, dtype)
    if data.dtype == np.uint16 and depth == 8:
        return sixteen_to_eight(data)
    if data.dtype in (np.uint8, np.uint16):
        return data
    raise ValueError(f"cannot write {data.dtype} pixels as an image")
