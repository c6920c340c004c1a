"""``nn.ConvTranspose2d``'s forward on numpy arrays: each input value times the kernel, scattered
into the output at stride steps (float32, groups, dilation, output_padding)."""

from __future__ import annotations

import numpy as np

from .conv import _like
from .windows import Pair


def conv_transpose2d(x, weight, bias, stride: Pair, padding: Pair, output_padding: Pair, dilation: Pair,
                     groups: int) -> np.ndarray:
    """``F.conv_transpose2d``: d2l's X = [[0, 1], [2, 3]] with K = [[0, 1], [2, 3]] gives
    [[0, 0, 1], [0, 4, 6], [4, 12, 9]].

    For each kernel offset (i, j) and input channel c of a group, the strided view of the uncropped
    output that offset writes, ``full[..., i·d :: s, j·d :: s]``, gains ``weight[c, o, i, j]`` times
    channel c for every output channel o of the group; then ``padding`` is cropped from both ends
    (the end less ``output_padding``). Python loops run over offsets and channels, never pixels.
    """
    weight = np.asarray(weight, dtype=np.float32)
    planar = np.ascontiguousarray(x, dtype=np.float32)
    n, c, h, w = planar.shape
    cin, og, kh, kw = weight.shape
    cg = cin // groups
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stride, padding, output_padding, dilation
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oph + 1
    wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + opw + 1
    full_h = max((h - 1) * sh + dh * (kh - 1) + 1, ph + ho)
    full_w = max((w - 1) * sw + dw * (kw - 1) + 1, pw + wo)
    full = np.zeros((n, groups, og, full_h, full_w), np.float32)
    grouped = planar.reshape(n, groups, cg, 1, h, w)
    group_weight = weight.reshape(groups, cg, og, kh, kw)[None, ..., None, None]
    product = np.empty((n, groups, og, h, w), np.float32)
    for i in range(kh):
        for j in range(kw):
            view = full[..., i * dh : i * dh + (h - 1) * sh + 1 : sh, j * dw : j * dw + (w - 1) * sw + 1 : sw]
            for k in range(cg):
                np.multiply(grouped[:, :, k], group_weight[:, :, k, :, i, j], out=product)
                view += product
    out = full.reshape(n, groups * og, full_h, full_w)[..., ph : ph + ho, pw : pw + wo]
    out = np.ascontiguousarray(out)
    if bias is not None:
        out += np.asarray(bias, dtype=np.float32)[:, None, None]
    return _like(x, out)
