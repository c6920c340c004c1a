"""Upsampling (``nn.Upsample``, ``nn.UpsamplingNearest2d``, ``nn.UpsamplingBilinear2d``): exactly
``F.interpolate`` in modes nearest, bilinear and bicubic.

H_out = ⌊H_in · scale⌋, or the given size::

    >>> from poolcli.core.ops.base import PlanContext
    >>> Upsample.create({"scale_factor": 2, "mode": "bilinear"}).infer((1, 3, 28, 28), PlanContext()).formula["H"]
    '⌊28·2⌋ = 56'

Which input cells an output reads follows torch's source index: nearest ⌊o · scale⌋ (scale = 1 /
scale_factor, or in/out), the linear modes (o + ½)·scale − ½ (o·(in − 1)/(out − 1) with
align_corners), bilinear reading the two cells around it, bicubic four.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from ...errors import PlanError, SpecError
from .. import arithmetic as ar
from ..values import parse_text, to_choice, to_optional, to_strict_bool, to_bool
from .base import AxisWindow, Inference, PlanContext, Shape, Stage, compact, count, require_spatial

MODES = ("nearest", "bilinear", "bicubic")
TORCH_MODES = ("nearest", "linear", "bilinear", "bicubic", "trilinear", "area", "nearest-exact")
TAPS = {"nearest": 1, "bilinear": 2, "bicubic": 4}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _size(value: Any) -> tuple[int, int]:
    value = parse_text(value)
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value, value)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return value  # type: ignore[return-value]
    raise ValueError("an integer or a pair like 56x56")


def _scale(value: Any) -> tuple[float, float]:
    if isinstance(value, str) and value.count("x") == 1:  # 2x1.5, as the label writes a pair
        value = tuple(parse_text(part) for part in value.split("x"))
    value = parse_text(value)
    if isinstance(value, list):
        value = tuple(value)
    if _is_number(value):
        return (float(value), float(value))
    if isinstance(value, tuple) and len(value) == 2 and all(_is_number(v) for v in value):
        return (float(value[0]), float(value[1]))
    raise ValueError("a number or a pair like 2x2 or (2.0, 1.5)")


def _mode(value: Any) -> str:
    mode = to_choice(*TORCH_MODES)(value)
    if mode not in MODES:
        raise ValueError(f"{' or '.join(MODES)} (torch's {mode!r} is not one poolcli computes)")
    return mode


def power_of_two(scale: Fraction) -> int | None:
    """The factor f when ``scale`` (input steps per output step) is 1/f for f a power of two:
    the scales whose float arithmetic is exact, so that a tile computes what the whole image does.

    >>> power_of_two(Fraction(1, 4)), power_of_two(Fraction(1, 3)), power_of_two(Fraction(2))
    (4, None, None)
    """
    if scale.numerator != 1 or scale.denominator & (scale.denominator - 1):
        return None
    return scale.denominator


@dataclass(frozen=True)
class Upsample(Stage):
    """``F.interpolate`` with ``scale_factor`` (K or HxW) or ``size`` (HxW), mode nearest, bilinear
    or bicubic; nearest keeps integers, bicubic overshoot goes through ``--normalize``."""

    size: tuple[int, int] | None = None
    scale_factor: tuple[float, float] | None = None
    mode: str = "nearest"
    align_corners: bool | None = None
    recompute_scale_factor: bool | None = None

    op: ClassVar[str] = "upsample"
    torch_names: ClassVar[tuple[str, ...]] = ("Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d")
    args: ClassVar[tuple[str, ...]] = ("size", "scale_factor", "mode", "align_corners", "recompute_scale_factor")
    compact_args: ClassVar[tuple[str, ...]] = ("scale_factor", "mode")
    torch_presets: ClassVar[dict[str, dict[str, Any]]] = {
        "UpsamplingNearest2d": {"mode": "nearest"},
        "UpsamplingBilinear2d": {"mode": "bilinear", "align_corners": True},
    }
    torch_args: ClassVar[dict[str, tuple[str, ...]]] = {
        "UpsamplingNearest2d": ("size", "scale_factor"), "UpsamplingBilinear2d": ("size", "scale_factor"),
    }
    walkthrough: ClassVar[str | None] = "resample"
    converters: ClassVar[dict] = {
        "size": to_optional(_size),
        "scale_factor": to_optional(_scale),
        "mode": _mode,
        "align_corners": to_optional(to_bool),
        "recompute_scale_factor": to_optional(to_bool),
    }
    torch_converters: ClassVar[dict] = {  # nn.Upsample(scale_factor=0) is "no scale factor" to torch
        "align_corners": to_optional(to_strict_bool),
        "recompute_scale_factor": to_optional(to_strict_bool),
        "scale_factor": lambda v: None if v in (0, 0.0) else to_optional(_scale)(v),
    }

    def label(self) -> str:
        """The compact spec: ``upsample:scale_factor=2,mode=bilinear``; a scale pair as 2x1.5."""
        text = super().label()
        if self.scale_factor is None:
            return text
        h, w = self.scale_factor
        scale = f"{h:g}" if h == w else f"{h:g}x{w:g}"
        return text.replace(f"scale_factor={compact(self.scale_factor)}", f"scale_factor={scale}")

    @classmethod
    def missing_hint(cls, name: str) -> str:
        return "for example upsample:2 or upsample:size=56x56,mode=bilinear"

    def validate(self) -> None:
        """torch's refusals, in torch's words."""
        if (self.size is None) == (self.scale_factor is None):
            what = "only one of size or scale_factor should be defined" if self.size else \
                "either size or scale_factor should be defined"
            raise SpecError(f"{self.op}: {what}", "give scale_factor (upsample:2) or size (upsample:size=56x56)")
        if self.mode == "nearest" and self.align_corners is not None:
            raise SpecError(
                f"{self.op}: align_corners option can only be set with the interpolating modes: "
                "linear | bilinear | bicubic | trilinear",
                "leave align_corners out for mode=nearest",
            )
        if self.size is not None and self.recompute_scale_factor:
            raise SpecError(f"{self.op}: recompute_scale_factor is not meaningful with an explicit size.",
                            "leave recompute_scale_factor out, or give scale_factor instead of size")
        if self.size is not None and min(self.size) < 1:
            raise SpecError(f"{self.op}: size={self.size[0]}x{self.size[1]}: output sizes should be greater than 0",
                            "give sizes ≥ 1")

    @property
    def dtype_policy(self) -> str:  # type: ignore[override]
        return "native" if self.mode == "nearest" else "float"

    @property
    def keeps_range(self) -> bool:  # type: ignore[override]
        """Nearest copies values and bilinear weighs two by weights in [0, 1] that sum to 1; bicubic's
        negative lobes overshoot."""
        return self.mode != "bicubic"

    @property
    def averaging(self) -> bool:  # type: ignore[override]
        return self.mode != "nearest"

    def sizes(self, h: int, w: int) -> tuple[ar.SizeResult, ar.SizeResult]:
        size = self.size or (None, None)
        scale = self.scale_factor or (None, None)
        return (ar.upsample_output_size(h, scale[0], size[0]), ar.upsample_output_size(w, scale[1], size[1]))

    def source_scale(self, axis: int, n_in: int, n_out: int) -> Fraction:
        """Input steps per output step as torch's kernels take it: 1/scale_factor where given (and not
        recomputed), else in/out; (in − 1)/(out − 1) with align_corners."""
        if self.align_corners and self.mode != "nearest":
            return Fraction(n_in - 1, n_out - 1) if n_out > 1 else Fraction(0)
        if self.scale_factor is not None and not self.recompute_scale_factor:
            return Fraction(1 / self.scale_factor[axis])
        return Fraction(n_in, n_out)

    def taps(self, o: int, scale: Fraction) -> tuple[int, int]:
        """The first and last input an output o reads (before clamping to the plane), in exact
        arithmetic: right wherever torch's float arithmetic is exact (scales 1/2ᵏ)."""
        if self.mode == "nearest":
            i = math.floor(o * scale)
            return i, i
        if self.align_corners:
            position = o * scale
        else:
            position = (o + Fraction(1, 2)) * scale - Fraction(1, 2)
            if self.mode == "bilinear" and position < 0:
                position = Fraction(0)
        i = math.floor(position)
        return (i, i + 1) if self.mode == "bilinear" else (i - 1, i + 2)

    def up_window(self, factor: int) -> tuple[int, int]:
        """(before, span) of an integer factor f: output o reads the inputs i with i·f in
        [o − before, o − before + span), from one period of f outputs (away from the left edge).

        >>> Upsample(scale_factor=(2.0, 2.0), mode="bilinear").up_window(2)
        (2, 4)
        """
        scale = Fraction(1, factor)
        outputs = range(4 * factor, 5 * factor)  # a period clear of the clamp at 0
        before = max(o - self.taps(o, scale)[0] * factor for o in outputs)
        end = max(self.taps(o, scale)[1] * factor - o for o in outputs) + 1
        return before, before + end

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        rh, rw = self.sizes(h, w)
        if rh.size < 1 or rw.size < 1:
            raise PlanError(
                f"{self.label()}: Input and output sizes should be greater than 0, but got input "
                f"(H: {h}, W: {w}) output (H: {rh.size}, W: {rw.size}): {rh.formula}; {rw.formula}",
                "use a larger scale_factor or size",
            )
        steps = []
        for axis, n_in, result in ((0, h, rh), (1, w, rw)):
            scale = self.source_scale(axis, n_in, result.size)
            factor = None if self.align_corners else (scale.denominator if scale.numerator == 1 else None)
            if factor is not None:
                steps.append((self.up_window(factor)[1], scale))
            else:  # a ratio that is no 1/f: n outputs read at most ⌈(n − 1)·scale⌉ + taps inputs
                steps.append((TAPS[self.mode], ar.Ratio(scale)))
        out = (n, c, rh.size, rw.size)
        reads = TAPS[self.mode] ** 2
        return Inference(out, {"H": rh.formula, "W": rw.formula}, (steps[0], steps[1]), 0, count(out) * reads)

    def windows(self) -> tuple[AxisWindow, AxisWindow] | str:
        """Tiles for scale factors 2ᵏ (tile and whole image then compute the same source positions,
        bit for bit); other scales, ``size=`` and align_corners need the whole plane."""
        if self.size is not None:
            return f"{self.op} with size= sets the whole plane's output size"
        if self.align_corners:
            return f"{self.op} with align_corners=true spaces its samples over the whole plane"
        result = []
        for axis in (0, 1):
            factor = power_of_two(Fraction(1 / self.scale_factor[axis])) if self.scale_factor[axis] >= 1 else None  # type: ignore[index]
            if factor is None:
                return f"{self.op} with scale_factor={self.scale_factor[axis]:g} (tiles need a power of two: 1, 2, 4, …)"  # type: ignore[index]
            before, span = self.up_window(factor)
            result.append(AxisWindow(span, 1, before, 0, up=factor, enlarging=True))
        return result[0], result[1]

    def scratch_elements(self, input_shape: Shape, output_shape: Shape) -> int:
        """Nearest: the rows gathered before the columns. The linear modes: a float32 copy of the
        input, the width pass (its sum, a gathered copy and a product: 3 × H_in × W_out) and the
        height pass's gathered copy and product (2 × the output)."""
        n, c, h, w = input_shape
        ho, wo = output_shape[2], output_shape[3]
        if self.mode == "nearest":
            return n * c * ho * w
        return count(input_shape) + n * c * (3 * h * wo + 2 * ho * wo)
