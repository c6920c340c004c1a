"""The torch engine's kernels: each op as the ``torch.nn.functional`` call it mirrors (CPU or CUDA).

``KERNELS`` maps an op class to ``(stage, x, run) → y`` on an N×C×H×W tensor; torch is imported
when this module is, which only the torch engine does. These are the semantic reference that the
numpy kernels and the textbook loops are tested against.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from ...core import ops
from ..luma import FIXED_POINT_SHIFT, FIXED_POINT_WEIGHTS, FLOAT_WEIGHTS
from ..registry import KernelTable
from ..weights import conv_weights, linear_weights

TABLE = KernelTable()
KERNELS = TABLE.kernels
kernel = TABLE.kernel
apply = TABLE.apply


def pool_source(x):
    """``x`` itself where torch has an integer max_pool2d (the CPU), else float32: CUDA's kernel is
    floating-point only, and float32 holds every 8- and 16-bit value exactly."""
    if x.is_floating_point() or x.device.type == "cpu":
        return x
    return x.float()


@kernel(ops.MaxPool)
def _maxpool(stage: ops.MaxPool, x, run):
    source = pool_source(x)
    if run.wants_indices(stage):
        y, indices = F.max_pool2d(source, stage.kernel_size, stage.stride, stage.padding, stage.dilation,
                                  stage.ceil_mode, True)
        run.store_indices(stage, indices, tuple(x.shape[-2:]))
        return y.to(x.dtype)
    return F.max_pool2d(source, stage.kernel_size, stage.stride, stage.padding, stage.dilation,
                        stage.ceil_mode).to(x.dtype)


@kernel(ops.MinPool)
def _minpool(stage: ops.MinPool, x, run):
    if x.is_floating_point():
        flipped = -x
    else:
        flipped = -pool_source(x.int())  # exact for uint8 and the int32 that holds 16-bit images
    y = F.max_pool2d(flipped, stage.kernel_size, stage.stride, stage.padding, stage.dilation, stage.ceil_mode)
    return (-y).to(x.dtype)


@kernel(ops.AvgPool)
def _avgpool(stage: ops.AvgPool, x, run):
    return F.avg_pool2d(x, stage.kernel_size, stage.stride, stage.padding, stage.ceil_mode,
                        stage.count_include_pad, stage.divisor_override)


@kernel(ops.LPPool)
def _lppool(stage: ops.LPPool, x, run):
    return F.lp_pool2d(x, stage.norm_type, stage.kernel_size, stage.stride, stage.ceil_mode)


@kernel(ops.MedianPool)
def _medianpool(stage: ops.MedianPool, x, run):
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (dh, dw) = stage.kernel_size, stage.stride, stage.dilation
    ho, wo = (r.size for r in stage.sizes(h, w))
    span_h, span_w = stage.spans()
    extent_h, extent_w = (ho - 1) * sh + span_h, (wo - 1) * sw + span_w
    # float32 holds every 8- and 16-bit value exactly; only float64 input needs float64
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    padded = torch.full((n, c, max(extent_h, h), max(extent_w, w)), float("nan"), dtype=dtype, device=x.device)
    padded[:, :, :h, :w] = x.to(dtype)
    windows = padded.unfold(2, span_h, sh).unfold(3, span_w, sw)
    windows = windows[..., ::dh, ::dw][:, :, :ho, :wo].reshape(n, c, ho, wo, kh * kw)
    return torch.nanquantile(windows, 0.5, dim=-1, interpolation="lower").to(x.dtype)


@kernel(ops.AdaptiveMaxPool)
def _adaptivemax(stage: ops.AdaptiveMaxPool, x, run):
    size = stage.size_for(*x.shape[-2:])
    if not x.is_floating_point():  # no integer kernel in torch; float32 holds 16-bit exactly
        return F.adaptive_max_pool2d(x.float(), size).to(x.dtype)
    return F.adaptive_max_pool2d(x, size)


@kernel(ops.AdaptiveAvgPool)
def _adaptiveavg(stage: ops.AdaptiveAvgPool, x, run):
    return F.adaptive_avg_pool2d(x, stage.size_for(*x.shape[-2:]))


@kernel(ops.GlobalMaxPool)
def _globalmax(stage, x, run):
    return x.amax(dim=(-2, -1), keepdim=True)


@kernel(ops.GlobalAvgPool)
def _globalavg(stage, x, run):
    return x.mean(dim=(-2, -1), keepdim=True)


@kernel(ops.FractionalMaxPool)
def _fractionalmax(stage: ops.FractionalMaxPool, x, run):
    rh, rw = stage.sizes(x.shape[-2], x.shape[-1])
    generator = torch.Generator(device="cpu").manual_seed(run.stage_seed(stage))
    samples = torch.rand((x.shape[0], x.shape[1], 2), generator=generator, dtype=x.dtype).to(x.device)
    return F.fractional_max_pool2d(x, stage.kernel_size, output_size=(rh.size, rw.size), _random_samples=samples)


@kernel(ops.MaxUnpool)
def _maxunpool(stage: ops.MaxUnpool, x, run):
    # F.max_unpool2d's own kernel has no integer (uint8) version and checks output_size
    # against its kernel/stride, which the plan has already done with the real geometry.
    # Its semantics are a scatter of each value to its flat index in the output plane.
    indices, size = run.take_indices(stage)
    n, c = x.shape[0], x.shape[1]
    area = size[0] * size[1]
    flat = indices.reshape(n, c, -1)
    if flat.numel() and int(flat.max()) >= area:
        raise stage.index_error(int(flat.max()), size)
    out = x.new_zeros((n, c, area))
    out.scatter_(2, flat, x.reshape(n, c, -1))
    return out.reshape(n, c, size[0], size[1])


@kernel(ops.Pad)
def _pad(stage: ops.Pad, x, run):
    if stage.mode == "constant":
        fill = stage.value * run.scale
        if not x.is_floating_point():
            limits = torch.iinfo(x.dtype)
            if fill != int(fill) or not limits.min <= fill <= limits.max:  # 0.5, −1 or 2 on uint8
                x = x.float()
        return F.pad(x, stage.padding, mode="constant", value=fill)
    source = x if x.is_floating_point() else x.float()
    return F.pad(source, stage.padding, mode=stage.mode).to(x.dtype)


@kernel(ops.Conv)
def _conv(stage: ops.Conv, x, run):
    weight, bias, groups = conv_weights(stage, x.shape[1], run.stage_seed(stage))
    x = x if x.is_floating_point() else x.float()
    padding = stage.padding_lrtb()
    if any(padding):
        x = F.pad(x, padding, mode={"zeros": "constant"}.get(stage.padding_mode, stage.padding_mode))
    w = torch.from_numpy(weight).to(x.device)
    b = torch.from_numpy(bias).to(x.device) if bias is not None else None
    return F.conv2d(x, w, b, stage.stride, 0, stage.dilation, groups)


@kernel(ops.ConvTranspose)
def _convtranspose(stage: ops.ConvTranspose, x, run):
    weight, bias, groups = conv_weights(stage, x.shape[1], run.stage_seed(stage))
    x = x if x.is_floating_point() else x.float()
    w = torch.from_numpy(weight).to(x.device)
    b = torch.from_numpy(bias).to(x.device) if bias is not None else None
    return F.conv_transpose2d(x, w, b, stage.stride, stage.padding, stage.output_padding, groups, stage.dilation)


@kernel(ops.Upsample)
def _upsample(stage: ops.Upsample, x, run):
    """``F.interpolate``; nearest on integers through float32 where torch's kernel has no integer
    version (CUDA, uint16), which holds every 8- and 16-bit value exactly."""
    source = x
    if not x.is_floating_point() and (stage.mode != "nearest" or x.device.type != "cpu" or x.dtype != torch.uint8):
        source = x.float()
    y = F.interpolate(source, size=stage.size, scale_factor=stage.scale_factor, mode=stage.mode,
                      align_corners=stage.align_corners, recompute_scale_factor=stage.recompute_scale_factor)
    return y.to(x.dtype) if stage.mode == "nearest" else y


@kernel(ops.ReLU)
def _relu(stage, x, run):
    return x.relu()


@kernel(ops.Sigmoid)
def _sigmoid(stage, x, run):
    return x.sigmoid()


@kernel(ops.Tanh)
def _tanh(stage, x, run):
    return x.tanh()


@kernel(ops.LeakyReLU)
def _leakyrelu(stage: ops.LeakyReLU, x, run):
    return F.leaky_relu(x, stage.negative_slope)


@kernel(ops.Grayscale)
def _grayscale(stage, x, run):
    """The one luma (``poolcli.kernels.luma``): Pillow's fixed point on integers, float32 weights
    on floats, in the same order as the numpy kernel so that both engines agree bit for bit."""
    if x.shape[1] < 3:
        return x[:, :1].clone()
    red, green, blue = x[:, 0:1], x[:, 1:2], x[:, 2:3]
    if not x.is_floating_point():
        wr, wg, wb = FIXED_POINT_WEIGHTS
        total = red.long() * wr + green.long() * wg + blue.long() * wb + (1 << (FIXED_POINT_SHIFT - 1))
        return (total >> FIXED_POINT_SHIFT).to(x.dtype)
    wr, wg, wb = (torch.tensor(w, dtype=torch.float32, device=x.device) for w in FLOAT_WEIGHTS)
    return red.float() * wr + green.float() * wg + blue.float() * wb


@kernel(ops.Flatten)
def _flatten(stage, x, run):
    return x.flatten(1)


@kernel(ops.Linear)
def _linear(stage: ops.Linear, x, run):
    weight, bias = linear_weights(stage, x.shape[1], run.stage_seed(stage))
    y = x.float() @ torch.from_numpy(weight).to(x.device).T
    return y + torch.from_numpy(bias).to(x.device) if bias is not None else y


def levels(unit, out_max: int):
    """The one quantizer's arithmetic on a tensor (``poolcli.kernels.quantize.levels``):
    round(clip(unit, 0, 1)·out_max), half to even, NaN → 0."""
    return torch.round(torch.nan_to_num(unit, nan=0.0).clip(0, 1) * out_max)
