"""The shared machinery of the numpy kernels: strided views per kernel offset, separable
reductions, memory layouts and the threads that share a reduction's rows.

Every window op is *shift-and-accumulate*: for each kernel offset (i, j) the input pixels that
offset reads form a strided view ``x[..., i*d - p :: s, j*d - p :: s]``, and the output is combined
from those views with ``np.maximum``/``np.add`` and ``out=``. Python loops run over kernel offsets
and channels, never over pixels. d2l's 2x2 max pool of X = [[0, 1, 2], [3, 4, 5], [6, 7, 8]] is
``max(X[:2, :2], X[:2, 1:], X[1:, :2], X[1:, 1:]) = [[4, 5], [7, 8]]``.

Padding is never materialised for pooling: an offset only touches the outputs whose window holds
a real pixel there (``axis_taps``), which is exactly torch's "padding is -inf / not counted".

Arrays are (N, C, H, W) but may be any strided view (an HWC Pillow buffer transposed to NCHW);
outputs are allocated in the input's memory order (``empty_as``), so converting back to HWC is free.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

import numpy as np

from ...core.arithmetic import pool_output_size


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


@contextlib.contextmanager
def threads(count: int) -> Iterator[None]:
    """Window reductions (``separable``) inside share their rows out over ``count`` threads.

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


def channels_last(x: np.ndarray) -> bool:
    """Whether channels are x's innermost axis (an HWC buffer seen as NCHW), as torch's
    ``suggest_memory_format`` decides; axes of length 1 have no say."""
    return x.shape[1] > 1 and all(abs(x.strides[1]) < abs(x.strides[a]) for a in (2, 3) if x.shape[a] > 1)


