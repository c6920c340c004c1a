"""The numpy engine's kernels: each op's arithmetic as one call, no torch (the CPU fast path).

``KERNELS`` maps an op class to a small function ``(stage, x, run) → y``; an op without an
entry (fractionalmaxpool) runs on the torch engine, which ``execute.engines.choose_engine``
decides. ``run`` carries the maxpool indices a maxunpool needs, the seed and the value scale.
Both engines give torch's numbers (tests/kernels).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...core import ops
from ..luma import luma
from ..registry import KernelTable
from ..weights import conv_weights, linear_weights
from .adaptive import adaptive_avg_pool2d, adaptive_max_pool2d
from .conv import conv2d
from .conv_transpose import conv_transpose2d
from .planes import max_unpool2d, pad2d
from .pointwise import leaky_relu, relu, sigmoid, tanh
from .pools import avg_pool2d, avg_pool2d_quantized, lp_pool2d, max_pool2d, median_pool2d, min_pool2d
from .upsample import upsample2d
from .windows import threads

TABLE = KernelTable()
KERNELS = TABLE.kernels
kernel = TABLE.kernel
apply = TABLE.apply
missing_kernels = TABLE.missing

__all__ = ["KERNELS", "apply", "missing_kernels", "quantized_average", "takes_integers", "threads"]


@kernel(ops.MaxPool)
def _maxpool(stage: ops.MaxPool, x: np.ndarray, run: Any) -> np.ndarray:
    if run.wants_indices(stage):
        y, indices = max_pool2d(x, stage.kernel_size, stage.stride, stage.padding, stage.dilation, stage.ceil_mode,
                                return_indices=True)
        run.store_indices(stage, indices, tuple(x.shape[-2:]))
        return y
    return max_pool2d(x, stage.kernel_size, stage.stride, stage.padding, stage.dilation, stage.ceil_mode)


@kernel(ops.MinPool)
def _minpool(stage: ops.MinPool, x: np.ndarray, run: Any) -> np.ndarray:
    return min_pool2d(x, stage.kernel_size, stage.stride, stage.padding, stage.dilation, stage.ceil_mode)


@kernel(ops.AvgPool)
def _avgpool(stage: ops.AvgPool, x: np.ndarray, run: Any) -> np.ndarray:
    return avg_pool2d(x, stage.kernel_size, stage.stride, stage.padding, stage.ceil_mode, stage.count_include_pad,
                      stage.divisor_override)


@kernel(ops.LPPool)
def _lppool(stage: ops.LPPool, x: np.ndarray, run: Any) -> np.ndarray:
    return lp_pool2d(x, stage.norm_type, stage.kernel_size, stage.stride, stage.ceil_mode)


@kernel(ops.MedianPool)
def _medianpool(stage: ops.MedianPool, x: np.ndarray, run: Any) -> np.ndarray:
    return median_pool2d(x, stage.kernel_size, stage.stride, stage.dilation, stage.ceil_mode)


@kernel(ops.AdaptiveMaxPool)
def _adaptivemax(stage: ops.AdaptiveMaxPool, x: np.ndarray, run: Any) -> np.ndarray:
    return adaptive_max_pool2d(x, stage.size_for(*x.shape[-2:]))


@kernel(ops.AdaptiveAvgPool)
def _adaptiveavg(stage: ops.AdaptiveAvgPool, x: np.ndarray, run: Any) -> np.ndarray:
    return adaptive_avg_pool2d(x, stage.size_for(*x.shape[-2:]))


@kernel(ops.GlobalMaxPool)
def _globalmax(stage: ops.GlobalMaxPool, x: np.ndarray, run: Any) -> np.ndarray:
    return x.max(axis=(-2, -1), keepdims=True)


@kernel(ops.GlobalAvgPool)
def _globalavg(stage: ops.GlobalAvgPool, x: np.ndarray, run: Any) -> np.ndarray:
    return x.mean(axis=(-2, -1), keepdims=True, dtype=np.float64).astype(np.float32)


@kernel(ops.MaxUnpool)
def _maxunpool(stage: ops.MaxUnpool, x: np.ndarray, run: Any) -> np.ndarray:
    indices, size = run.take_indices(stage)
    if indices.size and int(indices.max()) >= size[0] * size[1]:
        raise stage.index_error(int(indices.max()), size)
    return max_unpool2d(x, indices, size)


@kernel(ops.Pad)
def _pad(stage: ops.Pad, x: np.ndarray, run: Any) -> np.ndarray:
    return pad2d(x, stage.padding, stage.mode, stage.value * run.scale)  # widens uint8 for 0.5, −1, 2


@kernel(ops.Conv)
def _conv(stage: ops.Conv, x: np.ndarray, run: Any) -> np.ndarray:
    weight, bias, groups = conv_weights(stage, x.shape[1], run.stage_seed(stage))
    return conv2d(x, weight, bias, stage.stride, (0, 0), stage.dilation, stage.padding_mode, groups,
                  padding_lrtb=stage.padding_lrtb())


@kernel(ops.ConvTranspose)
def _convtranspose(stage: ops.ConvTranspose, x: np.ndarray, run: Any) -> np.ndarray:
    weight, bias, groups = conv_weights(stage, x.shape[1], run.stage_seed(stage))
    return conv_transpose2d(x, weight, bias, stage.stride, stage.padding, stage.output_padding, stage.dilation, groups)


@kernel(ops.Upsample)
def _upsample(stage: ops.Upsample, x: np.ndarray, run: Any) -> np.ndarray:
    rh, rw = stage.sizes(*x.shape[-2:])
    factors = None if stage.recompute_scale_factor else stage.scale_factor
    return upsample2d(x, (rh.size, rw.size), stage.mode, bool(stage.align_corners), factors)


@kernel(ops.ReLU)
def _relu(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return relu(x)


@kernel(ops.Sigmoid)
def _sigmoid(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return sigmoid(x)


@kernel(ops.Tanh)
def _tanh(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return tanh(x)


@kernel(ops.LeakyReLU)
def _leakyrelu(stage: ops.LeakyReLU, x: np.ndarray, run: Any) -> np.ndarray:
    return leaky_relu(x, stage.negative_slope)


@kernel(ops.Grayscale)
def _grayscale(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return luma(x)


@kernel(ops.Flatten)
def _flatten(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


@kernel(ops.Linear)
def _linear(stage: ops.Linear, x: np.ndarray, run: Any) -> np.ndarray:
    weight, bias = linear_weights(stage, x.shape[1], run.stage_seed(stage))
    y = x.astype(np.float32) @ weight.T
    return y + bias if bias is not None else y


# Stages whose torch kernels need floats ("float" dtype policy) but whose numpy kernels take uint8/uint16
# as they are and give the very float32 result the float input would: averages sum integers exactly
# (then divide once in float32, as torch divides its exact float sums), conv copies to float32 itself.
# Converting a 12 MP image to float32 first costs more than the 2x2 average.
INTEGER_INPUT = frozenset({ops.AvgPool, ops.AdaptiveAvgPool, ops.GlobalAvgPool, ops.Conv})


def takes_integers(stage: Any) -> bool:
    """Whether ``stage`` may get integer pixels (in their native scale) instead of floats: the engine
    can skip its uint8 → float32 copy for these (same numbers, one full pass less)."""
    return type(stage) in INTEGER_INPUT and stage.dtype_policy == "float"


def quantized_average(stage: Any, x: np.ndarray) -> np.ndarray | None:
    """A uint8 avgpool's output as the 8-bit image it becomes, straight from the integer window sums,
    or None where that shortcut does not apply.

    Equals ``quantize`` of the float32 result under ``--normalize auto`` or ``clip`` (tested for every
    window sum): an average of 8-bit pixels never leaves [0, 255] unless ``divisor_override`` is smaller
    than the window, so auto keeps it and the float path only rounds it, half to even, as
    ``avg_pool2d_quantized`` does without the float32 array. For an engine that knows the output is
    an 8-bit image.
    """
    if type(stage) is not ops.AvgPool or x.dtype != np.uint8 or x.ndim != 4:
        return None
    if stage.divisor_override is not None and stage.divisor_override < stage.kernel_size[0] * stage.kernel_size[1]:
        return None  # averages above 255: auto would stretch them
    return avg_pool2d_quantized(x, stage.kernel_size, stage.stride, stage.padding, stage.ceil_mode,
                                stage.count_include_pad, stage.divisor_override)
