"""``nn.Conv2d``'s forward on numpy arrays: cross-correlation, float32, any padding mode, groups."""

from __future__ import annotations

import numpy as np

from .planes import pad2d
from .windows import Pair, empty_as


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
    result = empty_as(x, planar.shape, planar.dtype)
    if result.flags.c_contiguous:
        return planar
    np.copyto(result, planar)
    return result
