"""Max unpooling: each value back where its maxpool found it, zeros elsewhere (``nn.MaxUnpool2d``).

    >>> from poolcli.core.plan import Pipeline
    >>> from poolcli.core.spec import parse_stage
    >>> plan = Pipeline([parse_stage("maxpool:2"), parse_stage("maxunpool")]).plan((1, 1, 5, 5))
    >>> plan.output_shape, plan.stages[1].formula["H"]
    ((1, 1, 5, 5), "stage 0 maxpool's input H = 5")
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from ...errors import PlanError, PoolcliError
from .. import arithmetic as ar
from ..values import to_optional, to_pair
from .base import Inference, PlanContext, Shape, Stage, count, require_spatial

PAIR1 = to_pair(1)
PAIR0 = to_pair(0)


@dataclass(frozen=True)
class MaxUnpool(Stage):
    """Puts each value back where its paired maxpool found it, zeros elsewhere (``nn.MaxUnpool2d``).

    Pairs with the most recent unpaired maxpool before it; kernel_size, stride and padding
    default to that pool's, and the output size to that pool's input size.
    """

    kernel_size: tuple[int, int] | None = None
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] | None = None
    output_size: tuple[int, int] | None = None

    op: ClassVar[str] = "maxunpool"
    walkthrough: ClassVar[str | None] = "unpool"
    torch_names: ClassVar[tuple[str, ...]] = ("MaxUnpool2d",)
    args: ClassVar[tuple[str, ...]] = ("kernel_size", "stride", "padding")
    converters: ClassVar[dict] = {
        "kernel_size": to_optional(PAIR1),
        "stride": to_optional(PAIR1),
        "padding": to_optional(PAIR0),
        "output_size": to_optional(PAIR1),
    }
    dtype_policy: ClassVar[str] = "native"
    keeps_range: ClassVar[bool] = True  # the pooled values, and zeros
    label_defaults: ClassVar[dict[str, Any]] = {"padding": (0, 0)}

    def __post_init__(self) -> None:
        # nn.MaxUnpool2d(k): stride = k and padding = 0, as in torch; a bare maxunpool (no
        # kernel_size) takes all three from the maxpool it pairs with.
        if self.kernel_size is not None:
            if self.stride is None:
                object.__setattr__(self, "stride", self.kernel_size)
            if self.padding is None:
                object.__setattr__(self, "padding", (0, 0))

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        if not ctx.pool_stack:
            raise PlanError(
                f"stage {ctx.index} maxunpool has no maxpool before it to pair with",
                "put a maxpool earlier in the pipeline (maxunpool needs its indices)",
            )
        pool_index, pool, pool_input = ctx.pool_stack.pop()
        pooled = pool.output_shape(pool_input)
        if tuple(shape) != tuple(pooled):
            raise PlanError(
                f"stage {ctx.index} maxunpool gets {ar.format_shape(shape)} but its maxpool (stage "
                f"{pool_index}) produced {ar.format_shape(pooled)}",
                "maxunpool needs the pooled shape back: keep the stages between them shape-preserving",
            )
        kernel = self.kernel_size or pool.spans()  # a dilated maxpool is undone with its effective kernel
        stride = self.stride or pool.stride
        padding = self.padding if self.padding is not None else pool.padding
        formulas, sizes = {}, []
        for axis, i, n_in in (("H", 0, h), ("W", 1, w)):
            default = ar.unpool_output_size(n_in, kernel[i], stride[i], padding[i])
            if self.output_size is not None:
                size = self.output_size[i]
                low, high = ar.unpool_bounds(default.size, stride[i])
                if not low < size < high:
                    raise PlanError(
                        f"{self.label()}: output_size {axis}={size} is outside torch's bounds "
                        f"{low} < {axis} < {high} (default {default.formula})",
                        f"use an output_size between {low + 1} and {high - 1}",
                    )
                formulas[axis] = f"output_size = {size}"
            else:
                size = pool_input[2 + i]
                formulas[axis] = f"stage {pool_index} maxpool's input {axis} = {size}"
            sizes.append(size)
        steps = ((1, Fraction(1, stride[0])), (1, Fraction(1, stride[1])))
        return Inference((n, c, sizes[0], sizes[1]), formulas, steps, 0, count(shape), pairs_with=pool_index)

    def index_error(self, index: int, size: tuple[int, int]) -> PoolcliError:
        """What every engine says when a maxpool index does not fit the output plane (an explicit
        ``output_size`` smaller than the pool's input, where that pool's maximum lay outside it)."""
        return PoolcliError(
            f"{self.label()}: a maxpool index ({index}) lies outside the {size[0]}×{size[1]} output",
            "leave output_size out: it defaults to the paired maxpool's input size",
        )
