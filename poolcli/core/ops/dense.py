"""Fully connected stages for shape traces such as LeNet: ``nn.Flatten`` and ``nn.Linear``.

LeNet's classifier on its 16×5×5 features::

    >>> from poolcli.core.ops.base import PlanContext
    >>> Flatten().infer((1, 16, 5, 5), PlanContext()).formula
    {'features': '16·5·5 = 400'}
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import PlanError, SpecError
from .. import arithmetic as ar
from ..values import to_bool, to_int, to_optional
from .base import Inference, PlanContext, Shape, Stage, count


@dataclass(frozen=True)
class Flatten(Stage):
    """N×C×H×W → N×(C·H·W), as LeNet's ``Flatten`` before its linear layers."""

    start_dim: int = 1
    end_dim: int = -1

    op: ClassVar[str] = "flatten"
    walkthrough: ClassVar[str | None] = "flatten"
    torch_names: ClassVar[tuple[str, ...]] = ("Flatten",)
    args: ClassVar[tuple[str, ...]] = ("start_dim", "end_dim")
    converters: ClassVar[dict] = {"start_dim": to_int(), "end_dim": to_int()}
    dtype_policy: ClassVar[str] = "native"
    keeps_range: ClassVar[bool] = True

    def validate(self) -> None:
        if (self.start_dim, self.end_dim) != (1, -1):
            raise SpecError("flatten: only start_dim=1, end_dim=-1 is supported", "N×C×H×W → N×(C·H·W)")

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        features = count(shape[1:])
        text = "·".join(str(d) for d in shape[1:])
        return Inference((shape[0], features), {"features": f"{text} = {features}"}, None, 0, 0)


@dataclass(frozen=True)
class Linear(Stage):
    """y = x·Wᵀ + b on flattened features (``nn.Linear``), random weights from ``--seed``."""

    out_features: int
    in_features: int | None = None
    bias: bool = True
    seed: int | None = None

    op: ClassVar[str] = "linear"
    walkthrough: ClassVar[str | None] = "linear"
    torch_names: ClassVar[tuple[str, ...]] = ("Linear",)
    args: ClassVar[tuple[str, ...]] = ("in_features", "out_features", "bias")
    compact_args: ClassVar[tuple[str, ...]] = ("out_features", "seed")
    label_first: ClassVar[tuple[str, ...]] = ("in_features",)
    converters: ClassVar[dict] = {
        "out_features": to_int(1),
        "in_features": to_optional(to_int(1)),
        "bias": to_bool,
        "seed": to_optional(to_int(0)),
    }
    dtype_policy: ClassVar[str] = "unit"

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        if len(shape) != 2:
            raise PlanError(
                f"{self.label()} needs flattened features (N×F), got {ar.format_shape(shape)}",
                "put a flatten stage before it",
            )
        n, features = shape
        if self.in_features is not None and self.in_features != features:
            raise PlanError(
                f"{self.label()} expects {self.in_features} input features, got {features}",
                f"use in_features={features} or change the stages before it",
            )
        params = features * self.out_features + (self.out_features if self.bias else 0)
        formula = {"features": f"out_features = {self.out_features}"}
        return Inference((n, self.out_features), formula, None, params, n * features * self.out_features)
