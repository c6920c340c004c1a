"""Adaptive pools on numpy arrays: torch's windows [⌊i·n/out⌋, ⌈(i+1)·n/out⌉), exact as torch."""

from __future__ import annotations

import numpy as np

from .windows import Pair, arg_scan, empty_as


def _adaptive_taps(n: int, out: int) -> tuple[np.ndarray, np.ndarray]:
    """torch's adaptive windows [⌊i·n/out⌋, ⌈(i+1)·n/out⌉) as (offset, output) tables: pixel, is real.

    Windows differ in length, so an offset past a short window's end repeats its last pixel
    (harmless for max) and is flagged unreal (skipped by sums). 5 → 3: windows 0-1, 1-3, 3-4.

    >>> pixels, real = _adaptive_taps(5, 3)
    >>> pixels.tolist(), real.tolist()
    ([[0, 1, 3], [1, 2, 4], [1, 3, 4]], [[True, True, True], [True, True, True], [False, True, False]])
    """
    i = np.arange(out, dtype=np.int64)
    start, end = (i * n) // out, -((-(i + 1) * n) // out)
    offsets = np.arange(int((end - start).max()))[:, None]
    return np.minimum(start + offsets, end - 1), start + offsets < end


def _take(x: np.ndarray, indices: np.ndarray, axis: int) -> np.ndarray:
    """``x[..., indices, :]`` along ``axis``: fancy indexing gathers straight from a strided view,
    where ``np.take`` would first copy the whole array to C order."""
    return x[(slice(None),) * axis + (indices,)]


def _adaptive_windows(x: np.ndarray, rows: np.ndarray, cols: np.ndarray):
    """(row offset, column offset, gathered view) per pair of offsets, in torch's row-major order."""
    windows = []
    for i, row_pixels in enumerate(rows):
        gathered = _take(x, row_pixels, 2)
        windows += [(i, j, _take(gathered, col_pixels, 3)) for j, col_pixels in enumerate(cols)]
    return windows


def _adaptive_separable(ufunc: np.ufunc, x: np.ndarray, output_size: Pair, dtype) -> np.ndarray:
    """ufunc over each adaptive window, rows then columns, one gathered offset at a time.

    For order-free ufuncs (max, integer add): a 1000 → 7 window of 143 pixels costs 143 + 143
    passes over small gathered slabs, not 143² tiny ones.
    """
    for axis, size in ((2, output_size[0]), (3, output_size[1])):
        pixels, real = _adaptive_taps(x.shape[axis], size)
        shape = (-1, 1) if axis == 2 else (1, -1)
        reduced = _take(x, pixels[0], axis).astype(dtype)
        for offset in range(1, len(pixels)):
            ufunc(reduced, _take(x, pixels[offset], axis), out=reduced, where=real[offset].reshape(shape), dtype=dtype)
        x = reduced
    return x


def adaptive_avg_pool2d(x, output_size: Pair) -> np.ndarray:
    """``F.adaptive_avg_pool2d`` as float32: window sums as torch forms them, then ÷ kh ÷ kw.

    torch divides twice (``sum / kh / kw``), which can differ from ``sum / (kh·kw)`` in the last
    bit; this does the same. Integer pixels are summed exactly, rows then columns (torch's float32
    sums of them are exact too); floats are added in torch's row-major order, one offset pair at a
    time (so the cost grows with the window area), and match bit for bit. For a 1x1 output
    (ResNet's global average) torch calls ``mean()``, whose vectorised summation order is its own;
    the float64 mean here is within an ulp of it.
    """
    n, c, h, w = x.shape
    if tuple(output_size) == (1, 1):
        return x.mean(axis=(2, 3), keepdims=True, dtype=np.float64).astype(np.float32)
    (rows, real_rows), (cols, real_cols) = _adaptive_taps(h, output_size[0]), _adaptive_taps(w, output_size[1])
    out = empty_as(x, (n, c) + tuple(output_size), np.float32)
    if x.dtype.kind in "ui":
        np.copyto(out, _adaptive_separable(np.add, x, output_size, np.int64))
    else:
        out.fill(0)
        for i, j, view in _adaptive_windows(x, rows, cols):
            np.add(out, view, out=out, where=real_rows[i][:, None] & real_cols[j], dtype=np.float32)
    np.divide(out, real_rows.sum(axis=0).astype(np.float32)[:, None], out=out)
    return np.divide(out, real_cols.sum(axis=0).astype(np.float32), out=out)


def adaptive_max_pool2d(x, output_size: Pair, return_indices: bool = False):
    """``F.adaptive_max_pool2d`` in x's dtype; indices flat h·W + w, first maximum, last NaN, as torch."""
    n, c, h, w = x.shape
    out = empty_as(x, (n, c) + tuple(output_size), x.dtype)
    np.copyto(out, _adaptive_separable(np.maximum, x, output_size, x.dtype))
    if not return_indices:
        return out
    (rows, _), (cols, _) = _adaptive_taps(h, output_size[0]), _adaptive_taps(w, output_size[1])
    windows = [((...,), view, rows[i][:, None] * w + cols[j]) for i, j, view in _adaptive_windows(x, rows, cols)]
    index = np.zeros(out.shape, np.int64)
    arg_scan(windows, out, index)
    return out, index
