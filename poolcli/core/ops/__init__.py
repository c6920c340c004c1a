"""One class per op: its parameters, torch's validation, shape and formula, tiling windows and cost.

``OPS`` is the registry the spec parser, ``poolcli shape`` and the engines read; adding an op is
one class here (in the module of its kind) plus one kernel per engine in ``poolcli.kernels``.

    >>> create_stage("maxpool", {"kernel_size": (2, 3), "stride": (2, 3), "padding": (0, 1)}).label()
    'maxpool:k=2x3,p=0x1'
"""

from __future__ import annotations

from typing import Any

from ...errors import SpecError
from .adaptive import AdaptiveAvgPool, AdaptiveMaxPool, FractionalMaxPool, GlobalAvgPool, GlobalMaxPool
from .base import POINTWISE, AxisWindow, Inference, PlanContext, Shape, Stage
from .conv import Conv
from .conv_transpose import ConvTranspose
from .dense import Flatten, Linear
from .pad import Pad
from .pointwise import Grayscale, LeakyReLU, ReLU, Sigmoid, Tanh
from .pools import AvgPool, LPPool, MaxPool, MedianPool, MinPool
from .unpool import MaxUnpool
from .upsample import Upsample

OPS: tuple[type[Stage], ...] = (
    MaxPool, AvgPool, MinPool, LPPool, MedianPool, AdaptiveMaxPool, AdaptiveAvgPool,
    GlobalMaxPool, GlobalAvgPool, FractionalMaxPool, MaxUnpool, Pad, Conv, ConvTranspose, Upsample,
    ReLU, Sigmoid, Tanh, LeakyReLU, Grayscale, Flatten, Linear,
)

__all__ = [cls.__name__ for cls in OPS] + [
    "OPS", "POINTWISE", "AxisWindow", "Inference", "PlanContext", "Shape", "Stage", "create_stage", "known_ops",
    "op_class", "torch_classes",
]


def op_class(op: str) -> type[Stage]:
    """The class for an op name, or a SpecError that lists the known ones."""
    for cls in OPS:
        if cls.op == op:
            return cls
    raise SpecError(f"unknown op {op!r}", f"known ops: {', '.join(known_ops())}")


def known_ops() -> list[str]:
    return [cls.op for cls in OPS]


def torch_classes() -> dict[str, type[Stage]]:
    """``nn`` class name → op class: ``{"MaxPool2d": MaxPool, ...}``."""
    return {name: cls for cls in OPS for name in cls.torch_names}


def create_stage(op: str, values: dict[str, Any]) -> Stage:
    """The stage ``op`` from loose parameter values (already keyword-named)."""
    return op_class(op).create(values)
