"""Sliding-window pools on numpy arrays: max, min, avg (and its 8-bit shortcut), lp and median.

Where torch's arithmetic is order-dependent (float sums) the scan order is torch's own row-major
walk over each window, so float results are bit-identical, not merely close.
"""

from __future__ import annotations

import numpy as np

from .. import native
from . import windows
from .windows import (
    Pair, arg_scan, empty_as, empty_like_pixels, first_offset, flat_index, highest, lowest, offset_views, planes,
    pool_taps, separable, with_pixel_padding,
)

# The compiled kernel runs where it has its byte shuffles; its plain loops are slower than numpy's
# passes on a whole image, so without SSSE3 the numpy kernels below do the work.
_NATIVE = native.available() and native.features() == ("ssse3",)


def _native_pool(x, op: str, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool,
                 divisor: int | None = None) -> np.ndarray | None:
    """The compiled kernel's answer (``kernels.native``), or None where it does not apply: uint8,
    kernel = stride, no padding or dilation, no ceil_mode window hanging over the edge, and a
    layout it reads row by row (channels innermost, or planes). Same bytes as the numpy kernels.

    The output has x's four-byte pixels when x is RGB in RGBX memory (``empty_like_pixels``), and
    both are widened to those four bytes, so each row is one dense run for the kernel.
    """
    if not _NATIVE or x.dtype != np.uint8 or x.ndim != 4 or tuple(kernel_size) != tuple(stride):
        return None
    if tuple(padding) != (0, 0) or tuple(dilation) != (1, 1):
        return None
    n, c, h, w = x.shape
    kh, kw = kernel_size
    if h < kh or w < kw or (ceil_mode and (h % kh or w % kw)) or kh * kw > 1 << 16 or (divisor or 1) >= 1 << 31:
        return None
    out = empty_like_pixels(x, (n, c, h // kh, w // kw), np.uint8)
    wide_in, wide_out = with_pixel_padding(x), with_pixel_padding(out, writeable=True)
    if wide_in.shape[1] != wide_out.shape[1]:
        wide_in, wide_out = x, out
    layout = _row_layout(wide_in)
    if layout is None or layout != _row_layout(wide_out):
        return None
    threads = windows.band_count(out.shape[2], out.size)
    native.pool(wide_in, wide_out, kernel_size, op, divisor or kh * kw, threads)
    return out


def _row_layout(a: np.ndarray) -> str | None:
    """How the compiled kernel reads ``a`` row by row: "pixels" (channels innermost, pixels
    adjacent: an HWC buffer) or "planes" (each channel a plane of adjacent pixels); None where it
    would fall back to its element-by-element loop, which numpy beats."""
    if a.strides[1] == 1 and a.strides[3] == a.shape[1] > 1:
        return "pixels"
    return "planes" if a.strides[3] == 1 else None


def _extreme_pool(x, ufunc, identity, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    """Shared body of max and min pooling: separable values, then a scan for indices if wanted."""
    if not return_indices:
        fast = _native_pool(x, "max" if ufunc is np.maximum else "min", kernel_size, stride, padding, dilation,
                            ceil_mode)
        if fast is not None:
            return fast
    taps_h, taps_w, shape = pool_taps(x, kernel_size, stride, padding, dilation, ceil_mode)
    out = separable(ufunc, x, taps_h, taps_w, empty_as(x, shape, x.dtype), identity)
    if not return_indices:
        return out
    geometry = list(zip(shape[2:], kernel_size, stride, padding, dilation))
    first_h, first_w = (first_offset(o, s, p, d) for o, _, s, p, d in geometry)
    tap = np.empty(shape, np.min_scalar_type(kernel_size[0] * kernel_size[1]))
    tap[...] = first_h[:, None] * kernel_size[1] + first_w[None, :]
    for plane, target, plane_tap in planes(x, out, tap):
        arg_scan(offset_views(plane, taps_h, taps_w, kernel_size[1]), target, plane_tap)
    return out, flat_index(tap, geometry, x.shape[3])


def max_pool2d(x, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool,
               return_indices: bool = False):
    """``F.max_pool2d`` in x's dtype; padding never wins; indices are flat h·W + w per plane.

    d2l: ``MaxPool2d(3, padding=1, stride=2)`` on arange(16) as 4x4 gives [[5, 7], [13, 15]].
    Ties go to the first maximum in row-major window order and a NaN propagates with the index of
    the window's last NaN — both exactly as torch's CPU kernel.
    """
    return _extreme_pool(x, np.maximum, lowest(x.dtype), kernel_size, stride, padding,
                         dilation, ceil_mode, return_indices)


def min_pool2d(x, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool,
               return_indices: bool = False):
    """The minimum of each window, as ``-F.max_pool2d(-x)`` but computed directly, so uint8 stays uint8.

    Erosion in image terms: a 3x3 min pool removes white specks smaller than the window.
    """
    return _extreme_pool(x, np.minimum, highest(x.dtype), kernel_size, stride, padding,
                         dilation, ceil_mode, return_indices)


def sum_dtype(dtype: np.dtype, count: int):
    """The narrowest accumulator that holds a sum of ``count`` values exactly (uint8 2x2 → uint16).

    Floats accumulate in float32, as torch's CPU kernel does, in its order, so sums match bitwise.
    """
    if dtype.kind == "f":
        return np.float32
    if dtype.kind == "u":
        for acc in (np.uint16, np.uint32):
            if np.iinfo(dtype).max * count * 2 <= np.iinfo(acc).max:  # room to round in avg_pool2d_quantized
                return acc
    return np.int64


def _scan_sum(x: np.ndarray, taps_h, taps_w, out: np.ndarray) -> np.ndarray:
    """Window sums added in torch's row-major order over each window's real pixels, from 0."""
    out.fill(0)
    for plane, target in planes(x, out):
        for region, view, _ in offset_views(plane, taps_h, taps_w, 0):
            part = target[region]
            np.add(part, view, out=part, dtype=out.dtype)
    return out


def _window_sums(x: np.ndarray, taps_h, taps_w, shape, out: np.ndarray | None = None, finish=None) -> np.ndarray:
    """Each window's sum over its real pixels: exact integers for integer input, torch's float32 otherwise.

    With ``finish`` the sums go to it, block by block into ``out`` for integers (see ``separable``), all
    at once and in place for floats.
    """
    acc = sum_dtype(x.dtype, max(1, len(taps_h)) * max(1, len(taps_w)))
    if acc == np.float32:
        sums = _scan_sum(x, taps_h, taps_w, empty_as(x, shape, acc))
        if finish is not None:
            finish(sums, sums, 0, shape[2])  # in place: float sums need no second array
        return sums
    if finish is None:
        return separable(np.add, x, taps_h, taps_w, empty_as(x, shape, acc), 0)
    return separable(np.add, x, taps_h, taps_w, out, 0, finish=finish, acc=acc)


def axis_counts(taps, out: int) -> np.ndarray:
    """How many real pixels each output's window covers along one axis."""
    counts = np.zeros(out, np.int64)
    for _, outputs, _ in taps:
        counts[outputs] += 1
    return counts


def _padded_counts(n: int, out: int, k: int, s: int, p: int) -> np.ndarray:
    """torch's count_include_pad window length: the window clipped to the padded extent, not the overhang.

    ``hend = min(hstart + k, n + p)``: with k=3, s=2, p=1 on n=4 and ceil_mode, the last window
    starts at 3 and counts 3 − 1 + 1 = min(6, 5) − 3 = 2 cells, one of them padding.
    """
    start = np.arange(out, dtype=np.int64) * s - p
    return np.minimum(start + k, n + p) - start


def _divisor(x: np.ndarray, taps_h, taps_w, shape, kernel_size: Pair, stride: Pair, padding: Pair,
             count_include_pad: bool, divisor_override: int | None):
    """avg_pool2d's divisor per output (an int when it is the same everywhere), by torch's rules."""
    if divisor_override is not None:
        return divisor_override
    _, _, h, w = x.shape
    if count_include_pad:
        rows = _padded_counts(h, shape[2], kernel_size[0], stride[0], padding[0])
        cols = _padded_counts(w, shape[3], kernel_size[1], stride[1], padding[1])
    else:
        rows, cols = axis_counts(taps_h, shape[2]), axis_counts(taps_w, shape[3])
    if rows.min() == rows.max() and cols.min() == cols.max():
        return int(rows[0] * cols[0])
    return rows[:, None] * cols[None, :]


def _avg_parts(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Window taps, output shape and divisors of ``F.avg_pool2d``."""
    taps_h, taps_w, shape = pool_taps(x, kernel_size, stride, padding, (1, 1), ceil_mode)
    divisor = _divisor(x, taps_h, taps_w, shape, kernel_size, stride, padding, count_include_pad, divisor_override)
    return taps_h, taps_w, shape, divisor


def _divisor_rows(divisor, first: int, stop: int):
    """The divisors of output rows [first, stop): the scalar itself, or those rows of the table."""
    return divisor if isinstance(divisor, int) else divisor[first:stop]


def avg_pool2d(x, kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool, count_include_pad: bool,
               divisor_override: int | None) -> np.ndarray:
    """``F.avg_pool2d`` as float32: window sum / divisor, both exactly as torch forms them.

    d2l's 2x2 mean of [[0, 1, 2], [3, 4, 5], [6, 7, 8]] is [[2, 3], [5, 6]]. Integer input is
    summed exactly (uint8 2x2 in uint16) and divided once in float32 — the same correctly rounded
    quotient torch gets from its exact float sum of 0..255 values. Float input is summed in float32
    in torch's row-major window order, so both engines agree bit for bit either way. Integer sums
    are divided block by block, while they are in cache.
    """
    taps_h, taps_w, shape, divisor = _avg_parts(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                                divisor_override)

    def finish(sums, target, first, stop):
        np.divide(sums, np.asarray(_divisor_rows(divisor, first, stop), dtype=np.float32), out=target,
                  dtype=np.float32)

    return _window_sums(x, taps_h, taps_w, shape, empty_as(x, shape, np.float32), finish)


def avg_pool2d_quantized(x, kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                         count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """The average of unsigned integer pixels rounded half to even and clipped, in x's dtype, no floats.

    Equals ``quantize(avg_pool2d(x) / 255, 255, uint8)`` for uint8 (the tests check it) but skips
    the float32 round trip. With s = m·d + r: for an even divisor d = 2h, ⌊(s + h − 1 + m mod 2)/d⌋
    rounds r < h down, r > h up and the tie r = h to the even neighbour; an odd d has no ties and
    ⌊(s + (d − 1)/2)/d⌋ rounds to nearest. 2x2 of (1, 2, 2, 5): 10/4 = 2.5 → 2; (1, 2, 3, 5): 11/4 → 3.
    A power-of-two divisor (2x2, 4x4) uses shifts; sums are rounded block by block, while in cache.
    uint8 with kernel = stride and no padding goes to the compiled kernel where it is built.
    """
    fast = _native_pool(x, "avg", kernel_size, stride, padding, (1, 1), ceil_mode, divisor_override)
    if fast is not None:
        return fast
    taps_h, taps_w, shape, divisor = _avg_parts(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                                divisor_override)
    acc = sum_dtype(x.dtype, max(1, len(taps_h)) * max(1, len(taps_w)))
    wide = np.max(divisor) > np.iinfo(acc).max // 4  # keep room for s + d/2 (divisor_override is free)
    clip = divisor_override is not None  # an override below the window size can exceed the maximum
    maximum = np.iinfo(x.dtype).max

    def finish(sums, target, first, stop):
        if wide:
            sums = sums.astype(np.int64)
        d = _divisor_rows(divisor, first, stop)
        if isinstance(d, int) and d & (d - 1) == 0 and not clip:  # 1, 2, 4 (2x2), 8, 16 (4x4) ...
            _round_shift(sums, d.bit_length() - 1, target)
            return
        rounded = _round_divide(sums, np.asarray(d, dtype=sums.dtype))
        if clip:
            np.minimum(rounded, maximum, out=rounded)
        np.copyto(target, rounded, casting="unsafe")

    return _window_sums(x, taps_h, taps_w, shape, empty_like_pixels(x, shape, x.dtype), finish)


def _round_divide(sums: np.ndarray, divisor: np.ndarray) -> np.ndarray:
    """sums / divisor rounded half to even (see avg_pool2d_quantized), in a new array of sums' dtype."""
    rounded = sums // divisor  # floor_divide by a scalar is fast in numpy; divmod and % are not
    rounded &= 1
    rounded *= 1 - (divisor & 1)
    rounded += sums
    rounded += (divisor - 1) // 2
    rounded //= divisor
    return rounded


def _round_shift(sums: np.ndarray, shift: int, out: np.ndarray) -> None:
    """``out`` = sums / 2^shift rounded half to even, with shifts instead of divisions (a third of the cost).

    With d = 2^shift = 2h and p = ⌊s/d⌋ mod 2: ⌊(s + h − 1 + p)/d⌋, the formula of
    avg_pool2d_quantized. 2x2: s = 10 → p = 0, ⌊11/4⌋ = 2 (2.5 to even); s = 14 → p = 1,
    ⌊17/4⌋ = 4 (3.5 to even). The last shift writes straight into ``out`` (uint8), one pass less.
    """
    if shift == 0:
        np.copyto(out, sums, casting="unsafe")
        return
    rounded = sums >> np.asarray(shift, dtype=sums.dtype)
    rounded &= 1
    rounded += sums
    if shift > 1:
        rounded += (1 << (shift - 1)) - 1
    np.right_shift(rounded, shift, out=out, casting="unsafe")


def lp_pool2d(x, norm_type: float, kernel_size: Pair, stride: Pair, ceil_mode: bool) -> np.ndarray:
    """``F.lp_pool2d``: (kh·kw · avg_pool2d(x^p))^(1/p), float32, step for step as torch.

    p=1 is the window sum, p=2 the Euclidean norm; p=∞ is the max of |x| (torch's special case).
    torch multiplies by kh·kw even for a ceil_mode overhang window that averaged fewer pixels, and
    its ``sign(out)·relu(|out|)`` is the identity, so neither is corrected here. A negative window
    sum with an odd p gives NaN, as torch's pow does.
    """
    x = x.astype(np.float32, copy=False)
    if np.isinf(norm_type):
        sign = 1 if norm_type > 0 else -1
        return sign * max_pool2d(sign * np.abs(x), kernel_size, stride, (0, 0), (1, 1), ceil_mode)
    with np.errstate(invalid="ignore", over="ignore"):
        powered = np.power(x, np.float32(norm_type))
        out = avg_pool2d(powered, kernel_size, stride, (0, 0), ceil_mode, True, None)
        np.multiply(out, np.float32(kernel_size[0] * kernel_size[1]), out=out)
        return np.power(out, np.float32(1.0 / norm_type), out=out)


def median_pool2d(x, kernel_size: Pair, stride: Pair, dilation: Pair, ceil_mode: bool) -> np.ndarray:
    """The lower median of each window's real pixels, in x's dtype, as ``torch.median`` would give.

    Each offset's view fills one slot of a (…, kh·kw) stack; slots of a ceil_mode overhang hold the
    dtype's maximum, so the k-th smallest with k = (real − 1) // 2 is the lower median of the real
    pixels: 2x2 of (1, 4, 2, 3) → 2. A window holding NaN gives NaN.
    """
    taps_h, taps_w, shape = pool_taps(x, kernel_size, stride, (0, 0), dilation, ceil_mode)
    stack = empty_as(x, shape + (kernel_size[0] * kernel_size[1],), x.dtype)
    stack.fill(highest(x.dtype))
    for region, view, slot in offset_views(x, taps_h, taps_w, kernel_size[1]):
        stack[..., slot][region] = view
    real = axis_counts(taps_h, shape[2])[:, None] * axis_counts(taps_w, shape[3])[None, :]
    kth = (real - 1) // 2
    stack.partition(np.unique(kth), axis=-1)
    out = empty_as(x, shape, x.dtype)
    np.copyto(out, np.take_along_axis(stack, kth[None, None, :, :, None], axis=-1)[..., 0])
    if x.dtype.kind == "f":
        np.copyto(out, np.nan, where=np.isnan(stack).any(axis=-1))
    return out
