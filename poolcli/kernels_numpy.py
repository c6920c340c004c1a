"""The numpy CPU engine: one small vectorised function per op, giving torch's results without torch.

Every window op is *shift-and-accumulate*: for each kernel offset (i, j) the input pixels that
offset reads form a strided view ``x[..., i*d - p :: s, j*d - p :: s]``, and the output is combined
from those views with ``np.maximum``/``np.add`` and ``out=``. Python loops run over kernel offsets
and channels, never over pixels. d2l's 2x2 max pool of X = [[0, 1, 2], [3, 4, 5], [6, 7, 8]] is
``max(X[:2, :2], X[:2, 1:], X[1:, :2], X[1:, 1:]) = [[4, 5], [7, 8]]``.

Padding is never materialised for pooling: an offset only touches the outputs whose window holds
a real pixel there (``_axis_taps``), which is exactly torch's "padding is -inf / not counted".

Arrays are (N, C, H, W) but may be any strided view (an HWC Pillow buffer transposed to NCHW);
outputs are allocated in the input's memory order (``_empty``), so converting back to HWC is free.

Where torch's arithmetic is order-dependent (float sums) the scan order is torch's own row-major
walk over each window, so float results are bit-identical, not merely close.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np

from .arithmetic import pool_output_size

Pair = tuple[int, int]

# Channel counts up to this are split into per-channel views when channels are innermost in memory:
# numpy's inner loop would otherwise run over just C elements (3 for RGB), which costs ~5x more
# than a strided loop along a row.
_SPLIT_CHANNELS = 4

# Output rows are reduced in blocks whose intermediate row buffer is about this size (L2/L3 sized).
_BLOCK_BYTES = 1 << 19

# Outputs below this many elements stay on one thread: a band must outweigh handing it over.
_BAND_MIN_OUTPUTS = 1 << 17
_threads = 1
_executor = None
_executor_size = 0
_executor_lock = threading.Lock()


# --------------------------------------------------------------------------------------- threads


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Window reductions (``_separable``) inside share their rows out over ``count`` threads.

    For one picture on an idle machine: a 12 MP 2x2 average takes about half as long on two
    cores. A batch leaves it at 1, its decode and encode threads already keep the cores busy.
    """
    global _threads
    previous, _threads = _threads, max(1, int(count))
    try:
        yield
    finally:
        _threads = previous


def _pool():
    """The threads for bands, started on first use and kept (a pool per call would cost more than a
    band); a later, bigger ``threads(n)`` replaces it once the old one's bands are done."""
    global _executor, _executor_size
    with _executor_lock:
        if _executor is None or _executor_size < _threads:
            from concurrent.futures import ThreadPoolExecutor

            if _executor is not None:
                _executor.shutdown(wait=False)
            _executor, _executor_size = ThreadPoolExecutor(_threads, thread_name_prefix="poolcli-kernel"), _threads
        return _executor


# --------------------------------------------------------------------------------------- helpers


def _channels_last(x: np.ndarray) -> bool:
    """Whether channels are x's innermost axis (an HWC buffer seen as NCHW), as torch's
    ``suggest_memory_format`` decides; axes of length 1 have no say."""
    return x.shape[1] > 1 and all(abs(x.strides[1]) < abs(x.strides[a]) for a in (2, 3) if x.shape[a] > 1)


