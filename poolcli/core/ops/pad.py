"""Explicit padding (``nn.ZeroPad2d``, ``ReflectionPad2d``, ``ReplicationPad2d``, ``CircularPad2d``).

    >>> from poolcli.core.ops.base import PlanContext
    >>> Pad.create({"padding": (1, 2, 0, 0)}).infer((1, 1, 3, 3), PlanContext()).formula["W"]
    '3 + 1 + 2 = 6'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from ...errors import PlanError, SpecError
from .. import arithmetic as ar
from ..values import to_choice, to_float, to_padding4, to_torch_padding4, to_torch_padding4_whole
from .base import AxisWindow, Inference, PlanContext, Shape, Stage, compact, count, require_spatial

PAD_MODES = ("constant", "reflect", "replicate", "circular")


def check_padding_fits(label: str, mode: str, h: int, w: int, lrtb: tuple[int, int, int, int]) -> None:
    """torch's limits on padding that copies the input: reflect needs fewer pixels of padding than
    the input has, circular can wrap at most once."""
    left, right, top, bottom = lrtb
    amounts = f"({top},{bottom} × {left},{right})"
    if mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
        raise PlanError(f"{label} on {h}×{w}: reflect padding {amounts} must be smaller than the input",
                        "use replicate padding, or less padding")
    if mode == "circular" and (max(top, bottom) > h or max(left, right) > w):
        raise PlanError(f"{label} on {h}×{w}: circular padding {amounts} can wrap at most once",
                        "use less padding than the input size")


def padding_windows(mode: str, lrtb: tuple[int, int, int, int], span: tuple[int, int] = (1, 1),
                    stride: tuple[int, int] = (1, 1)) -> tuple[AxisWindow, AxisWindow] | None:
    """The tile windows of a stage that pads (and then slides ``span`` by ``stride``): reflect
    reads p + 1 real pixels at an edge. None for circular padding, which wraps the far edge
    around, so that no tile can be computed from its neighbourhood alone."""
    if mode == "circular":
        return None
    left, right, top, bottom = lrtb
    reflect = mode == "reflect"
    return (
        AxisWindow(span[0], stride[0], top, bottom, max(top, bottom) + 1 if reflect else 1),
        AxisWindow(span[1], stride[1], left, right, max(left, right) + 1 if reflect else 1),
    )


@dataclass(frozen=True)
class Pad(Stage):
    """Explicit padding, (left, right, top, bottom) as ``nn.ZeroPad2d``; modes as ``F.pad``."""

    padding: tuple[int, int, int, int]
    mode: str = "constant"
    value: float = 0.0

    op: ClassVar[str] = "pad"
    walkthrough: ClassVar[str | None] = "pad"
    torch_names: ClassVar[tuple[str, ...]] = (
        "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d",
    )
    args: ClassVar[tuple[str, ...]] = ("padding", "value")
    converters: ClassVar[dict] = {"padding": to_padding4, "mode": to_choice(*PAD_MODES), "value": to_float}
    torch_converters: ClassVar[dict] = {"padding": to_torch_padding4}  # nn.ZeroPad2d((1, 2)): left, right
    torch_args: ClassVar[dict[str, tuple[str, ...]]] = {
        "ZeroPad2d": ("padding",), "ReflectionPad2d": ("padding",), "ReplicationPad2d": ("padding",),
        "CircularPad2d": ("padding",),
    }
    torch_presets: ClassVar[dict[str, dict[str, Any]]] = {
        "ReflectionPad2d": {"mode": "reflect"},
        "ReplicationPad2d": {"mode": "replicate"},
        "CircularPad2d": {"mode": "circular"},
    }
    dtype_policy: ClassVar[str] = "native"

    @property
    def keeps_range(self) -> bool:  # type: ignore[override]
        """Copies of the input, or a constant in [0, 1]."""
        return self.mode != "constant" or 0.0 <= self.value <= 1.0

    @classmethod
    def create(cls, values: dict[str, Any], *, torch_name: str | None = None) -> "Pad":
        if torch_name == "ConstantPad2d" and "value" not in values:
            raise SpecError("pad: nn.ConstantPad2d needs value", "torch requires it: nn.ConstantPad2d(padding, value)")
        return super().create(values, torch_name=torch_name)  # type: ignore[return-value]

    @classmethod
    def converters_for(cls, torch_name: str | None) -> dict[str, Any]:
        if torch_name in ("ReflectionPad2d", "ReplicationPad2d", "CircularPad2d"):
            return {**cls.converters, "padding": to_torch_padding4_whole}
        return super().converters_for(torch_name)

    def validate(self) -> None:
        if min(self.padding) < 0:
            raise SpecError(f"{self.op}: padding={compact(self.padding)} is negative", "use amounts ≥ 0")

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        left, right, top, bottom = self.padding
        check_padding_fits(self.label(), self.mode, h, w, self.padding)
        rh, rw = ar.pad_output_size(h, top, bottom), ar.pad_output_size(w, left, right)
        out = (n, c, rh.size, rw.size)
        return Inference(out, {"H": rh.formula, "W": rw.formula}, ((1, 1), (1, 1)), 0, count(out))

    def windows(self) -> tuple[AxisWindow, AxisWindow] | str:
        return padding_windows(self.mode, self.padding) or "pad with mode=circular wraps the far edge around"
