"""Sliding-window pools: max, min, avg, lp and median (``nn.MaxPool2d`` and friends).

d2l's ``nn.MaxPool2d(3, padding=1, stride=2)`` on a 4×4 input::

    >>> from poolcli.core.ops.base import PlanContext
    >>> MaxPool.create({"kernel_size": 3, "padding": 1, "stride": 2}).infer((1, 1, 4, 4), PlanContext()).formula["H"]
    '⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ...errors import SpecError
from .. import arithmetic as ar
from ..values import to_bool, to_default, to_float, to_int, to_optional, to_pair
from .base import AxisWindow, Inference, PlanContext, Shape, Stage, check_positive, compact, count, require_spatial

PAIR1 = to_pair(1)
PAIR0 = to_pair(0)


def check_pool_padding(stage: Stage, kernel: tuple[int, int], padding: tuple[int, int]) -> None:
    """Torch: 'pad should be smaller than or equal to half of kernel size' (k // 2, undilated)."""
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise SpecError(
            f"{stage.op}: padding={compact(padding)} is more than half of kernel_size={compact(kernel)}",
            "torch requires padding ≤ kernel_size // 2",
        )


class WindowPool(Stage):
    """A window of kernel_size moved by stride over the (padded) plane, one output per position.

    Subclasses have ``kernel_size``, ``stride`` and ``ceil_mode`` fields, and where torch has
    them ``padding`` and ``dilation``; a missing stride is the kernel size, as in torch.
    """

    def __post_init__(self) -> None:
        if self.stride is None:  # type: ignore[attr-defined]
            object.__setattr__(self, "stride", self.kernel_size)  # type: ignore[attr-defined]

    @property
    def pads(self) -> tuple[int, int]:
        return getattr(self, "padding", (0, 0))

    @property
    def dilations(self) -> tuple[int, int]:
        return getattr(self, "dilation", (1, 1))

    def spans(self) -> tuple[int, int]:
        """Each axis's effective kernel d·(k−1)+1: the pixels one window spans."""
        k, d = self.kernel_size, self.dilations  # type: ignore[attr-defined]
        return ar.effective_kernel(k[0], d[0]), ar.effective_kernel(k[1], d[1])

    def sizes(self, h: int, w: int) -> tuple[ar.SizeResult, ar.SizeResult]:
        k, s, p, d, ceil = self.kernel_size, self.stride, self.pads, self.dilations, self.ceil_mode  # type: ignore[attr-defined]
        return (ar.pool_output_size(h, k[0], s[0], p[0], d[0], ceil), ar.pool_output_size(w, k[1], s[1], p[1], d[1], ceil))

    def output_shape(self, shape: Shape) -> Shape:
        n, c, h, w = require_spatial(self, shape)
        rh, rw = self.sizes(h, w)
        return (n, c, rh.size, rw.size)

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        rh, rw = self.sizes(h, w)
        check_positive(self, "H", h, rh)
        check_positive(self, "W", w, rw)
        notes = tuple(
            f"ceil_mode: {axis} window {r.naive_size} dropped (starts in the padding)"
            for axis, r in (("H", rh), ("W", rw)) if r.naive_size is not None
        )
        out = (n, c, rh.size, rw.size)
        span_h, span_w = self.spans()
        kh, kw = self.kernel_size  # type: ignore[attr-defined]
        steps = ((span_h, self.stride[0]), (span_w, self.stride[1]))  # type: ignore[attr-defined]
        return Inference(out, {"H": rh.formula, "W": rw.formula}, steps, 0, count(out) * kh * kw, notes)

    def windows(self) -> tuple[AxisWindow, AxisWindow]:
        spans, pads = self.spans(), self.pads
        return tuple(AxisWindow(spans[i], self.stride[i], pads[i], pads[i]) for i in (0, 1))  # type: ignore[return-value,attr-defined]


@dataclass(frozen=True)
class MaxPool(WindowPool):
    """The maximum of each window (``nn.MaxPool2d``); d2l's 2x2 max on 0..8 gives [[4, 5], [7, 8]]."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    op: ClassVar[str] = "maxpool"
    walkthrough: ClassVar[str | None] = "window"
    reduction: ClassVar[str | None] = "max"
    torch_names: ClassVar[tuple[str, ...]] = ("MaxPool2d",)
    args: ClassVar[tuple[str, ...]] = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
    converters: ClassVar[dict] = {
        "kernel_size": PAIR1,
        "stride": to_default(PAIR1),
        "padding": PAIR0,
        "dilation": PAIR1,
        "ceil_mode": to_bool,
    }
    ignored: ClassVar[tuple[str, ...]] = ("return_indices",)
    dtype_policy: ClassVar[str] = "native"
    keeps_range: ClassVar[bool] = True

    def validate(self) -> None:
        check_pool_padding(self, self.kernel_size, self.padding)

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        result = super().infer(shape, ctx)
        ctx.pool_stack.append((ctx.index, self, shape))
        return result


@dataclass(frozen=True)
class MinPool(MaxPool):
    """The minimum of each window (erosion), kept in the image's integer dtype."""

    op: ClassVar[str] = "minpool"
    reduction: ClassVar[str | None] = "min"
    torch_names: ClassVar[tuple[str, ...]] = ()

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        return WindowPool.infer(self, shape, ctx)


@dataclass(frozen=True)
class AvgPool(WindowPool):
    """The mean of each window (``nn.AvgPool2d``); d2l's 2x2 mean on 0..8 gives [[2, 3], [5, 6]]."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    op: ClassVar[str] = "avgpool"
    walkthrough: ClassVar[str | None] = "window"
    reduction: ClassVar[str | None] = "avg"
    torch_names: ClassVar[tuple[str, ...]] = ("AvgPool2d",)
    args: ClassVar[tuple[str, ...]] = (
        "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override",
    )
    converters: ClassVar[dict] = {
        "kernel_size": PAIR1,
        "stride": to_default(PAIR1),
        "padding": PAIR0,
        "ceil_mode": to_bool,
        "count_include_pad": to_bool,
        "divisor_override": to_optional(to_int()),
    }
    averaging: ClassVar[bool] = True

    @property
    def keeps_range(self) -> bool:  # type: ignore[override]
        """A mean stays in its values' range; a sum divided by less than the window may not."""
        window = self.kernel_size[0] * self.kernel_size[1]
        return self.divisor_override is None or self.divisor_override >= window

    def validate(self) -> None:
        check_pool_padding(self, self.kernel_size, self.padding)
        if self.divisor_override is not None and self.divisor_override == 0:
            raise SpecError(f"{self.op}: divisor_override=0", "torch: divisor must be not zero")


@dataclass(frozen=True)
class LPPool(WindowPool):
    """The p-norm of each window (``nn.LPPool2d``): p=1 sums, p→∞ approaches max."""

    norm_type: float
    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    ceil_mode: bool = False

    op: ClassVar[str] = "lppool"
    walkthrough: ClassVar[str | None] = "window"
    reduction: ClassVar[str | None] = "lp"
    torch_names: ClassVar[tuple[str, ...]] = ("LPPool2d",)
    args: ClassVar[tuple[str, ...]] = ("norm_type", "kernel_size", "stride", "ceil_mode")
    converters: ClassVar[dict] = {
        "norm_type": to_float,
        "kernel_size": PAIR1,
        "stride": to_default(PAIR1),
        "ceil_mode": to_bool,
    }
    torch_converters: ClassVar[dict] = {"kernel_size": to_pair(1, single=False)}  # LPPool2d unpacks two values
    averaging: ClassVar[bool] = True
    # Σ x^p overflows float32 on raw values (255^16, 65535^8): work on [0, 1] values.
    dtype_policy: ClassVar[str] = "unit"

    @classmethod
    def missing_hint(cls, name: str) -> str:
        return "for example lppool:2,k=3"

    def validate(self) -> None:
        if self.norm_type == 0:
            raise SpecError(f"{self.op}: norm_type=0", "torch takes the 1/norm_type-th root: use a p other than 0 (2 is the Euclidean norm)")


@dataclass(frozen=True)
class MedianPool(WindowPool):
    """The median of each window's real pixels; the lower middle value for even counts (torch.median)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    op: ClassVar[str] = "medianpool"
    walkthrough: ClassVar[str | None] = "window"
    reduction: ClassVar[str | None] = "median"
    args: ClassVar[tuple[str, ...]] = ("kernel_size", "stride", "dilation", "ceil_mode")
    converters: ClassVar[dict] = {
        "kernel_size": PAIR1,
        "stride": to_default(PAIR1),
        "dilation": PAIR1,
        "ceil_mode": to_bool,
    }
    dtype_policy: ClassVar[str] = "native"
    keeps_range: ClassVar[bool] = True

    def scratch_elements(self, input_shape: Shape, output_shape: Shape) -> int:
        """The kernels stack k_h·k_w values per output."""
        kh, kw = self.kernel_size
        return count(input_shape) + count(output_shape) * (kh * kw + 1)

