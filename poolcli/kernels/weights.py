"""The weights of conv and linear stages as float32 arrays, for every engine and for ``explain``.

A named filter or inline matrix is broadcast to torch's (O, I/groups, kh, kw) layout; ``nn.Conv2d``
and ``nn.Linear`` draw torch's default initialisation range U(−1/√fan_in, 1/√fan_in) from numpy's
generator seeded by ``Stage.seed_for``, so both engines and the walkthrough use the same numbers.

    >>> from poolcli.core.spec import parse_stage
    >>> weight, bias, groups = conv_weights(parse_stage("conv:weight=0 1; 2 3"), 3, 0)
    >>> weight.shape, bias, groups
    ((3, 1, 2, 2), None, 3)
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np


def random_uniform_weights(seed: int, shape: tuple[int, ...], fan_in: int, with_bias: bool, outputs: int | None = None):
    """torch's default init range U(−1/√fan_in, 1/√fan_in), drawn from numpy for any engine;
    ``outputs`` biases (default: shape[0])."""
    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(fan_in)
    weight = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    bias = rng.uniform(-bound, bound, size=outputs or shape[0]).astype(np.float32) if with_bias else None
    return weight, bias


def conv_weights(stage: Any, channels: int, seed: int) -> tuple[np.ndarray, np.ndarray | None, int]:
    """(weight, bias or None, groups) of a conv stage on ``channels`` input channels: the weight in
    torch's layout, O×I/groups×kh×kw for conv and I×O/groups×kh×kw for convtranspose (whose
    default init's fan_in, its dim 1 times the kernel, is the same expression)."""
    shape, groups = stage.weight_shape(channels)
    if stage.kernel is None:
        fan_in = shape[1] * shape[2] * shape[3]
        outputs = shape[1] * groups if stage.op == "convtranspose" else shape[0]
        weight, bias = random_uniform_weights(seed, shape, fan_in, stage.bias is True, outputs)
        if not isinstance(stage.bias, bool) and stage.bias != 0:  # a given constant bias
            bias = np.full(outputs, float(stage.bias), dtype=np.float32)
        return weight, bias, groups
    kernel = np.asarray(stage.kernel, dtype=np.float32)
    if kernel.ndim == 2:
        weight = np.broadcast_to(kernel, shape)
    elif kernel.ndim == 3:  # a transposed conv's layout is I × O/groups: one kernel per input channel either way
        weight = kernel[:, None] if stage.channels == "depthwise" or stage.op == "convtranspose" else kernel[None]
    else:
        weight = kernel
    outputs = shape[1] * groups if stage.op == "convtranspose" else shape[0]
    bias = np.full(outputs, float(stage.bias), dtype=np.float32) if stage.has_bias else None
    return np.array(weight, dtype=np.float32, order="C"), bias, groups  # a writable copy for torch


def linear_weights(stage: Any, features: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """(weight out×in, bias or None) of ``nn.Linear`` on ``features`` inputs."""
    return random_uniform_weights(seed, (stage.out_features, features), features, stage.bias)
