"""Cross-correlation (``nn.Conv2d``) with a named filter, an inline matrix, a weight file, or
torch's random weights.

The seeds' corr2d example, K = [[0, 1], [2, 3]] on a 3×3 input::

    >>> from poolcli.core.ops.base import PlanContext
    >>> Conv.create({"weight": "0 1; 2 3"}).infer((1, 1, 3, 3), PlanContext()).formula["H"]
    '⌊(3 + 2·0 − 1·(2−1) − 1)/1⌋ + 1 = 2'

A ``weight_file=`` is read by ``poolcli.io`` (core reads no files): ``Conv.with_file_weight``
gives the stage its matrix, and planning an unread one says so.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

from ...errors import PlanError, SpecError
from .. import arithmetic as ar
from ..filters import NAMES, named_filter
from ..values import (
    matrix_shape, to_bool, to_choice, to_conv_padding, to_float, to_int, to_matrix, to_optional, to_pair,
    to_positive_float, to_text,
)
from .base import AxisWindow, Inference, PlanContext, Shape, Stage, check_positive, compact, count, require_spatial
from .pad import check_padding_fits, padding_windows

PAIR1 = to_pair(1)
PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


def _filter_name(value: Any) -> str:
    if not isinstance(value, str) or value not in NAMES:
        raise ValueError(f"a filter name: {', '.join(NAMES)}")
    return value


def _bias(value: Any) -> Any:
    if isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false")):
        return to_bool(value)
    return to_float(value)


@functools.lru_cache(maxsize=64)
def _filter_matrix(name: str, size: int | None, sigma: float | None) -> tuple:
    return to_matrix(named_filter(name, size, sigma))


@dataclass(frozen=True)
class Conv(Stage):
    """Cross-correlation with a named filter, an inline matrix, a weight file, or nn.Conv2d's
    random weights; the seeds' K = [[0, 1], [2, 3]] on 0..8 gives [[19, 25], [37, 43]].

    A 2-D kernel applies to every channel: ``channels=depthwise`` keeps C, ``channels=sum``
    adds the per-channel results into one channel (the textbook's multi-input-channel sum). A
    3-D kernel (C×kh×kw) gives each channel its own; a 4-D one (O×I×kh×kw) is a full conv.
    """

    filter: str | None = None
    weight: tuple | None = None
    weight_file: str | None = None
    stride: tuple[int, int] = (1, 1)
    padding: Any = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    padding_mode: str = "zeros"
    bias: Any = 0.0
    channels: str = "depthwise"
    in_channels: int | None = None
    out_channels: int | None = None
    kernel_size: tuple[int, int] | None = None
    sigma: float | None = None
    groups: int = 1
    seed: int | None = None
    file_weight: tuple | None = field(default=None, compare=False, repr=False, metadata={"hidden": True})

    op: ClassVar[str] = "conv"
    walkthrough: ClassVar[str | None] = "conv"
    torch_names: ClassVar[tuple[str, ...]] = ("Conv2d",)
    args: ClassVar[tuple[str, ...]] = (
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
        "bias", "padding_mode",
    )
    compact_args: ClassVar[tuple[str, ...]] = ("filter",)
    label_first: ClassVar[tuple[str, ...]] = ("in_channels", "out_channels", "kernel_size")
    torch_presets: ClassVar[dict[str, dict[str, Any]]] = {"Conv2d": {"bias": True}}
    converters: ClassVar[dict] = {
        "filter": _filter_name,
        "weight": to_matrix,
        "weight_file": to_text("a path to a .npy or .csv file"),
        "stride": PAIR1,
        "padding": to_conv_padding,
        "dilation": PAIR1,
        "padding_mode": to_choice(*PADDING_MODES),
        "bias": _bias,
        "channels": to_choice("depthwise", "sum"),
        "in_channels": to_int(1),
        "out_channels": to_int(1),
        "kernel_size": PAIR1,
        "sigma": to_positive_float,
        "groups": to_int(1),
        "seed": to_optional(to_int(0)),
    }
    torch_converters: ClassVar[dict] = {  # (3,) is a 1-D kernel to torch; bias= is read for its truth
        "kernel_size": to_pair(1, single=False), "bias": bool,
    }
    random_name: ClassVar[str] = "nn.Conv2d"

    @classmethod
    def check_torch_values(cls, values: dict[str, Any], torch_name: str) -> None:
        """torch takes ``padding=(P,)`` for zero padding, but with another ``padding_mode`` it pads
        only the last dimension and its forward refuses the 4-D input.

        >>> try:
        ...     Conv.check_torch_values({"padding": (1,), "padding_mode": "reflect"}, "Conv2d")
        ... except SpecError as exc:
        ...     print(exc.what)
        Conv2d: padding=(1,) with padding_mode='reflect' pads one dimension only, and torch refuses it for an image
        """
        padding, mode = values.get("padding"), values.get("padding_mode", "zeros")
        if isinstance(padding, (tuple, list)) and len(padding) == 1 and mode != "zeros":
            raise SpecError(f"{torch_name}: padding=({padding[0]!r},) with padding_mode={mode!r} pads one dimension "
                            "only, and torch refuses it for an image", "give padding=P or padding=(P, P)")

    def validate(self) -> None:
        sources = [n for n in ("filter", "weight", "weight_file") if getattr(self, n) is not None]
        random = self.in_channels is not None or self.out_channels is not None
        if random:
            sources.append("in_channels/out_channels")
        if len(sources) != 1:
            raise SpecError(
                f"{self.op}: give exactly one of filter=, weight=, weight_file= or {self.random_name}'s channels"
                + (f" (got {', '.join(sources)})" if sources else ""),
                f"for example {self.op}:filter=sobel-x,p=1 or {self.op}:weight=0 1; 2 3",
            )
        if random:
            if None in (self.in_channels, self.out_channels, self.kernel_size):
                raise SpecError(f"{self.op}: {self.random_name} needs in_channels, out_channels and kernel_size", "")
            if self.in_channels % self.groups or self.out_channels % self.groups:
                raise SpecError(
                    f"{self.op}: in_channels={self.in_channels} and out_channels={self.out_channels} "
                    f"must be divisible by groups={self.groups}",
                    "torch requires it",
                )
        elif self.bias is True:
            raise SpecError(f"{self.op}: bias=true (random) needs {self.random_name}'s channels", "give bias a number")
        if self.filter is not None and self.filter not in ("box", "gaussian"):
            if self.kernel_size is not None or self.sigma is not None:
                raise SpecError(f"{self.op}: filter {self.filter!r} has a fixed size", "k= and sigma= apply to box and gaussian")
        if self.filter in ("box", "gaussian") and self.kernel_size is not None and self.kernel_size[0] != self.kernel_size[1]:
            raise SpecError(
                f"{self.op}: filter {self.filter!r} with kernel_size={compact(self.kernel_size)}",
                "box and gaussian are square: give one size, like k=5",
            )
        if self.sigma is not None and self.filter != "gaussian":
            raise SpecError(f"{self.op}: sigma={self.sigma:g} without filter=gaussian", "sigma applies to the gaussian filter only")
        if not random and (self.weight is not None or self.weight_file is not None) and self.kernel_size is not None:
            raise SpecError(
                f"{self.op}: kernel_size={compact(self.kernel_size)} with a weight", "the weight's own shape sets the size"
            )
        if not random and self.groups != 1:
            raise SpecError(
                f"{self.op}: groups={self.groups} without {self.random_name}'s channels",
                "groups follow from the weight: use channels=depthwise or a 4-D weight",
            )
        self.validate_padding()

    def validate_padding(self) -> None:
        if self.padding == "same" and self.stride != (1, 1):
            raise SpecError(f"{self.op}: padding=same needs stride 1",
                            "torch does not support same padding for strided convolutions")

    def with_file_weight(self, matrix: Any) -> "Conv":
        """This stage with its ``weight_file``'s matrix (read by ``poolcli.io``)."""
        try:
            return replace(self, file_weight=to_matrix(matrix))
        except ValueError as exc:
            raise SpecError(f"{self.op}: weight_file={self.weight_file} is not a usable kernel", f"expected {exc}") from None

    @property
    def kernel(self) -> tuple | None:
        """The weights as nested tuples (None for random weights, or a weight file not yet read)."""
        if self.weight is not None:
            return self.weight
        if self.filter is not None:
            return _filter_matrix(self.filter, self.kernel_size[0] if self.kernel_size else None, self.sigma)
        return self.file_weight

    @property
    def is_random(self) -> bool:
        return self.in_channels is not None

    @property
    def has_bias(self) -> bool:
        return self.bias not in (0, 0.0, False)

    @property
    def dtype_policy(self) -> str:  # type: ignore[override]
        return "unit" if self.has_bias else "float"

    @property
    def averaging(self) -> bool:  # type: ignore[override]
        return self.kernel is not None and self.channels == "depthwise" and len(matrix_shape(self.kernel)) <= 3

    def weight_shape(self, channels: int) -> tuple[tuple[int, int, int, int], int]:
        """The torch weight shape (O, I/groups, kh, kw) and groups for ``channels`` input channels."""
        if self.kernel is None:
            kh, kw = self.kernel_size  # type: ignore[misc]
            return (self.out_channels, self.in_channels // self.groups, kh, kw), self.groups  # type: ignore[return-value,operator]
        shape = matrix_shape(self.kernel)
        if len(shape) == 4:
            o, i, kh, kw = shape
            return (o, i, kh, kw), channels // i if i and channels % i == 0 else 0
        kh, kw = shape[-2:]
        if self.channels == "depthwise":
            return (channels, 1, kh, kw), channels
        return (1, channels, kh, kw), 1

    def kernel_hw(self) -> tuple[int, int]:
        if self.kernel is None:
            if self.kernel_size is None:
                raise PlanError(f"{self.op}: weight_file={self.weight_file} has not been read",
                                "build stages with poolcli.parse_stage or poolcli.parse_pipeline_file, which read it")
            return self.kernel_size
        return matrix_shape(self.kernel)[-2:]  # type: ignore[return-value]

    def padding_lrtb(self) -> tuple[int, int, int, int]:
        """Padding per side (left, right, top, bottom); 'same' puts any odd extra at the end."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        if self.padding == "same":
            kh, kw = self.kernel_hw()
            top, bottom = ar.same_padding(kh, self.dilation[0])
            left, right = ar.same_padding(kw, self.dilation[1])
            return (left, right, top, bottom)
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def check_channels(self, c: int) -> tuple[tuple[int, int, int, int], int]:
        """The weight shape and groups on C input channels, or torch's refusal."""
        (o, i, kh, kw), groups = self.weight_shape(c)
        kernel_shape = matrix_shape(self.kernel) if self.kernel is not None else None
        if kernel_shape is None and self.in_channels != c:
            raise PlanError(f"{self.label()} expects in_channels={self.in_channels}, got C={c}", f"use in_channels={c}")
        if kernel_shape is not None and len(kernel_shape) == 3 and kernel_shape[0] != c:
            raise PlanError(
                f"{self.label()}: a {ar.format_shape(kernel_shape)} weight needs C={kernel_shape[0]}, got C={c}",
                "give one kernel per input channel, or a 2-D kernel for all",
            )
        if kernel_shape is not None and len(kernel_shape) == 4 and groups == 0:
            raise PlanError(f"{self.label()}: a weight with I={i} input channels does not divide C={c}", "use I = C")
        if kernel_shape is not None and len(kernel_shape) == 4 and o % groups:
            raise PlanError(
                f"{self.label()}: a {ar.format_shape(kernel_shape)} weight on C={c} runs as {groups} groups, "
                f"and O={o} is not divisible by {groups}",
                "torch requires out_channels divisible by groups: use I = C or O a multiple of C/I",
            )
        return (o, i, kh, kw), groups

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = require_spatial(self, shape)
        self.kernel_hw()
        (o, i, kh, kw), _ = self.check_channels(c)
        left, right, top, bottom = self.padding_lrtb()
        check_padding_fits(self.label(), self.padding_mode, h, w, (left, right, top, bottom))
        rh = ar.conv_output_size(h, kh, self.stride[0], top, bottom, self.dilation[0])
        rw = ar.conv_output_size(w, kw, self.stride[1], left, right, self.dilation[1])
        check_positive(self, "H", h, rh)
        check_positive(self, "W", w, rw)
        out = (n, o, rh.size, rw.size)
        params = o * i * kh * kw + (o if self.has_bias else 0)
        steps = ((self.spans()[0], self.stride[0]), (self.spans()[1], self.stride[1]))
        return Inference(out, {"H": rh.formula, "W": rw.formula}, steps, params, count(out) * i * kh * kw)

    def spans(self) -> tuple[int, int]:
        kh, kw = self.kernel_hw()
        return ar.effective_kernel(kh, self.dilation[0]), ar.effective_kernel(kw, self.dilation[1])

    def windows(self) -> tuple[AxisWindow, AxisWindow] | str:
        windows = padding_windows(self.padding_mode, self.padding_lrtb(), self.spans(), self.stride)
        return windows or f"{self.op} with padding_mode=circular wraps the far edge around"

    def scratch_elements(self, input_shape: Shape, output_shape: Shape) -> int:
        """A padded planar float32 copy of the input and a product buffer the size of the output."""
        n, c, h, w = input_shape
        left, right, top, bottom = self.padding_lrtb()
        return n * c * (h + top + bottom) * (w + left + right) + count(output_shape)

