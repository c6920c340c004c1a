"""The numpy engine: each stage's arithmetic as one call into ``kernels_numpy``, no torch.

``KERNELS`` maps an op to a small function ``(stage, x, run) → y``; a stage without an entry
(fractionalmaxpool) runs on the torch engine, which ``engine.choose_engine`` decides.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

import numpy as np


def _k():
    from . import kernels_numpy

    return kernels_numpy


def _maxpool(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    if run.wants_indices(stage):
        y, indices = _k().max_pool2d(
            x, stage.kernel_size, stage.stride, stage.padding, stage.dilation, stage.ceil_mode, return_indices=True
        )
        run.store_indices(stage, indices, tuple(x.shape[-2:]))
        return y
    return _k().max_pool2d(x, stage.kernel_size, stage.stride, stage.padding, stage.dilation, stage.ceil_mode)


def _minpool(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return _k().min_pool2d(x, stage.kernel_size, stage.stride, stage.padding, stage.dilation, stage.ceil_mode)


def _avgpool(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return _k().avg_pool2d(
        x, stage.kernel_size, stage.stride, stage.padding, stage.ceil_mode, stage.count_include_pad,
        stage.divisor_override,
    )


def _lppool(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return _k().lp_pool2d(x, stage.norm_type, stage.kernel_size, stage.stride, stage.ceil_mode)


def _medianpool(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return _k().median_pool2d(x, stage.kernel_size, stage.stride, stage.dilation, stage.ceil_mode)


def _output_size(stage: Any, x: np.ndarray) -> tuple[int, int]:
    return (stage.output_size[0] or x.shape[-2], stage.output_size[1] or x.shape[-1])


def _adaptivemax(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return _k().adaptive_max_pool2d(x, _output_size(stage, x))


def _adaptiveavg(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return _k().adaptive_avg_pool2d(x, _output_size(stage, x))


def _globalmax(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return x.max(axis=(-2, -1), keepdims=True)


def _globalavg(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return x.mean(axis=(-2, -1), keepdims=True, dtype=np.float64).astype(np.float32)


def _maxunpool(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    indices, size = run.take_indices(stage)
    return _k().max_unpool2d(x, indices, size)


def _pad(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return _k().pad2d(x, stage.padding, stage.mode, stage.value * run.scale)  # widens uint8 for 0.5, −1, 2


def _conv(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    weight, bias, groups = stage.weights(x.shape[1], run.stage_seed(stage))
    return _k().conv2d(
        x, weight, bias, stage.stride, (0, 0), stage.dilation, stage.padding_mode, groups,
        padding_lrtb=stage.padding_lrtb(),
    )


def _grayscale(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    if x.shape[1] <= 2:
        return x[:, :1].astype(np.float32)
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32).reshape(1, 3, 1, 1)
    return (x[:, :3].astype(np.float32) * weights).sum(axis=1, keepdims=True, dtype=np.float32)


def _flatten(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return x.reshape(x.shape[0], -1)


def _linear(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    from .stages import random_uniform_weights

    features = x.shape[1]
    weight, bias = random_uniform_weights(run.stage_seed(stage), (stage.out_features, features), features, stage.bias)
    y = x.astype(np.float32) @ weight.T
    return y + bias if bias is not None else y


KERNELS: dict[str, Callable[[Any, np.ndarray, Any], np.ndarray]] = {
    "maxpool": _maxpool,
    "minpool": _minpool,
    "avgpool": _avgpool,
    "lppool": _lppool,
    "medianpool": _medianpool,
    "adaptivemaxpool": _adaptivemax,
    "adaptiveavgpool": _adaptiveavg,
    "globalmaxpool": _globalmax,
    "globalavgpool": _globalavg,
    "maxunpool": _maxunpool,
    "pad": _pad,
    "conv": _conv,
    "relu": lambda stage, x, run: _k().relu(x),
    "sigmoid": lambda stage, x, run: _k().sigmoid(x),
    "tanh": lambda stage, x, run: _k().tanh(x),
    "leakyrelu": lambda stage, x, run: _k().leaky_relu(x, stage.negative_slope),
    "grayscale": _grayscale,
    "flatten": _flatten,
    "linear": _linear,
}


# Stages whose torch kernels need floats ("float" dtype policy) but whose numpy kernels take uint8/uint16
# as they are and give the very float32 result the float input would: averages sum integers exactly
# (then divide once in float32, as torch divides its exact float sums), conv copies to float32 itself.
# Converting a 12 MP image to float32 first costs more than the 2x2 average (tests/test_kernels_numpy.py).
INTEGER_INPUT = frozenset({"avgpool", "adaptiveavgpool", "globalavgpool", "conv"})


def takes_integers(stage: Any) -> bool:
    """Whether ``stage`` may get integer pixels (in their native scale) instead of floats: the engine's
    ``_prepare`` can skip its uint8 → float32 copy for these (same numbers, one full pass less)."""
    return stage.op in INTEGER_INPUT and stage.dtype_policy == "float"


def quantized_average(stage: Any, x: np.ndarray) -> np.ndarray | None:
    """A uint8 avgpool's output as the 8-bit image it becomes, straight from the integer window sums,
    or None where that shortcut does not apply.

    Equals ``quantize`` of the float32 result under ``--normalize auto`` or ``clip`` (tested for every
    window sum): an average of 8-bit pixels never leaves [0, 255] unless ``divisor_override`` is smaller
    than the window, so auto keeps it and the float path only rounds it, half to even, as
    ``avg_pool2d_quantized`` does without the float32 array (12 MP, 2x2: 17 ms instead of ~50).
    For an engine that knows the output is an 8-bit image (``run_tiled`` already takes ``bit_depth``).
    """
    if stage.op != "avgpool" or x.dtype != np.uint8 or x.ndim != 4:
        return None
    if stage.divisor_override is not None and stage.divisor_override < stage.kernel_size[0] * stage.kernel_size[1]:
        return None  # averages above 255: auto would stretch them
    return _k().avg_pool2d_quantized(
        x, stage.kernel_size, stage.stride, stage.padding, stage.ceil_mode, stage.count_include_pad,
        stage.divisor_override,
    )


def missing_kernels(stages: Iterable[Any]) -> list[str]:
    """The ops in ``stages`` that the numpy engine cannot run (empty: it can run them all)."""
    try:
        import importlib.util

        available = importlib.util.find_spec("poolcli.kernels_numpy") is not None
    except ImportError:
        available = False
    return [stage.op for stage in stages if not available or stage.op not in KERNELS]


def apply(stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
    return KERNELS[stage.op](stage, x, run)
