"""Element-wise stages: activations (``nn.ReLU``, ``Sigmoid``, ``Tanh``, ``LeakyReLU``) and
grayscale (C → 1). Shape, receptive field and jump unchanged; each output pixel is its own input
pixel, so they tile with a window of one.

    >>> from poolcli.core.ops.base import PlanContext
    >>> ReLU().infer((1, 3, 4, 4), PlanContext()).formula["H"]
    'unchanged = 4'
"""

from __future__ import annotations

import math
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
    """An element-wise function: any shape (N×F after flatten too), one op per element.

    ``element(x)`` is the function on one number, as torch computes it (nan stays nan), and
    ``definition(x)`` how explain writes it out, a template with the fields {x}, {x_operand}
    (negatives in parentheses), {minus_x} (−x as an operand) and {slope}::

        >>> Sigmoid().element(0.0), Sigmoid().definition(0.0)
        (0.5, 'sigmoid({x}) = 1/(1 + e^{minus_x})')
    """

    dtype_policy: ClassVar[str] = "unit"
    ignored: ClassVar[tuple[str, ...]] = ("inplace",)
    walkthrough: ClassVar[str | None] = "elementwise"

    def element(self, x: float) -> float:
        raise NotImplementedError

    def definition(self, x: float) -> str:
        return self.op + "({x})"

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

    def element(self, x: float) -> float:
        return x if x > 0 or math.isnan(x) else 0.0

    def definition(self, x: float) -> str:
        return "relu({x}) = max(0, {x})"


@dataclass(frozen=True)
class Sigmoid(Activation):
    """1 / (1 + e^−x) element-wise (``nn.Sigmoid``): LeNet's activation."""

    op: ClassVar[str] = "sigmoid"
    torch_names: ClassVar[tuple[str, ...]] = ("Sigmoid",)

    def element(self, x: float) -> float:
        if math.isnan(x):
            return x
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        z = math.exp(x)
        return z / (1.0 + z)

    def definition(self, x: float) -> str:
        return "sigmoid({x}) = 1/(1 + e^{minus_x})"


@dataclass(frozen=True)
class Tanh(Activation):
    """tanh(x) element-wise (``nn.Tanh``)."""

    op: ClassVar[str] = "tanh"
    torch_names: ClassVar[tuple[str, ...]] = ("Tanh",)

    def element(self, x: float) -> float:
        return math.tanh(x)


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """x for x ≥ 0, negative_slope·x below (``nn.LeakyReLU``, slope 0.01): ``leakyrelu:0.2``."""

    negative_slope: float = 0.01

    op: ClassVar[str] = "leakyrelu"
    torch_names: ClassVar[tuple[str, ...]] = ("LeakyReLU",)
    args: ClassVar[tuple[str, ...]] = ("negative_slope", "inplace")
    converters: ClassVar[dict] = {"negative_slope": to_float}

    def element(self, x: float) -> float:
        return x if x >= 0 or math.isnan(x) else self.negative_slope * x

    def definition(self, x: float) -> str:
        return "leakyrelu({x})" + (" = {slope}·{x_operand}" if x < 0 else "")


@dataclass(frozen=True)
class Grayscale(Pointwise):
    """C → 1 by ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B, exactly as Pillow's mode L
    (its fixed point for 8- and 16-bit pixels, so the result stays in the image's integers);
    L and LA keep their first channel.

    The constants here are the one luma: the numpy and torch kernels and explain's textbook
    loop all read them. ``pixel`` is one pixel, the definition the kernels vectorise::

        >>> Grayscale.pixel(255, 0, 0, integer=True), Grayscale.pixel(0.0, 2.0, 4.0)
        (76, 1.63)
    """

    op: ClassVar[str] = "grayscale"
    dtype_policy: ClassVar[str] = "native"
    walkthrough: ClassVar[str | None] = "luma"
    weights: ClassVar[tuple[float, float, float]] = (0.299, 0.587, 0.114)  # ITU-R 601-2
    fixed_point_weights: ClassVar[tuple[int, int, int]] = (19595, 38470, 7471)  # weights·2¹⁶, Pillow's RGB2L
    fixed_point_shift: ClassVar[int] = 16

    @classmethod
    def pixel(cls, r: float, g: float, b: float, integer: bool = False) -> float:
        """The luma of one RGB pixel: Pillow's fixed point ``(R·19595 + G·38470 + B·7471 + 2¹⁵) >> 16``
        for integer pixels, the weights themselves for floats."""
        if integer:
            wr, wg, wb = cls.fixed_point_weights
            total = int(r) * wr + int(g) * wg + int(b) * wb + (1 << (cls.fixed_point_shift - 1))
            return total >> cls.fixed_point_shift
        wr, wg, wb = cls.weights
        return wr * r + wg * g + wb * b

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        if c not in (1, 2, 3, 4):
            raise PlanError(f"grayscale needs 1 to 4 channels (L, LA, RGB, RGBA), got C={c}", "")
        formula = {"H": f"unchanged = {h}", "W": f"unchanged = {w}"}
        return Inference((n, 1, h, w), formula, ((1, 1), (1, 1)), 0, n * h * w * min(c, 3))
