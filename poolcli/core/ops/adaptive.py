"""Pools whose windows follow from the whole plane: adaptive, global and fractional.

Their windows depend on the plane's size (adaptive, global) or on random draws (fractional), so
none of them runs on tiles. torch's adaptive windows for 5 inputs → 3 outputs::

    >>> from poolcli.core.arithmetic import adaptive_windows
    >>> adaptive_windows(5, 3)
    [(0, 2), (1, 4), (3, 5)]
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from ...errors import PlanError, SpecError
from .. import arithmetic as ar
from ..values import parse_text, to_optional, to_pair, to_size_pair
from .base import Inference, PlanContext, Shape, Stage, check_positive, require_spatial

PAIR1 = to_pair(1)


@dataclass(frozen=True)
class AdaptiveMaxPool(Stage):
    """Max over torch's adaptive windows, so any input gives ``output_size`` (H x W)."""

    output_size: tuple[int | None, int | None]

    op: ClassVar[str] = "adaptivemaxpool"
    walkthrough: ClassVar[str | None] = "adaptive"
    reduction: ClassVar[str | None] = "max"
    torch_names: ClassVar[tuple[str, ...]] = ("AdaptiveMaxPool2d",)
    args: ClassVar[tuple[str, ...]] = ("output_size", "return_indices")
    converters: ClassVar[dict] = {"output_size": to_size_pair}
    ignored: ClassVar[tuple[str, ...]] = ("return_indices",)
    dtype_policy: ClassVar[str] = "native"
    keeps_range: ClassVar[bool] = True

    def size_for(self, h: int, w: int) -> tuple[int, int]:
        """The output (H, W) for an h×w plane: None in ``output_size`` keeps that dimension."""
        return (self.output_size[0] or h, self.output_size[1] or w)

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        oh, ow = self.size_for(h, w)
        rh, rw = ar.adaptive_output_size(h, oh), ar.adaptive_output_size(w, ow)
        rows, cols = ar.adaptive_windows(h, oh), ar.adaptive_windows(w, ow)
        span_h, span_w = max(e - s for s, e in rows), max(e - s for s, e in cols)
        steps = ((span_h, Fraction(h, oh)), (span_w, Fraction(w, ow)))
        ops = sum(e - s for s, e in rows) * sum(e - s for s, e in cols) * n * c
        return Inference((n, c, oh, ow), {"H": rh.formula, "W": rw.formula}, steps, 0, ops)


@dataclass(frozen=True)
class AdaptiveAvgPool(AdaptiveMaxPool):
    """Mean over torch's adaptive windows (``nn.AdaptiveAvgPool2d``)."""

    op: ClassVar[str] = "adaptiveavgpool"
    reduction: ClassVar[str | None] = "avg"
    torch_names: ClassVar[tuple[str, ...]] = ("AdaptiveAvgPool2d",)
    args: ClassVar[tuple[str, ...]] = ("output_size",)
    ignored: ClassVar[tuple[str, ...]] = ()
    averaging: ClassVar[bool] = True
    dtype_policy: ClassVar[str] = "float"


@dataclass(frozen=True)
class GlobalMaxPool(Stage):
    """One value per channel: the maximum over the whole plane (output 1 x 1)."""

    op: ClassVar[str] = "globalmaxpool"
    walkthrough: ClassVar[str | None] = "global"
    reduction: ClassVar[str | None] = "max"
    dtype_policy: ClassVar[str] = "native"
    keeps_range: ClassVar[bool] = True

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        formula = {"H": ar.global_output_size(h).formula, "W": ar.global_output_size(w).formula}
        return Inference((n, c, 1, 1), formula, ((h, h), (w, w)), 0, n * c * h * w)


@dataclass(frozen=True)
class GlobalAvgPool(GlobalMaxPool):
    """One value per channel: the mean over the whole plane, as the seeds' ``avg_pool2d(img, 4)``."""

    op: ClassVar[str] = "globalavgpool"
    reduction: ClassVar[str | None] = "avg"
    averaging: ClassVar[bool] = True
    dtype_policy: ClassVar[str] = "float"


def _ratio_pair(value: Any) -> tuple[float, float]:
    value = parse_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
    if isinstance(value, (tuple, list)) and len(value) == 1:
        value = (value[0], value[0])
    if not (
        isinstance(value, (tuple, list))
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        raise ValueError("a ratio in (0, 1) or a pair of them")
    ratios = tuple(float(v) for v in value)
    if not all(0 < r < 1 for r in ratios):
        raise ValueError("ratios strictly between 0 and 1")
    return ratios  # type: ignore[return-value]


@dataclass(frozen=True)
class FractionalMaxPool(Stage):
    """Max over pseudo-random windows (``nn.FractionalMaxPool2d``), reproducible from ``--seed``."""

    kernel_size: tuple[int, int]
    output_size: tuple[int, int] | None = None
    output_ratio: tuple[float, float] | None = None

    op: ClassVar[str] = "fractionalmaxpool"
    unexplained: ClassVar[str] = "its windows come from torch's random generator"
    torch_names: ClassVar[tuple[str, ...]] = ("FractionalMaxPool2d",)
    args: ClassVar[tuple[str, ...]] = ("kernel_size", "output_size", "output_ratio", "return_indices")
    converters: ClassVar[dict] = {
        "kernel_size": PAIR1,
        "output_size": to_optional(PAIR1),
        "output_ratio": to_optional(_ratio_pair),
    }
    ignored: ClassVar[tuple[str, ...]] = ("return_indices",)
    dtype_policy: ClassVar[str] = "float"
    deterministic: ClassVar[bool] = False
    keeps_range: ClassVar[bool] = True

    def validate(self) -> None:
        if (self.output_size is None) == (self.output_ratio is None):
            raise SpecError(
                f"{self.op}: give exactly one of output_size and output_ratio",
                "for example fractionalmaxpool:k=3,output_ratio=0.5",
            )

    def sizes(self, h: int, w: int) -> tuple[ar.SizeResult, ar.SizeResult]:
        size = self.output_size or (None, None)
        ratio = self.output_ratio or (None, None)
        return (
            ar.fractional_output_size(h, self.kernel_size[0], size[0], ratio[0]),
            ar.fractional_output_size(w, self.kernel_size[1], size[1], ratio[1]),
        )

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        rh, rw = self.sizes(h, w)
        for axis, n_in, r, k in (("H", h, rh, self.kernel_size[0]), ("W", w, rw, self.kernel_size[1])):
            check_positive(self, axis, n_in, r)
            if r.size + k - 1 > n_in:
                raise PlanError(
                    f"{self.label()} on {axis}={n_in}: output {r.size} + kernel {k} − 1 > {n_in}",
                    "torch needs output_size + kernel_size − 1 ≤ input size",
                )
        steps = ((self.kernel_size[0], Fraction(h, rh.size)), (self.kernel_size[1], Fraction(w, rw.size)))
        ops = n * c * rh.size * rw.size * self.kernel_size[0] * self.kernel_size[1]
        return Inference((n, c, rh.size, rw.size), {"H": rh.formula, "W": rw.formula}, steps, 0, ops)
