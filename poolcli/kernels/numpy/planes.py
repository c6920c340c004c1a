"""Whole-plane rearrangements on numpy arrays: max unpooling and padding in every torch mode."""

from __future__ import annotations

import numpy as np

from .windows import Pair, empty_as


def max_unpool2d(x, indices, output_size: Pair) -> np.ndarray:
    """``F.max_unpool2d``: zeros of (N, C, *output_size) with each value put back at its index.

    d2l's 2x2 max of arange(16) 4x4 is [[5, 7], [13, 15]] at indices [[5, 7], [13, 15]]; unpooling
    puts 5 at (1, 1), 7 at (1, 3) … and zeros elsewhere.
    """
    n, c = x.shape[:2]
    out = empty_as(x, (n, c) + tuple(output_size), x.dtype)
    out.fill(0)
    rows, cols = np.divmod(np.asarray(indices), output_size[1])
    out[np.arange(n)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols] = x
    return out


def _pad_source(n: int, before: int, after: int, mode: str) -> np.ndarray:
    """For each padded position, the input index it copies (torch's reflect/replicate/circular).

    n=3, 2 either side: reflect [2, 1, 0, 1, 2, 1, 0], replicate [0, 0, 0, 1, 2, 2, 2],
    circular [1, 2, 0, 1, 2, 0, 1].
    """
    i = np.arange(-before, n + after)
    if mode == "reflect":
        return (n - 1) - np.abs((n - 1) - np.abs(i))
    if mode == "replicate":
        return np.clip(i, 0, n - 1)
    return i % n


def _holds(dtype: np.dtype, value: float) -> bool:
    """Whether an integer ``dtype`` represents ``value`` exactly."""
    limits = np.iinfo(dtype)
    return float(value).is_integer() and limits.min <= value <= limits.max


def pad2d(x, padding_lrtb: tuple[int, int, int, int], mode: str, value: float = 0.0) -> np.ndarray:
    """``F.pad(x, (left, right, top, bottom), mode, value)`` on the last two dims, any mode.

    The input is copied once into the middle; the borders are filled from it (constant: ``value``).
    An integer input whose dtype cannot hold ``value`` (0.5, −1 or 510 for uint8) is widened to
    float32 first, as the torch engine does, instead of wrapping or raising OverflowError.
    """
    if mode == "constant" and x.dtype.kind in "ui" and not _holds(x.dtype, value):
        x = x.astype(np.float32)
    left, right, top, bottom = padding_lrtb
    n, c, h, w = x.shape
    out = empty_as(x, (n, c, h + top + bottom, w + left + right), x.dtype)
    middle = out[..., top : top + h, left : left + w]
    np.copyto(middle, x)
    if mode == "constant":
        for border in (out[..., :top, :], out[..., top + h :, :], out[..., :, :left], out[..., :, left + w :]):
            border.fill(value)
        return out
    cols = _pad_source(w, left, right, mode)
    out[..., top : top + h, :left] = x[..., cols[:left]]
    out[..., top : top + h, left + w :] = x[..., cols[left + w :]]
    rows = _pad_source(h, top, bottom, mode) + top
    out[..., :top, :] = out[..., rows[:top], :]
    out[..., top + h :, :] = out[..., rows[top + h :], :]
    return out