def empty_as(like: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """An uninitialised array of ``shape`` in ``like``'s memory format (NCHW or NHWC; extra axes innermost).

    A (1, 3, 3000, 4000) NCHW view of an HWC buffer gets its output as an (N, H, W, C) buffer seen
    through the same transpose, so turning the result back into an HWC image costs nothing.
    """
    order = ([0, 2, 3, 1] if channels_last(like) else [0, 1, 2, 3]) + list(range(4, len(shape)))
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
    if x.dtype.kind not in "ui" or not channels_last(x) or x.strides[1] != x.itemsize or pixel <= c or pixel > 4 or w < 2:
        return x
    root = x
    while isinstance(root.base, np.ndarray):
        root = root.base
    wide = np.lib.stride_tricks.as_strided(x, (n, pixel, h, w), x.strides, writeable=writeable and x.flags.writeable)
    byte_bounds = np.lib.array_utils.byte_bounds if hasattr(np.lib, "array_utils") else np.byte_bounds
    low, high = byte_bounds(wide)
    root_low, root_high = byte_bounds(root)
    return wide if root_low <= low and high <= root_high else x


def planes(*arrays: np.ndarray) -> list[tuple[np.ndarray, ...]]:
    """The arrays split into one-channel views when few channels are innermost in memory, else whole.

    RGB as a transposed HWC view has C=3 at stride 1: a ufunc would loop 3 elements at a time.
    Per-channel views make the inner loop run along a row instead.
    """
    first = arrays[0]
    if first.shape[1] <= _SPLIT_CHANNELS and channels_last(first):
        return [tuple(a[:, c : c + 1] for a in arrays) for c in range(first.shape[1])]
    return [arrays]


def lowest(dtype: np.dtype):
    """The identity of max: -inf for floats, the smallest integer otherwise."""
    return -np.inf if dtype.kind == "f" else np.iinfo(dtype).min


def highest(dtype: np.dtype):
    """The identity of min: +inf for floats, the largest integer otherwise."""
    return np.inf if dtype.kind == "f" else np.iinfo(dtype).max


def axis_taps(n: int, out: int, k: int, s: int, p: int, d: int) -> list[tuple[int, slice, slice]]:
    """For each kernel offset i along one axis: (i, outputs, input pixels) where the tap is real.

    Output o reads input o·s − p + i·d; only outputs where that lies in [0, n) are listed, so padding
    and a ceil_mode overhang simply contribute nothing. d2l's ``MaxPool2d(3, padding=1, stride=2)``
    on 4 pixels: offset 0 reaches pixels −1, 1 → only output 1 (pixel 1) counts.

    >>> axis_taps(4, 2, 3, 2, 1, 1)[0]
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


def pool_taps(x: np.ndarray, k: Pair, s: Pair, p: Pair, d: Pair, ceil_mode: bool):
    """Row taps, column taps and the output shape of a sliding-window pool (torch's size rule)."""
    n, c, h, w = x.shape
    ho = pool_output_size(h, k[0], s[0], p[0], d[0], ceil_mode).size
    wo = pool_output_size(w, k[1], s[1], p[1], d[1], ceil_mode).size
    taps_h = axis_taps(h, ho, k[0], s[0], p[0], d[0])
    taps_w = axis_taps(w, wo, k[1], s[1], p[1], d[1])
    return taps_h, taps_w, (n, c, ho, wo)


def offset_views(x: np.ndarray, taps_h, taps_w, kernel_width: int) -> list[tuple[tuple, np.ndarray, int]]:
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


def separable(ufunc: np.ufunc, x: np.ndarray, taps_h, taps_w, out: np.ndarray, identity,
               finish=None, acc=None) -> np.ndarray:
    """A window reduction done as rows, then columns: exact for max, min and integer sums.

    max over a 2-D window = max over its rows of the max over its columns, so a kh×kw kernel
    costs kh + kw passes instead of kh·kw. The row pass combines whole contiguous rows (the fast
    SIMD case even for an HWC buffer); the column pass runs per channel (``planes``). Output rows
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
        rows = empty_as(x, (n, x.shape[1], min(block, end - start), w), acc)
        reduced = empty_as(x, (n, c, min(block, end - start), wo), acc) if finish is not None else None
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
                for plane, dest in planes(part[:, :c], dest_block):
                    _reduce(ufunc, dest, [((..., ow), plane[..., iw]) for _, ow, iw in taps_w], identity)
            if finish is not None:
                finish(dest_block, target, first, stop)

    _in_bands(band, ho, out.size)
    return out


def _pixel_lane_output(ufunc: np.ufunc, x: np.ndarray, out: np.ndarray, acc: np.dtype, finish) -> np.ndarray | None:
    """``out`` widened to its four-byte pixels (writeable) when window sums may run on whole
    pixels, else None: four 1-byte channels (RGBX, RGBA) summed into uint16 lanes of one uint64,
    and an output with the same four-byte pixels to finish into.

    Lanes never carry into each other: ``sum_dtype`` keeps every sum below 2^15. For a 2x2
    average of a 12 MP photo this halves the column pass (one uint64 pass, not three strided
    uint16 ones) and lets the rounding run over contiguous rows.
    """
    if ufunc is not np.add or finish is None or acc != np.uint16 or x.dtype.itemsize != 1:
        return None
    if x.shape[1] != 4 or not channels_last(x) or x.strides[1] != 1 or x.strides[3] != 4:
        return None
    wide = with_pixel_padding(out, writeable=True)
    return wide if wide.shape[1] == 4 and wide.strides[1] == 1 and wide.strides[3] == 4 else None


def empty_like_pixels(x: np.ndarray, shape: tuple[int, ...], dtype) -> np.ndarray:
    """``empty_as``, but with x's four-byte pixels when x is three channels of them (Pillow's RGBX):
    the result is the first three channels of an RGBX buffer, which ``_pixel_lane_output`` can finish
    into row by row and the encoder hands to Pillow as it is."""
    wide = with_pixel_padding(x)
    if wide.shape[1] != 4 or x.shape[1] != 3 or np.dtype(dtype).itemsize != 1 or not channels_last(wide):
        return empty_as(x, shape, dtype)
    return empty_as(wide, (shape[0], 4, *shape[2:]), dtype)[:, :3]


def band_count(rows: int, size: int) -> int:
    """How many threads share an output of ``rows`` rows and ``size`` elements: ``threads()``,
    fewer for a small output (a band must outweigh handing it over)."""
    return max(1, min(_threads, rows, max(1, size // _BAND_MIN_OUTPUTS)))


def _in_bands(band, rows: int, size: int) -> None:
    """``band(start, end)`` over [0, rows): at once, or split over ``threads()`` threads for a big output."""
    count = band_count(rows, size)
    if count <= 1:
        band(0, rows)
        return
    edges = [rows * i // count for i in range(count + 1)]
    for future in [_pool().submit(band, lo, hi) for lo, hi in zip(edges, edges[1:])]:
        future.result()


def arg_scan(windows, out: np.ndarray, tap: np.ndarray) -> None:
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


def flat_index(tap: np.ndarray, geometry, width: int) -> np.ndarray:
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


def first_offset(out: int, s: int, p: int, d: int) -> np.ndarray:
    """torch's starting guess for each window's argmax: the first offset at or after pixel 0.

    It only survives in a window that holds no real pixel, which torch allows with dilation:
    kernel 2, dilation 3, padding 1 on a row of 2 reads pixels −1 and 2; torch answers the
    identity (−inf, or the dtype's minimum) at index 2, past the row. Matching it keeps indices equal.
    """
    start = np.arange(out) * s - p
    return np.maximum(0, -(start // d))
