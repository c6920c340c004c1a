"""Element-wise stages: activations (``nn.ReLU``, ``Sigmoid``, ``Tanh``, ``LeakyReLU``) and
grayscale (C → 1). Shape, receptive field and jump unchanged; each output pixel is its own input
pixel, so they tile with a window of one.

    >>> from poolcli.core.ops.base import PlanContext
    >>> ReLU().infer((1, 3, 4, 4), PlanContext()).formula["H"]
    'unchanged = 4'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import PlanError
from ..values import to_float
from .base import POINTWISE, AxisWindow, Inference, PlanContext, Shape, Stage, count, require_spatial


class Pointwise(Stage):
    """Each output element from its own input element."""

    keeps_range: ClassVar[bool] = True  # relu, sigmoid, tanh, leakyrelu and luma map [0, 1] into [0, 1]

    def windows(self) -> tuple[AxisWindow, AxisWindow]:
        return POINTWISE, POINTWISE


class Activation(Pointwise):
    """An element-wise function: any shape (N×F after flatten too), one op per element."""

    dtype_policy: ClassVar[str] = "unit"
    ignored: ClassVar[tuple[str, ...]] = ("inplace",)

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        formula = None
        if len(shape) == 4:
            formula = {"H": f"unchanged = {shape[2]}", "W": f"unchanged = {shape[3]}"}
        return Inference(tuple(shape), formula, None, 0, count(shape))


@dataclass(frozen=True)
class ReLU(Activation):
    """max(0, x) element-wise (``nn.ReLU``)."""

    op: ClassVar[str] = "relu"
    torch_names: ClassVar[tuple[str, ...]] = ("ReLU",)
    args: ClassVar[tuple[str, ...]] = ("inplace",)


@dataclass(frozen=True)
class Sigmoid(Activation):
    """1 / (1 + e^−x) element-wise (``nn.Sigmoid``): LeNet's activation."""

    op: ClassVar[str] = "sigmoid"
    torch_names: ClassVar[tuple[str, ...]] = ("Sigmoid",)


@dataclass(frozen=True)
class Tanh(Activation):
    """tanh(x) element-wise (``nn.Tanh``)."""

    op: ClassVar[str] = "tanh"
    torch_names: ClassVar[tuple[str, ...]] = ("Tanh",)


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """x for x ≥ 0, negative_slope·x below (``nn.LeakyReLU``, slope 0.01): ``leakyrelu:0.2``."""

    negative_slope: float = 0.01

    op: ClassVar[str] = "leakyrelu"
    torch_names: ClassVar[tuple[str, ...]] = ("LeakyReLU",)
    args: ClassVar[tuple[str, ...]] = ("negative_slope", "inplace")
    converters: ClassVar[dict] = {"negative_slope": to_float}


@dataclass(frozen=True)
class Grayscale(Pointwise):
    """C → 1 by ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B, exactly as Pillow's mode L
    (its fixed point for 8- and 16-bit pixels, so the result stays in the image's integers);
    L and LA keep their first channel."""

    op: ClassVar[str] = "grayscale"
    dtype_policy: ClassVar[str] = "native"

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        if c not in (1, 2, 3, 4):
            raise PlanError(f"grayscale needs 1 to 4 channels (L, LA, RGB, RGBA), got C={c}", "")
        formula = {"H": f"unchanged = {h}", "W": f"unchanged = {w}"}
        return Inference((n, 1, h, w), formula, ((1, 1), (1, 1)), 0, n * h * w * min(c, 3))