def _empty(like: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` in ``like``'s memory format (NCHW or NHWC; extra axes innermost).

    A (1, 3, 3000, 4000) NCHW view of an HWC buffer gets its output as an (N, H, W, C) buffer seen
    through the same transpose, so turning the result back into an HWC image costs nothing.
    """
    order = ([0, 2, 3, 1] if _channels_last(like) else [0, 1, 2, 3]) + list(range(4, len(shape)))
    buffer = np.empty([shape[axis] for axis in order], dtype)
    return buffer.transpose(np.argsort(order))


def with_pixel_padding(x: np.ndarray, writeable: bool = False) -> np.ndarray:
    """``x`` widened to the unused bytes between its pixels when it is the first channels of wider
    interleaved pixels (Pillow keeps RGB as RGBX), else ``x``; the extra channels hold garbage.

    Why: a row of an RGB view of RGBX memory steps 3 of every 4 bytes, which numpy's ufuncs walk
    element by element (4× slower than a whole row); with the padding byte included a row is one
    contiguous run again. Only for per-channel work whose extra channels are then dropped, and only
    for integers, whose garbage cannot raise floating-point warnings (inf − inf).
    """
    n, c, h, w = x.shape
    pixel = x.strides[3] // x.itemsize
    if x.dtype.kind not in "ui" or not _channels_last(x) or x.strides[1] != x.itemsize or pixel <= c or pixel > 4 or w < 2:
        return x
    root = x
    while isinstance(root.base, np.ndarray):
        root = root.base
    wide = np.lib.stride_tricks.as_strided(x, (n, pixel, h, w), x.strides, writeable=writeable and x.flags.writeable)
    byte_bounds = np.lib.array_utils.byte_bounds if hasattr(np.lib, "array_utils") else np.byte_bounds
    low, high = byte_bounds(wide)
    root_low, root_high = byte_bounds(root)
    return wide if root_low <= low and high <= root_high else x


def _planes(*arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """The arrays split into one-channel views when few channels are innermost in memory, else whole.

    RGB as a transposed HWC view has C=3 at stride 1: a ufunc would loop 3 elements at a time.
    Per-channel views make the inner loop run along a row instead.
    """
    first = arrays[0]
    if first.shape[1] <= _SPLIT_CHANNELS and _channels_last(first):
        return [tuple(a[:, c : c + 1] for a in arrays) for c in range(first.shape[1])]
    return [arrays]


def _lowest(dtype: np.dtype):
    """The identity of max: -inf for floats, the smallest integer otherwise."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def _highest(dtype: np.dtype):
    """The identity of min: +inf for floats, the largest integer otherwise."""
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


def _axis_taps(n: int, out: int, k: int, s: int, p: int, d: int) -> list[tuple[int, slice, slice]]:
    """For each kernel offset i along one axis: (i, outputs, input pixels) where the tap is real.

    Output o reads input o·s − p + i·d; only outputs where that lies in [0, n) are listed, so padding
    and a ceil_mode overhang simply contribute nothing. d2l's ``MaxPool2d(3, padding=1, stride=2)``
    on 4 pixels: offset 0 reaches pixels −1, 1 → only output 1 (pixel 1) counts.

    >>> _axis_taps(4, 2, 3, 2, 1, 1)[0]
    (0, slice(1, 2, None), slice(1, 2, 2))
    """
    taps = []
    for i in range(k):
        offset = i * d - p
        lo, hi = max(0, -(offset // s)), min(out, (n - 1 - offset) // s + 1)
        if lo < hi:
            start = lo * s + offset
            taps.append((i, slice(lo, hi), slice(start, start + (hi - lo - 1) * s + 1, s)))
    return taps


def _clip_taps(taps, first: int, stop: int) -> list[tuple[int, slice, slice]]:
    """The taps of outputs [first, stop) only, with those outputs numbered from 0."""
    clipped = []
    for i, outs, ins in taps:
        lo, hi = max(outs.start, first), min(outs.stop, stop)
        if lo < hi:
            start, step = ins.start + (lo - outs.start) * ins.step, ins.step
            clipped.append((i, slice(lo - first, hi - first), slice(start, start + (hi - lo - 1) * step + 1, step)))
    return clipped


def _pool_taps(x: np.ndarray, k: Pair, s: Pair, p: Pair, d: Pair, ceil_mode: bool):
    """Row taps, column taps and the output shape of a sliding-window pool (torch's size rule)."""
    n, c, h, w = x.shape
    ho = pool_output_size(h, k[0], s[0], p[0], d[0], ceil_mode).size
    wo = pool_output_size(w, k[1], s[1], p[1], d[1], ceil_mode).size
    taps_h = _axis_taps(h, ho, k[0], s[0], p[0], d[0])
    taps_w = _axis_taps(w, wo, k[1], s[1], p[1], d[1])
    return taps_h, taps_w, (n, c, ho, wo)


def _windows(x: np.ndarray, taps_h, taps_w, kernel_width: int) -> list[tuple[tuple, np.ndarray, int]]:
    """(output region, input view, tap number i·kw + j) per kernel offset, in torch's row-major scan order."""
    return [((..., oh, ow), x[..., ih, iw], i * kernel_width + j) for i, oh, ih in taps_h for j, ow, iw in taps_w]


def _reduce(ufunc: np.ufunc, out: np.ndarray, pieces, identity) -> None:
    """``out`` = ufunc over pieces (region, view); for order-free ufuncs (max, min, integer add).

    Views covering all of ``out`` go first so the common case is one fused pass,
    ``ufunc(a, b, out=out)``, with no initialising fill.
    """
    full = [view for region, view in pieces if out[region].shape == out.shape]
    partial = [(region, view) for region, view in pieces if out[region].shape != out.shape]
    if len(full) >= 2:
        ufunc(full[0], full[1], out=out, dtype=out.dtype)
        full = full[2:]
    elif full:
        np.copyto(out, full.pop())
    else:
        out.fill(identity)
    for view in full:
        ufunc(out, view, out=out, dtype=out.dtype)
    for region, view in partial:
        target = out[region]
        ufunc(target, view, out=target, dtype=out.dtype)


def _separable(ufunc: np.ufunc, x: np.ndarray, taps_h, taps_w, out: np.ndarray, identity,
               finish=None, acc=None) -> np.ndarray:
    """A window reduction done as rows, then columns: exact for max, min and integer sums.

    max over a 2-D window = max over its rows of the max over its columns, so a kh×kw kernel
    costs kh + kw passes instead of kh·kw. The row pass combines whole contiguous rows (the fast
    SIMD case even for an HWC buffer); the column pass runs per channel (``_planes``). Output rows
    go in blocks whose row buffer stays in cache between the two passes; with ``threads(n)`` the
    blocks are shared out in ``n`` bands (numpy releases the GIL inside each pass).

    With ``finish(reduced, target, first, stop)`` the column pass reduces into a block buffer of
    dtype ``acc`` instead, and ``finish`` turns it into ``out``'s rows [first, stop) while it is
    still in cache (an average's division or rounding): no full-size array of sums is ever made.
    """
    n, c, ho, wo = out.shape
    w = x.shape[3]
    x = with_pixel_padding(x)
    acc = out.dtype if acc is None else np.dtype(acc)
    block = max(1, _BLOCK_BYTES // (n * x.shape[1] * w * acc.itemsize))
    lane_out = _pixel_lane_output(ufunc, x, out, acc, finish)
    lanes = lane_out is not None
    target_rows = lane_out if lanes else out
    if lanes:
        c = x.shape[1]

    def band(start: int, end: int) -> None:
        rows = _empty(x, (n, x.shape[1], min(block, end - start), w), acc)
        reduced = _empty(x, (n, c, min(block, end - start), wo), acc) if finish is not None else None
        for first in range(start, end, block):
            stop = min(end, first + block)
            part, target = rows[:, :, : stop - first], target_rows[:, :, first:stop]
            dest_block = target if reduced is None else reduced[:, :, : stop - first]
            row_taps = _clip_taps(taps_h, first, stop)
            _reduce(ufunc, part, [((..., oh, slice(None)), x[..., ih, :]) for _, oh, ih in row_taps], identity)
            if lanes:  # a pixel's four uint16 sums as one uint64: one pass adds all four channels
                whole, dest = part.transpose(0, 2, 3, 1).view(np.uint64)[..., 0], dest_block.transpose(0, 2, 3, 1)
                _reduce(ufunc, dest.view(np.uint64)[..., 0], [((..., ow), whole[..., iw]) for _, ow, iw in taps_w],
                        identity)
            else:
                for plane, dest in _planes(part[:, :c], dest_block):
                    _reduce(ufunc, dest, [((..., ow), plane[..., iw]) for _, ow, iw in taps_w], identity)
            if finish is not None:
                finish(dest_block, target, first, stop)

    _in_bands(band, ho, out.size)
    return out


def _pixel_lane_output(ufunc: np.ufunc, x: np.ndarray, out: np.ndarray, acc: np.dtype, finish) -> np.ndarray | None:
    """``out`` widened to its four-byte pixels (writeable) when window sums may run on whole
    pixels, else None: four 1-byte channels (RGBX, RGBA) summed into uint16 lanes of one uint64,
    and an output with the same four-byte pixels to finish into.

    Lanes never carry into each other: ``_sum_dtype`` keeps every sum below 2^15. For a 2x2
    average of a 12 MP photo this halves the column pass (one uint64 pass, not three strided
    uint16 ones) and lets the rounding run over contiguous rows.
    """
    if ufunc is not np.add or finish is None or acc != np.uint16 or x.dtype.itemsize != 1:
        return None
    if x.shape[1] != 4 or not _channels_last(x) or x.strides[1] != 1 or x.strides[3] != 4:
        return None
    wide = with_pixel_padding(out, writeable=True)
    return wide if wide.shape[1] == 4 and wide.strides[1] == 1 and wide.strides[3] == 4 else None


def _empty_like_pixels(x: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``_empty``, but with x's four-byte pixels when x is three channels of them (Pillow's RGBX):
    the result is the first three channels of an RGBX buffer, which ``_pixel_lane_output`` can finish
    into row by row and the encoder hands to Pillow as it is."""
    wide = with_pixel_padding(x)
    if wide.shape[1] != 4 or x.shape[1] != 3 or np.dtype(dtype).itemsize != 1 or not _channels_last(wide):
        return _empty(x, shape, dtype)
    return _empty(wide, (shape[0], 4, *shape[2:]), dtype)[:, :3]


def _in_bands(band, rows: int, size: int) -> None:
    """``band(start, end)`` over [0, rows): at once, or split over ``threads()`` threads for a big output."""
    count = min(_threads, rows, max(1, size // _BAND_MIN_OUTPUTS))
    if count <= 1:
        band(0, rows)
        return
    edges = [rows * i // count for i in range(count + 1)]
    for future in [_pool().submit(band, lo, hi) for lo, hi in zip(edges, edges[1:])]:
        future.result()


def _arg_scan(windows, out: np.ndarray, tap: np.ndarray) -> None:
    """Where each window's extreme ``out`` first occurs, NaN included, as torch: recorded in ``tap``.

    torch walks a window row-major keeping ``val > best || isnan(val)``: the first extreme wins a
    tie and the last NaN wins outright. Walking the offsets backwards and marking every pixel equal
    to the extreme leaves the first one; NaN, equal to nothing, is settled afterwards in a forward
    pass, only when the result holds one. A window's ``number`` is a tap number or flat indices.
    """
    for region, view, number in reversed(windows):
        _mark(tap[region], number, view == out[region])
    if out.dtype.kind == "f" and np.isnan(out).any():
        for region, view, number in windows:
            _mark(tap[region], number, np.isnan(view))


def _mark(tap: np.ndarray, number, hit: np.ndarray) -> None:
    """``tap = number where hit``, as tap + hit·(number − tap) in wrapping integer arithmetic.

    Three cheap passes over small integers are several times faster than ``np.copyto(where=)``.
    """
    delta = np.subtract(number, tap, dtype=tap.dtype)
    delta *= hit
    tap += delta


def _flat_index(tap: np.ndarray, geometry, width: int) -> np.ndarray:
    """torch's int64 indices h·W + w from tap numbers i·kw + j: the window origin plus the tap's offset.

    Output (oh, ow) starts at input (oh·sh − ph, ow·sw − pw); offset (i, j) adds i·dh rows and
    j·dw columns. ``geometry`` is (out, kernel, stride, padding, dilation) for rows, then columns.
    """
    (ho, kh, sh, ph, dh), (wo, kw, sw, pw, dw) = geometry
    offsets = (np.arange(kh)[:, None] * (dh * width) + np.arange(kw) * dw).ravel()
    index = np.take(offsets, tap)
    index += ((np.arange(ho) * sh - ph) * width)[:, None]
    index += np.arange(wo) * sw - pw
    return index


def _first_offset(out: int, s: int, p: int, d: int) -> np.ndarray:
    """torch's starting guess for each window's argmax: the first offset at or after pixel 0.

    It only survives in a window that holds no real pixel, which torch allows with dilation:
    kernel 2, dilation 3, padding 1 on a row of 2 reads pixels −1 and 2; torch answers the
    identity (−inf, or the dtype's minimum) at index 2, past the row. Matching it keeps indices equal.
    """
    start = np.arange(out) * s - p
    return np.maximum(0, -(start // d))


def _extreme_pool(x, ufunc, identity, kernel_size, stride, padding, dilation, ceil_mode, return_indices):
    """Shared body of max and min pooling: separable values, then a scan for indices if wanted."""
    taps_h, taps_w, shape = _pool_taps(x, kernel_size, stride, padding, dilation, ceil_mode)
    out = _separable(ufunc, x, taps_h, taps_w, _empty(x, shape, x.dtype), identity)
    if not return_indices:
        return out
    geometry = list(zip(shape[2:], kernel_size, stride, padding, dilation))
    first_h, first_w = (_first_offset(o, s, p, d) for o, _, s, p, d in geometry)
    tap = np.empty(shape, np.min_scalar_type(kernel_size[0] * kernel_size[1]))
    tap[...] = first_h[:, None] * kernel_size[1] + first_w[None, :]
    for plane, target, plane_tap in _planes(x, out, tap):
        _arg_scan(_windows(plane, taps_h, taps_w, kernel_size[1]), target, plane_tap)
    return out, _flat_index(tap, geometry, x.shape[3])


# ----------------------------------------------------------------------------------------- pools


def max_pool2d(x, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool,
               return_indices: bool = False):
    """``F.max_pool2d`` in x's dtype; padding never wins; indices are flat h·W + w per plane.

    d2l: ``MaxPool2d(3, padding=1, stride=2)`` on arange(16) as 4x4 gives [[5, 7], [13, 15]].
    Ties go to the first maximum in row-major window order and a NaN propagates with the index of
    the window's last NaN — both exactly as torch's CPU kernel.
    """
    return _extreme_pool(x, np.maximum, _lowest(x.dtype), kernel_size, stride, padding,
                         dilation, ceil_mode, return_indices)


def min_pool2d(x, kernel_size: Pair, stride: Pair, padding: Pair, dilation: Pair, ceil_mode: bool,
               return_indices: bool = False):
    """The minimum of each window, as ``-F.max_pool2d(-x)`` but computed directly, so uint8 stays uint8.

    Erosion in image terms: a 3x3 min pool removes white specks smaller than the window.
    """
    return _extreme_pool(x, np.minimum, _highest(x.dtype), kernel_size, stride, padding,
                         dilation, ceil_mode, return_indices)


def _sum_dtype(dtype: np.dtype, count: int):
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
    for plane, target in _planes(x, out):
        for region, view, _ in _windows(plane, taps_h, taps_w, 0):
            part = target[region]
            np.add(part, view, out=part, dtype=out.dtype)
    return out


def _window_sums(x: np.ndarray, taps_h, taps_w, shape, out: np.ndarray | None = None, finish=None) -> np.ndarray:
    """Each window's sum over its real pixels: exact integers for integer input, torch's float32 otherwise.

    With ``finish`` the sums go to it, block by block into ``out`` for integers (see ``_separable``), all
    at once and in place for floats.
    """
    acc = _sum_dtype(x.dtype, max(1, len(taps_h)) * max(1, len(taps_w)))
    if acc == np.float32:
        sums = _scan_sum(x, taps_h, taps_w, _empty(x, shape, acc))
        if finish is not None:
            finish(sums, sums, 0, shape[2])  # in place: float sums need no second array
        return sums
    if finish is None:
        return _separable(np.add, x, taps_h, taps_w, _empty(x, shape, acc), 0)
    return _separable(np.add, x, taps_h, taps_w, out, 0, finish=finish, acc=acc)


def _axis_counts(taps, out: int) -> np.ndarray:
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
        rows, cols = _axis_counts(taps_h, shape[2]), _axis_counts(taps_w, shape[3])
    if rows.min() == rows.max() and cols.min() == cols.max():
        return int(rows[0] * cols[0])
    return rows[:, None] * cols[None, :]


def _avg_parts(x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override):
    """Window taps, output shape and divisors of ``F.avg_pool2d``."""
    taps_h, taps_w, shape = _pool_taps(x, kernel_size, stride, padding, (1, 1), ceil_mode)
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

    return _window_sums(x, taps_h, taps_w, shape, _empty(x, shape, np.float32), finish)


def avg_pool2d_quantized(x, kernel_size: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                         count_include_pad: bool, divisor_override: int | None) -> np.ndarray:
    """The average of unsigned integer pixels rounded half to even and clipped, in x's dtype, no floats.

    Equals ``quantize(avg_pool2d(x) / 255, 255, uint8)`` for uint8 (the tests check it) but skips
    the float32 round trip. With s = m·d + r: for an even divisor d = 2h, ⌊(s + h − 1 + m mod 2)/d⌋
    rounds r < h down, r > h up and the tie r = h to the even neighbour; an odd d has no ties and
    ⌊(s + (d − 1)/2)/d⌋ rounds to nearest. 2x2 of (1, 2, 2, 5): 10/4 = 2.5 → 2; (1, 2, 3, 5): 11/4 → 3.
    A power-of-two divisor (2x2, 4x4) uses shifts; sums are rounded block by block, while in cache.
    """
    taps_h, taps_w, shape, divisor = _avg_parts(x, kernel_size, stride, padding, ceil_mode, count_include_pad,
                                                divisor_override)
    acc = _sum_dtype(x.dtype, max(1, len(taps_h)) * max(1, len(taps_w)))
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

    return _window_sums(x, taps_h, taps_w, shape, _empty_like_pixels(x, shape, x.dtype), finish)


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
    taps_h, taps_w, shape = _pool_taps(x, kernel_size, stride, (0, 0), dilation, ceil_mode)
    stack = _empty(x, shape + (kernel_size[0] * kernel_size[1],), x.dtype)
    stack.fill(_highest(x.dtype))
    for region, view, slot in _windows(x, taps_h, taps_w, kernel_size[1]):
        stack[..., slot][region] = view
    real = _axis_counts(taps_h, shape[2])[:, None] * _axis_counts(taps_w, shape[3])[None, :]
    kth = (real - 1) // 2
    stack.partition(np.unique(kth), axis=-1)
    out = _empty(x, shape, x.dtype)
    np.copyto(out, np.take_along_axis(stack, kth[None, None, :, :, None], axis=-1)[..., 0])
    if x.dtype.kind == "f":
        np.copyto(out, np.nan, where=np.isnan(stack).any(axis=-1))
    return out


# ------------------------------------------------------------------------------- adaptive pools


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
    out = _empty(x, (n, c) + tuple(output_size), np.float32)
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
    out = _empty(x, (n, c) + tuple(output_size), x.dtype)
    np.copyto(out, _adaptive_separable(np.maximum, x, output_size, x.dtype))
    if not return_indices:
        return out
    (rows, _), (cols, _) = _adaptive_taps(h, output_size[0]), _adaptive_taps(w, output_size[1])
    windows = [((...,), view, rows[i][:, None] * w + cols[j]) for i, j, view in _adaptive_windows(x, rows, cols)]
    index = np.zeros(out.shape, np.int64)
    _arg_scan(windows, out, index)
    return out, index


# ------------------------------------------------------------------------------- unpool and pad


def max_unpool2d(x, indices, output_size: Pair) -> np.ndarray:
    """``F.max_unpool2d``: zeros of (N, C, *output_size) with each value put back at its index.

    d2l's 2x2 max of arange(16) 4x4 is [[5, 7], [13, 15]] at indices [[5, 7], [13, 15]]; unpooling
    puts 5 at (1, 1), 7 at (1, 3) … and zeros elsewhere.
    """
    n, c = x.shape[:2]
    out = _empty(x, (n, c) + tuple(output_size), x.dtype)
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
    out = _empty(x, (n, c, h + top + bottom, w + left + right), x.dtype)
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


# ------------------------------------------------------------------------------------------ conv


def conv2d(x, weight, bias, stride: Pair, padding: Pair, dilation: Pair, padding_mode: str, groups: int,
           padding_lrtb: tuple[int, int, int, int] | None = None) -> np.ndarray:
    """``nn.Conv2d``'s forward: cross-correlation, float32, any padding mode, groups.

    d2l's corr2d of X = 0..8 (3x3) with K = [[0, 1], [2, 3]] is [[19, 25], [37, 43]]. For each
    kernel offset (i, j) and input channel c of a group, every output channel of the group gains
    ``weight[o, c, i, j]`` times that offset's strided view of channel c. The input is first copied
    to planar float32 (and padded, exactly as nn.Conv2d pads), so those passes run along rows.
    """
    weight = np.asarray(weight, dtype=np.float32)
    left, right, top, bottom = padding_lrtb or (padding[1], padding[1], padding[0], padding[0])
    planar = np.ascontiguousarray(x, dtype=np.float32)
    if left or right or top or bottom:
        planar = pad2d(planar, (left, right, top, bottom), "constant" if padding_mode == "zeros" else padding_mode)
    n, _, h, w = planar.shape
    o, cg, kh, kw = weight.shape
    (sh, sw), (dh, dw) = stride, dilation
    ho, wo = (h - dh * (kh - 1) - 1) // sh + 1, (w - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, groups, o // groups, ho, wo), np.float32)
    product = np.empty_like(out)
    group_weight = weight.reshape(groups, o // groups, cg, kh, kw)[None, ..., None, None]
    for i in range(kh):
        for j in range(kw):
            view = planar[..., i * dh : i * dh + (ho - 1) * sh + 1 : sh, j * dw : j * dw + (wo - 1) * sw + 1 : sw]
            grouped = view.reshape(n, groups, cg, 1, ho, wo)
            for c in range(cg):
                np.multiply(grouped[:, :, c], group_weight[:, :, :, c, i, j], out=product)
                out += product
    out = out.reshape(n, o, ho, wo)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float32)[:, None, None]
    return _like(x, out)


def _like(x: np.ndarray, planar: np.ndarray) -> np.ndarray:
    """``planar`` (C order) in x's memory order: itself when x is NCHW, else one relaid-out copy."""
    result = _empty(x, planar.shape, planar.dtype)
    if result.flags.c_contiguous:
        return planar
    np.copyto(result, planar)
    return result


# ----------------------------------------------------------------------------------- activations


def relu(x) -> np.ndarray:
    """max(x, 0) in float32; NaN stays NaN, as torch.relu."""
    return np.maximum(np.asarray(x, dtype=np.float32), np.float32(0))


def sigmoid(x) -> np.ndarray:
    """1 / (1 + e^−x) in float32; saturates to 0 and 1 without overflow warnings."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):
        out = np.exp(-x)
    np.add(out, np.float32(1), out=out)
    return np.divide(np.float32(1), out, out=out)


def tanh(x) -> np.ndarray:
    """tanh in float32."""
    return np.tanh(np.asarray(x, dtype=np.float32))


def leaky_relu(x, negative_slope: float = 0.01) -> np.ndarray:
    """x where x > 0, else negative_slope·x, float32, as torch's ``x > 0 ? x : x * slope``."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(invalid="ignore"):  # ±inf · 0 is NaN, as in torch
        out = np.multiply(x, np.float32(negative_slope))
    np.copyto(out, x, where=x > 0)
    return out


# ------------------------------------------------------------------------------- colour, values


def grayscale(x) -> np.ndarray:
    """C → 1 by ITU-R 601-2 luma, L = R·299/1000 + G·587/1000 + B·114/1000, alpha dropped.

    Unsigned integers use Pillow's fixed point, ``(R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16``,
    so uint8 equals ``Image.convert("L")`` bit for bit: (255, 0, 0) → 76. Floats use float32
    weights. One or two channels (L, LA) keep the first.
    """
    if x.shape[1] < 3:
        return x[:, :1].copy()
    red, green, blue = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    if x.dtype in (np.uint8, np.uint16):
        luma = red.astype(np.uint32) * 19595
        luma += green * np.uint32(38470)
        luma += blue * np.uint32(7471)
        luma += 1 << 15
        return (luma >> 16).astype(x.dtype)
    weights = [np.float32(v) for v in (0.299, 0.587, 0.114)]
    return (red * weights[0] + green * weights[1] + blue * weights[2]).astype(np.float32, copy=False)


def quantize(unit, maxval: int, dtype) -> np.ndarray:
    """[0, 1] floats → integers: round(clip(unit, 0, 1)·maxval), ties to even, NaN → 0.

    ``np.rint`` and ``torch.round`` both round half to even (2.5 → 2, 3.5 → 4), so the two
    engines quantize identically. fmax/fmin ignore NaN, which is how NaN ends up as 0.
    """
    out = np.fmax(np.asarray(unit, dtype=np.float32), np.float32(0))
    np.fmin(out, np.float32(1), out=out)
    np.multiply(out, np.float32(maxval), out=out)
    np.rint(out, out=out)
    return out.astype(dtype)
