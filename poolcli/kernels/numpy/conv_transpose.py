"""``nn.ConvTranspose2d``'s forward on numpy arrays: each input value times the kernel, scattered
into the output at stride steps (float32, groups, dilation, output_padding)."""

from __future__ import annotations

import numpy as np

from .conv import _like
from .windows import Pair


def _landing(n: int, n_out: int, offset: int, stride: int) -> tuple[int, int, int]:
    """For one kernel offset (offset = k·d − p): the inputs [lo, hi) whose values land inside the
    output, and the first output they land on (input i lands on i·s + offset).

    >>> _landing(4, 5, -1, 2)  # inputs 1..2 land on 1 and 3; input 0 in the padding, 3 beyond
    (1, 3, 1)
    """
    lo = max(0, -(offset // stride))
    hi = max(lo, min(n, (n_out - 1 - offset) // stride + 1))
    return lo, hi, lo * stride + offset


def conv_transpose2d(x, weight, bias, stride: Pair, padding: Pair, output_padding: Pair, dilation: Pair,
                     groups: int) -> np.ndarray:
    """``F.conv_transpose2d``: d2l's X = [[0, 1], [2, 3]] with K = [[0, 1], [2, 3]] gives
    [[0, 0, 1], [0, 4, 6], [4, 12, 9]].

    For each kernel offset (i, j) and input channel c of a group, the inputs land on a strided view
    of the output, ``out[..., i·d − p :: s, j·d − p :: s]`` (those that land inside it, the
    padding being cropped), which gains ``weight[c, o, i, j]`` times channel c for every output
    channel o of the group. Python loops run over offsets and channels, never pixels.
    """
    weight = np.asarray(weight, dtype=np.float32)
    planar = np.ascontiguousarray(x, dtype=np.float32)
    n, c, h, w = planar.shape
    cin, og, kh, kw = weight.shape
    cg = cin // groups
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    out = np.zeros((n, groups, og, ho, wo), np.float32)
    grouped = planar.reshape(n, groups, cg, 1, h, w)
    group_weight = weight.reshape(groups, cg, og, kh, kw)[None, ..., None, None]
    product = np.empty((n, groups, og, h, w), np.float32)
    for i in range(kh):
        top, bottom, row = _landing(h, ho, i * dh - ph, sh)
        for j in range(kw):
            left, right, col = _landing(w, wo, j * dw - pw, sw)
            if top == bottom or left == right:
                continue
            rows, cols = bottom - top, right - left
            view = out[..., row : row + (rows - 1) * sh + 1 : sh, col : col + (cols - 1) * sw + 1 : sw]
            part = product[..., :rows, :cols]
            for k in range(cg):
                np.multiply(grouped[:, :, k, :, top:bottom, left:right], group_weight[:, :, k, :, i, j], out=part)
                view += part
    out = out.reshape(n, groups * og, ho, wo)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float32)[:, None, None]
    return out if x.flags.c_contiguous else _like(x, out)
