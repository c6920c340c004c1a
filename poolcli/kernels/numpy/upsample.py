"""``F.interpolate`` on numpy arrays: nearest, bilinear and bicubic, by torch's source-index rules.

Per axis, each output's source cells and weights are computed once (a few vectors); the plane is
then gathered and weighed along H, then along W. No loop over pixels.
"""

from __future__ import annotations

import numpy as np

from ...core.arithmetic import source_scale

CUBIC_A = -0.75  # Keys' cubic convolution coefficient, as torch's bicubic


def nearest_indices(n_in: int, n_out: int, scale_factor: float | None) -> np.ndarray:
    """torch's nearest source index: o itself for equal sizes, o >> 1 for twice the size, else
    min(⌊o · scale⌋, n_in − 1) in float32. Nearest of 2 onto 4 reads [0, 0, 1, 1]."""
    if n_out == n_in:
        return np.arange(n_out)
    if n_out == 2 * n_in:
        return np.arange(n_out) >> 1
    scale = np.float32(source_scale(n_in, n_out, False, scale_factor))
    positions = np.floor(np.arange(n_out, dtype=np.float32) * scale).astype(np.int64)
    return np.minimum(positions, n_in - 1)


def _positions(n_in: int, n_out: int, align_corners: bool, scale_factor: float | None, cubic: bool) -> np.ndarray:
    scale = source_scale(n_in, n_out, align_corners, scale_factor)
    o = np.arange(n_out, dtype=np.float64)
    if align_corners:
        return scale * o
    positions = scale * (o + 0.5) - 0.5
    return positions if cubic else np.maximum(positions, 0.0)


def linear_taps(n_in: int, n_out: int, align_corners: bool, scale_factor: float | None):
    """Bilinear along one axis: (indices 2 × n_out, weights 2 × n_out). The source position lies
    between cells i and i + 1 (clamped to the plane); the weights are 1 − λ and λ.

    Doubling 2 cells: positions [0, 0.25, 0.75, 1.25] → weights of cell 0: [1, 0.75, 0.25, 0]."""
    positions = _positions(n_in, n_out, align_corners, scale_factor, cubic=False)
    first = np.floor(positions).astype(np.int64)
    first = np.minimum(first, n_in - 1)
    second = np.minimum(first + 1, n_in - 1)
    lam = (positions - first).astype(np.float32)
    lam = np.where(first == n_in - 1, np.float32(0), lam).astype(np.float32)
    return np.stack([first, second]), np.stack([np.float32(1) - lam, lam])


def cubic_taps(n_in: int, n_out: int, align_corners: bool, scale_factor: float | None):
    """Bicubic along one axis: cells ⌊x⌋ − 1 … ⌊x⌋ + 2 (clamped to the plane) and Keys' weights
    (A = −0.75) of t = x − ⌊x⌋: (indices 4 × n_out, weights 4 × n_out)."""
    positions = _positions(n_in, n_out, align_corners, scale_factor, cubic=True)
    floor = np.floor(positions)
    t = (positions - floor).astype(np.float32)
    a = np.float32(CUBIC_A)

    def near(v):  # |v| ≤ 1
        return ((a + 2) * v - (a + 3)) * v * v + 1

    def far(v):  # 1 < |v| < 2
        return ((a * v - 5 * a) * v + 8 * a) * v - 4 * a

    weights = np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)]).astype(np.float32)
    start = floor.astype(np.int64) - 1
    indices = np.clip(start[None, :] + np.arange(4)[:, None], 0, n_in - 1)
    return indices, weights


def _weigh(x: np.ndarray, indices: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    """Σ_t weights[t] · x gathered at indices[t] along ``axis`` (−2 or −1), in float32.

    Where the output is a whole multiple f of the input, the weights repeat every f outputs and
    the cells move on by one: each phase r of f then reads plain slices of x (no gather) away from
    the edges, with the very same products and sums; the few edge outputs are gathered."""
    n_in, n_out = x.shape[axis], indices.shape[1]
    factor = n_out // n_in if n_out % n_in == 0 else 0
    if factor < 1 or n_in < 8:
        return _gather(x, indices, weights, axis)
    shape = list(x.shape)
    shape[axis] = n_out
    out = np.empty(shape, np.float32)
    for phase in range(factor):
        idx, w = indices[:, phase::factor], weights[:, phase::factor]
        middle = idx.shape[1] // 2
        offsets = idx[:, middle] - middle
        k = np.arange(idx.shape[1])
        regular = np.all((idx == k + offsets[:, None]) & (w == w[:, middle : middle + 1]), axis=0)
        inner = np.nonzero(regular)[0]
        first, last = int(inner[0]), int(inner[-1]) + 1
        if not regular[first:last].all():
            return _gather(x, indices, weights, axis)
        target = _along(out, axis, slice(phase, None, factor))
        inner = _along(target, axis, slice(first, last))
        for tap, (offset, weight) in enumerate(zip(offsets, w[:, middle])):
            cells = _along(x, axis, slice(first + offset, last + offset))
            if tap == 0:
                np.multiply(cells, weight, out=inner)
            else:
                inner += cells * weight
        edges = np.r_[0:first, last : idx.shape[1]]
        if edges.size:  # a fancy index gives a copy: assign through the view itself
            if axis == -2:
                target[..., edges, :] = _gather(x, idx[:, edges], w[:, edges], axis)
            else:
                target[..., edges] = _gather(x, idx[:, edges], w[:, edges], axis)
    return out


def _along(array: np.ndarray, axis: int, index: slice) -> np.ndarray:
    """The view ``array[..., index, :]`` (axis −2) or ``array[..., index]`` (axis −1)."""
    return array[..., index, :] if axis == -2 else array[..., index]


def _gather(x: np.ndarray, indices: np.ndarray, weights: np.ndarray, axis: int) -> np.ndarray:
    shape = [1] * x.ndim
    shape[axis] = weights.shape[1]
    out = np.take(x, indices[0], axis=axis) * weights[0].reshape(shape)
    for index, weight in zip(indices[1:], weights[1:]):
        out += np.take(x, index, axis=axis) * weight.reshape(shape)
    return out


def upsample2d(x, size: tuple[int, int], mode: str, align_corners: bool, scale_factor: tuple[float, float] | None):
    """``F.interpolate(x, size, mode=mode, align_corners=align_corners)`` with torch's own scales
    (``scale_factor`` where given and not recomputed). Nearest keeps the dtype; the others give
    float32."""
    (ho, wo), (h, w) = size, x.shape[-2:]
    factors = scale_factor or (None, None)
    if mode == "nearest":
        rows = nearest_indices(h, ho, factors[0])
        cols = nearest_indices(w, wo, factors[1])
        return np.take(np.take(x, rows, axis=-2), cols, axis=-1)
    taps = linear_taps if mode == "bilinear" else cubic_taps
    planar = np.asarray(x, dtype=np.float32)
    rows = taps(h, ho, align_corners, factors[0])
    cols = taps(w, wo, align_corners, factors[1])
    return _weigh(_weigh(planar, *cols, axis=-1), *rows, axis=-2)
