"""Transposed convolution (``nn.ConvTranspose2d``): the way a decoder undoes a strided conv's size.

Each input value times the kernel, added into the output at stride steps; exactly torch's
``conv_transpose2d``, the gradient of ``conv`` with respect to its input. d2l's X = [[0, 1],
[2, 3]] with K = [[0, 1], [2, 3]] gives [[0, 0, 1], [0, 4, 6], [4, 12, 9]] (3x3)::

    >>> from poolcli.core.ops.base import PlanContext
    >>> ConvTranspose.create({"weight": "0 1; 2 3"}).infer((1, 1, 2, 2), PlanContext()).formula["H"]
    '(2 − 1)·1 − 2·0 + 1·(2 − 1) + 0 + 1 = 3'

The weight options are ``conv``'s (a named filter, ``weight=``, ``weight_file=``, or
``nn.ConvTranspose2d``'s random weights from ``--seed``); a 4-D weight is in torch's
ConvTranspose2d layout, in_channels × out_channels/groups × kh × kw.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, ClassVar

from ...errors import PlanError, SpecError
from .. import arithmetic as ar
from ..values import matrix_shape, to_choice, to_pair
from .base import AxisWindow, Inference, PlanContext, Shape, count, require_spatial
from .conv import Conv

PAIR0 = to_pair(0)


def _zeros_only(value: Any) -> str:
    mode = to_choice("zeros", "reflect", "replicate", "circular")(value)
    if mode != "zeros":
        raise ValueError('zeros (torch: Only "zeros" padding mode is supported for ConvTranspose2d)')
    return mode


@dataclass(frozen=True)
class ConvTranspose(Conv):
    """``nn.ConvTranspose2d`` with conv's weight options; H_out = (H_in − 1)·s − 2p + d·(k − 1) +
    output_padding + 1, with torch's bound output_padding < max(stride, dilation).

    A 2-D kernel applies to every channel (``channels=depthwise`` keeps C; ``channels=sum`` adds
    the per-channel results into one channel); a 3-D one (C×kh×kw) gives each channel its own.
    """

    padding: Any = (0, 0)
    output_padding: tuple[int, int] = (0, 0)

    op: ClassVar[str] = "convtranspose"
    torch_names: ClassVar[tuple[str, ...]] = ("ConvTranspose2d",)
    args: ClassVar[tuple[str, ...]] = (
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "output_padding", "groups",
        "bias", "dilation", "padding_mode",
    )
    torch_presets: ClassVar[dict[str, dict[str, Any]]] = {"ConvTranspose2d": {"bias": True}}
    converters: ClassVar[dict] = {
        **Conv.converters,
        "padding": PAIR0,
        "output_padding": PAIR0,
        "padding_mode": _zeros_only,
    }
    random_name: ClassVar[str] = "nn.ConvTranspose2d"
    walkthrough: ClassVar[str | None] = "transposed"

    def validate_padding(self) -> None:
        """torch's bound on output_padding (checked by torch only when it runs; here before any pixel)."""
        for axis, op, s, d in zip("HW", self.output_padding, self.stride, self.dilation):
            if op >= max(s, d):
                raise SpecError(
                    f"{self.op}: output_padding {axis}={op} must be smaller than either stride ({s}) or dilation ({d})",
                    f"torch requires output_padding < max(stride, dilation): use output_padding ≤ {max(s, d) - 1}",
                )

    def padding_lrtb(self) -> tuple[int, int, int, int]:
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def weight_shape(self, channels: int) -> tuple[tuple[int, int, int, int], int]:
        """torch's ConvTranspose2d weight shape (I, O/groups, kh, kw) and groups on ``channels`` inputs."""
        if self.kernel is None:
            kh, kw = self.kernel_size  # type: ignore[misc]
            return (self.in_channels, self.out_channels // self.groups, kh, kw), self.groups  # type: ignore[return-value,operator]
        shape = matrix_shape(self.kernel)
        if len(shape) == 4:
            i, o, kh, kw = shape
            return (i, o, kh, kw), 1
        kh, kw = shape[-2:]
        if self.channels == "depthwise":
            return (channels, 1, kh, kw), channels
        return (channels, 1, kh, kw), 1

    def check_channels(self, c: int) -> tuple[tuple[int, int, int, int], int]:
        """The weight shape and groups on C input channels, or torch's refusal."""
        shape, groups = self.weight_shape(c)
        kernel_shape = matrix_shape(self.kernel) if self.kernel is not None else None
        if kernel_shape is None and self.in_channels != c:
            raise PlanError(f"{self.label()} expects in_channels={self.in_channels}, got C={c}", f"use in_channels={c}")
        if kernel_shape is not None and len(kernel_shape) in (3, 4) and kernel_shape[0] != c:
            raise PlanError(
                f"{self.label()}: a {ar.format_shape(kernel_shape)} weight needs C={kernel_shape[0]}, got C={c}",
                "a transposed conv's weight is in_channels × out_channels × kh × kw: its first size is C",
            )
        return shape, groups

    def out_channels_for(self, c: int) -> int:
        (_, o, _, _), groups = self.weight_shape(c)
        return o * groups

    def sizes(self, h: int, w: int) -> tuple[ar.SizeResult, ar.SizeResult]:
        kh, kw = self.kernel_hw()
        return (
            ar.conv_transpose_output_size(h, kh, self.stride[0], self.padding[0], self.output_padding[0], self.dilation[0]),
            ar.conv_transpose_output_size(w, kw, self.stride[1], self.padding[1], self.output_padding[1], self.dilation[1]),
        )

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        (i, o, kh, kw), groups = self.check_channels(c)
        rh, rw = self.sizes(h, w)
        for axis, n_in, result in (("H", h, rh), ("W", w, rw)):
            if result.size < 1:
                raise PlanError(
                    f"{self.label()} on {axis}={n_in} gives {axis}_out={result.size}: {result.formula}",
                    "use less padding, or a larger kernel or stride",
                )
        out = (n, o * groups, rh.size, rw.size)
        params = i * o * kh * kw + (o * groups if self.has_bias else 0)
        span_h, span_w = self.spans()
        steps = ((span_h, Fraction(1, self.stride[0])), (span_w, Fraction(1, self.stride[1])))
        return Inference(out, {"H": rh.formula, "W": rw.formula}, steps, params, n * h * w * i * o * kh * kw)

    def windows(self) -> tuple[AxisWindow, AxisWindow] | str:
        """Output o gathers the inputs i with i·s in [o + p − d·(k − 1), o + p]; the span is widened
        where needed so that a tile's own output reaches the last row asked of it."""
        result = []
        for span, s, p, op in zip(self.spans(), self.stride, self.padding, self.output_padding):
            result.append(AxisWindow(max(span, s + p - op), 1, span - 1 - p, 0, up=s, enlarging=True))
        return result[0], result[1]

    def scratch_elements(self, input_shape: Shape, output_shape: Shape) -> int:
        """A float32 copy of the input, a product buffer of the input's plane for every output
        channel, and the output relaid out to the input's memory order (an HWC picture)."""
        n, c, h, w = input_shape
        return count(input_shape) + n * output_shape[1] * h * w + count(output_shape)
