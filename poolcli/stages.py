"""One class per op: parameters, torch's validation, shape inference, and the torch kernel.

A stage is a frozen dataclass whose fields mirror ``torch.nn`` (pairs normalised to (h, w)).
``create`` converts and validates loose values (from a spec, a TOML table or CLI options) with
exactly the constraints torch applies, so a bad stage fails before any image is read.
``infer`` is pure Python (the plan, ``poolcli shape``); ``apply`` is the only place that
touches torch, imported inside it.

    >>> s = create_stage("maxpool", {"kernel_size": (2, 3), "stride": (2, 3), "padding": (0, 1)})
    >>> s.infer((1, 1, 4, 4), PlanContext()).output_shape
    (1, 1, 2, 2)
"""

from __future__ import annotations

import ast
import math
import warnings
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar

from . import arithmetic as ar
from .errors import PlanError, SpecError

Shape = tuple[int, ...]


# --------------------------------------------------------------------------- converters
# Each takes a loose value (int, float, str, tuple, list) and returns the field's value or
# raises ValueError with what was expected; ``create`` turns that into a SpecError.


def _parse_text(value: Any) -> Any:
    """'2x3', '(2,3)', '2,3' and numbers written as text → Python values."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if "x" in text and all(part.strip().lstrip("-").isdigit() for part in text.split("x")):
        return tuple(int(part) for part in text.split("x"))
    return _literal_or_text(text)


def _literal_or_text(text: str) -> Any:
    """``ast.literal_eval`` (never eval) or the text itself where it is no Python literal.

    literal_eval raises more than ValueError/SyntaxError on hostile text: TypeError for
    ``{[1]: 2}``, MemoryError/RecursionError for deep nesting; all of them mean "not a literal".
    """
    try:
        with warnings.catch_warnings():  # "invalid decimal literal" & co. must not reach stderr
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return text


def to_int(minimum: int | None = None) -> Callable[[Any], int]:
    def convert(value: Any) -> int:
        value = _parse_text(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError("an integer")
        if minimum is not None and value < minimum:
            raise ValueError(f"an integer ≥ {minimum}")
        return value

    return convert


def to_pair(minimum: int) -> Callable[[Any], tuple[int, int]]:
    """An int, ``HxW``, ``H,W`` or ``(H, W)`` → (h, w), each ≥ minimum."""

    def convert(value: Any) -> tuple[int, int]:
        value = _parse_text(value)
        if isinstance(value, list):
            value = tuple(value)
        try:
            result = ar.pair(value)
        except TypeError:
            raise ValueError("an integer or a pair like 2x3") from None
        if min(result) < minimum:
            raise ValueError(f"integers ≥ {minimum}")
        return result

    return convert


def to_size_pair(value: Any) -> tuple[int | None, int | None]:
    """An adaptive output size: int or pair, where None keeps that input dimension (as torch)."""
    value = _parse_text(value)
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value, value)
    if (
        not isinstance(value, tuple)
        or len(value) != 2
        or not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1) for v in value)
    ):
        raise ValueError("a size ≥ 1 or a pair like 7x7")
    return value  # type: ignore[return-value]


def to_float(value: Any) -> float:
    value = _parse_text(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("a number")
    return float(value)


def to_positive_float(value: Any) -> float:
    number = to_float(value)
    if not number > 0:
        raise ValueError("a number > 0")
    return number


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    if value in (0, 1) and isinstance(value, int):
        return bool(value)
    raise ValueError("true or false")


def to_optional(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("none", "null")):
            return None
        return convert(value)

    return optional


def to_choice(*choices: str) -> Callable[[Any], str]:
    def convert(value: Any) -> str:
        if not isinstance(value, str) or value.strip().lower() not in choices:
            raise ValueError(" or ".join(choices))
        return value.strip().lower()

    return convert


def to_padding4(value: Any) -> tuple[int, int, int, int]:
    """Pad amounts as (left, right, top, bottom), from an int, ``HxW`` (top/bottom x left/right)
    or four values ``l,r,t,b`` — torch's ZeroPad2d order."""
    value = _parse_text(value)
    if isinstance(value, list):
        value = tuple(value)
    if isinstance(value, int) and not isinstance(value, bool):
        value = (value,) * 4
    elif isinstance(value, tuple) and len(value) == 2:
        value = (value[1], value[1], value[0], value[0])
    if not (isinstance(value, tuple) and len(value) == 4 and all(type(v) is int for v in value)):
        raise ValueError("an int, HxW, or left,right,top,bottom")
    return value  # type: ignore[return-value]


def to_conv_padding(value: Any) -> Any:
    if isinstance(value, str) and value.strip().lower() in ("same", "valid"):
        return value.strip().lower()
    return to_pair(0)(value)


def to_matrix(value: Any) -> tuple:
    """A weight: ``0 1; 2 3``, ``[[0,1],[2,3]]`` or nested lists, 2-D to 4-D, as nested tuples."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = _literal_or_text(text)
            if isinstance(value, str):
                raise ValueError("a matrix like 0 1; 2 3 or [[0,1],[2,3]]")
        else:
            rows = [row.replace(",", " ").split() for row in text.split(";")]
            try:
                value = [[float(v) for v in row] for row in rows]
            except ValueError:
                raise ValueError("numbers in a matrix like 0 1; 2 3") from None
    nested = _nested_tuple(value)
    depth = _depth(nested)
    if not 2 <= depth <= 4:
        raise ValueError("a 2-D, 3-D or 4-D matrix of numbers")
    _check_rectangular(nested)
    return nested


def _nested_tuple(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_nested_tuple(v) for v in value)
    if hasattr(value, "tolist"):
        return _nested_tuple(value.tolist())
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError("numbers in the matrix")
    return float(value)


def _depth(value: Any) -> int:
    return 1 + _depth(value[0]) if isinstance(value, tuple) and value else 0


def _check_rectangular(value: Any) -> None:
    if isinstance(value, tuple):
        if not value:
            raise ValueError("a non-empty matrix")
        shapes = {_shape_of(v) for v in value}
        if len(shapes) != 1:
            raise ValueError("rows of equal length")
        for v in value:
            _check_rectangular(v)


def _shape_of(value: Any) -> tuple:
    if not isinstance(value, tuple):
        return ()
    return (len(value), *_shape_of(value[0])) if value else (0,)


def matrix_shape(value: tuple) -> tuple[int, ...]:
    return _shape_of(value)


# --------------------------------------------------------------------------- plan records


@dataclass
class StagePlan:
    """What one stage does to one input shape: the data behind a table row and a JSON stage."""

    index: int
    stage: "Stage"
    input_shape: Shape
    output_shape: Shape
    formula: dict[str, str] | None
    receptive_field: tuple[Any, Any]
    jump: tuple[Any, Any]
    params_count: int
    ops: int
    notes: list[str] = field(default_factory=list)
    pairs_with: int | None = None  # for maxunpool: the index of its maxpool
    seconds: float | None = None

    @property
    def op(self) -> str:
        return self.stage.op


@dataclass
class PlanContext:
    """State carried across stages while planning: the maxpool stack that maxunpool pops."""

    pool_stack: list[tuple[int, "MaxPool", Shape]] = field(default_factory=list)
    index: int = 0


@dataclass
class Inference:
    """A stage's own answer for one input shape; the planner adds fields and costs."""

    output_shape: Shape
    formula: dict[str, str] | None
    windows: tuple[tuple[Any, Any], tuple[Any, Any]] | None  # ((span_h, stride_h), (span_w, stride_w))
    params_count: int
    ops: int
    notes: list[str] = field(default_factory=list)
    pairs_with: int | None = None


def _require_spatial(stage: "Stage", shape: Shape) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise PlanError(
            f"stage {stage.label()} needs an N×C×H×W input, got {ar.format_shape(shape)}",
            "put flatten and linear after the spatial stages",
        )
    return shape  # type: ignore[return-value]


def _check_positive(stage: "Stage", axis: str, n: int, result: ar.SizeResult) -> None:
    if result.size < 1:
        raise PlanError(
            f"{stage.label()} on {axis}={n} gives {axis}_out={result.size}: {result.formula}",
            "use a smaller kernel or stride, or more padding",
        )


# --------------------------------------------------------------------------- the stages


class Stage:
    """Base of every op. Subclasses are frozen dataclasses and set the class variables."""

    op: ClassVar[str]
    torch_names: ClassVar[tuple[str, ...]] = ()
    args: ClassVar[tuple[str, ...]] = ()  # positional order, as in torch's constructor
    compact_args: ClassVar[tuple[str, ...] | None] = None  # bare values in a compact spec (default: args)
    torch_presets: ClassVar[dict[str, dict[str, Any]]] = {}  # values implied by a torch class name
    torch_args: ClassVar[dict[str, tuple[str, ...]]] = {}  # positional order where a torch class differs
    converters: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    ignored: ClassVar[tuple[str, ...]] = ()  # torch arguments that change nothing here
    averaging: ClassVar[bool] = False  # works on premultiplied colour for images with alpha
    dtype_policy: ClassVar[str] = "float"  # "native": integer dtype ok; "float": scaled floats; "unit": values in [0,1]
    local: ClassVar[bool] = True  # output pixels depend on a bounded input window
    label_defaults: ClassVar[dict[str, Any]] = {}  # values the label leaves out besides the defaults
    label_first: ClassVar[tuple[str, ...]] = ()  # parameters the label names before the rest

    @classmethod
    def create(cls, values: dict[str, Any]) -> "Stage":
        """Convert and validate loose values; raise SpecError naming the stage and the token."""
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if name in cls.ignored:
                continue
            convert = cls.converters.get(name)
            if convert is None:
                known = ", ".join(f.name for f in fields(cls))  # type: ignore[arg-type]
                raise SpecError(
                    f"{cls.op}: unknown parameter {name!r}",
                    f"{cls.op} takes {known}" if known else f"{cls.op} takes no parameters",
                )
            try:
                converted[name] = convert(value)
            except ValueError as exc:
                raise SpecError(
                    f"{cls.op}: {name}={_show(value)} is not valid", f"expected {exc}"
                ) from None
        missing = [
            f.name for f in fields(cls)  # type: ignore[arg-type]
            if f.name not in converted and f.default is MISSING and f.default_factory is MISSING
        ]
        if missing:
            raise SpecError(
                f"{cls.op}: missing {', '.join(missing)}",
                f"for example {cls.op}:{missing[0]}=2" if cls.op != "lppool" else "for example lppool:2,k=3",
            )
        stage = cls(**converted)  # type: ignore[call-arg]
        stage.validate()
        return stage

    def validate(self) -> None:
        """Torch's constraints that involve several parameters."""

    def params(self) -> dict[str, Any]:
        """The parameters as JSON values (pairs as lists)."""
        return {f.name: _jsonable(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]

    def label(self) -> str:
        """The compact spec that recreates this stage, for the table: ``maxpool:k=2x2,s=2x2``."""
        parts = []
        ordered = sorted(fields(self), key=lambda f: f.name not in self.label_first)  # type: ignore[arg-type]
        for f in ordered:
            value = getattr(self, f.name)
            if value == f.default or value is None or value == self.label_defaults.get(f.name, f.default):
                continue
            if f.name == "stride" and value == getattr(self, "kernel_size", None):
                continue
            parts.append(f"{_alias(f.name)}={_compact(value)}")
        return f"{self.op}:{','.join(parts)}" if parts else self.op

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        raise NotImplementedError

    def apply(self, x: Any, run: Any) -> Any:
        """Compute on a torch tensor (N, C, H, W); ``run`` carries indices, seed and scale."""
        raise NotImplementedError


_ALIASES = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d", "ceil_mode": "ceil"}


def _alias(name: str) -> str:
    return _ALIASES.get(name, name)


def _compact(value: Any) -> str:
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"
    if isinstance(value, tuple):
        return "[" + ",".join(_compact(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:50] + "…"


def _jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_jsonable(v) for v in value]
    return value


PAIR1 = to_pair(1)
PAIR0 = to_pair(0)


def _check_pool_padding(stage: Stage, kernel: tuple[int, int], padding: tuple[int, int]) -> None:
    """Torch: 'pad should be smaller than or equal to half of kernel size' (k // 2, undilated)."""
    if padding[0] > kernel[0] // 2 or padding[1] > kernel[1] // 2:
        raise SpecError(
            f"{stage.op}: padding={_compact(padding)} is more than half of kernel_size={_compact(kernel)}",
            "torch requires padding ≤ kernel_size // 2",
        )


def _pool_sizes(stage: Stage, shape: Shape, kernel, stride, padding, dilation, ceil_mode):
    n, c, h, w = _require_spatial(stage, shape)
    rh = ar.pool_output_size(h, kernel[0], stride[0], padding[0], dilation[0], ceil_mode)
    rw = ar.pool_output_size(w, kernel[1], stride[1], padding[1], dilation[1], ceil_mode)
    _check_positive(stage, "H", h, rh)
    _check_positive(stage, "W", w, rw)
    notes = []
    for axis, r in (("H", rh), ("W", rw)):
        if r.naive_size is not None:
            notes.append(f"ceil_mode: {axis} window {r.naive_size} dropped (starts in the padding)")
    return (n, c, rh.size, rw.size), {"H": rh.formula, "W": rw.formula}, notes


def _window_inference(stage, shape, kernel, stride, padding, dilation, ceil_mode) -> Inference:
    out, formula, notes = _pool_sizes(stage, shape, kernel, stride, padding, dilation, ceil_mode)
    spans = [ar.effective_kernel(kernel[i], dilation[i]) for i in (0, 1)]
    ops = math.prod(out) * kernel[0] * kernel[1]
    return Inference(out, formula, ((spans[0], stride[0]), (spans[1], stride[1])), 0, ops, notes)


@dataclass(frozen=True)
class MaxPool(Stage):
    """The maximum of each window (``nn.MaxPool2d``); d2l's 2x2 max on 0..8 gives [[4, 5], [7, 8]]."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    op: ClassVar[str] = "maxpool"
    torch_names: ClassVar[tuple[str, ...]] = ("MaxPool2d",)
    args: ClassVar[tuple[str, ...]] = ("kernel_size", "stride", "padding", "dilation", "return_indices", "ceil_mode")
    converters: ClassVar[dict] = {
        "kernel_size": PAIR1,
        "stride": to_optional(PAIR1),
        "padding": PAIR0,
        "dilation": PAIR1,
        "ceil_mode": to_bool,
    }
    ignored: ClassVar[tuple[str, ...]] = ("return_indices",)
    dtype_policy: ClassVar[str] = "native"

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)

    def validate(self) -> None:
        _check_pool_padding(self, self.kernel_size, self.padding)

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        result = _window_inference(
            self, shape, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )
        ctx.pool_stack.append((ctx.index, self, shape))
        return result

    def apply(self, x, run):
        import torch.nn.functional as F

        source = _pool_source(x)
        if run.wants_indices(self):
            y, indices = F.max_pool2d(
                source, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode, True
            )
            run.store_indices(self, indices, tuple(x.shape[-2:]))
            return y.to(x.dtype)
        y = F.max_pool2d(source, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        return y.to(x.dtype)


def _pool_source(x):
    """``x`` itself where torch has an integer max_pool2d (the CPU), else float32: CUDA's kernel is
    floating-point only, and float32 holds every 8- and 16-bit value exactly."""
    if x.is_floating_point() or x.device.type == "cpu":
        return x
    return x.float()


@dataclass(frozen=True)
class MinPool(MaxPool):
    """The minimum of each window: ``-max_pool2d(-x)``, kept in the image's integer dtype."""

    op: ClassVar[str] = "minpool"
    torch_names: ClassVar[tuple[str, ...]] = ()

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        return _window_inference(
            self, shape, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )

    def apply(self, x, run):
        import torch.nn.functional as F

        if x.is_floating_point():
            flipped = -x
        else:
            flipped = -_pool_source(x.int())  # exact for uint8 and the int32 that holds 16-bit images
        y = F.max_pool2d(flipped, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode)
        return (-y).to(x.dtype)


@dataclass(frozen=True)
class AvgPool(Stage):
    """The mean of each window (``nn.AvgPool2d``); d2l's 2x2 mean on 0..8 gives [[2, 3], [5, 6]]."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    padding: tuple[int, int] = (0, 0)
    ceil_mode: bool = False
    count_include_pad: bool = True
    divisor_override: int | None = None

    op: ClassVar[str] = "avgpool"
    torch_names: ClassVar[tuple[str, ...]] = ("AvgPool2d",)
    args: ClassVar[tuple[str, ...]] = (
        "kernel_size", "stride", "padding", "ceil_mode", "count_include_pad", "divisor_override",
    )
    converters: ClassVar[dict] = {
        "kernel_size": PAIR1,
        "stride": to_optional(PAIR1),
        "padding": PAIR0,
        "ceil_mode": to_bool,
        "count_include_pad": to_bool,
        "divisor_override": to_optional(to_int()),
    }
    averaging: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)

    def validate(self) -> None:
        _check_pool_padding(self, self.kernel_size, self.padding)
        if self.divisor_override is not None and self.divisor_override == 0:
            raise SpecError(f"{self.op}: divisor_override=0", "torch: divisor must be not zero")

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        return _window_inference(self, shape, self.kernel_size, self.stride, self.padding, (1, 1), self.ceil_mode)

    def apply(self, x, run):
        import torch.nn.functional as F

        return F.avg_pool2d(
            x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
            self.count_include_pad, self.divisor_override,
        )


@dataclass(frozen=True)
class LPPool(Stage):
    """The p-norm of each window (``nn.LPPool2d``): p=1 sums, p→∞ approaches max."""

    norm_type: float
    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    ceil_mode: bool = False

    op: ClassVar[str] = "lppool"
    torch_names: ClassVar[tuple[str, ...]] = ("LPPool2d",)
    args: ClassVar[tuple[str, ...]] = ("norm_type", "kernel_size", "stride", "ceil_mode")
    converters: ClassVar[dict] = {
        "norm_type": to_positive_float,
        "kernel_size": PAIR1,
        "stride": to_optional(PAIR1),
        "ceil_mode": to_bool,
    }
    averaging: ClassVar[bool] = True
    # Σ x^p overflows float32 on raw values (255^16, 65535^8): work on [0, 1] values.
    dtype_policy: ClassVar[str] = "unit"

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        return _window_inference(self, shape, self.kernel_size, self.stride, (0, 0), (1, 1), self.ceil_mode)

    def apply(self, x, run):
        import torch.nn.functional as F

        return F.lp_pool2d(x, self.norm_type, self.kernel_size, self.stride, self.ceil_mode)


@dataclass(frozen=True)
class MedianPool(Stage):
    """The median of each window's real pixels; the lower middle value for even counts (torch.median)."""

    kernel_size: tuple[int, int]
    stride: tuple[int, int] | None = None
    dilation: tuple[int, int] = (1, 1)
    ceil_mode: bool = False

    op: ClassVar[str] = "medianpool"
    args: ClassVar[tuple[str, ...]] = ("kernel_size", "stride", "dilation", "ceil_mode")
    converters: ClassVar[dict] = {
        "kernel_size": PAIR1,
        "stride": to_optional(PAIR1),
        "dilation": PAIR1,
        "ceil_mode": to_bool,
    }
    dtype_policy: ClassVar[str] = "native"

    def __post_init__(self) -> None:
        if self.stride is None:
            object.__setattr__(self, "stride", self.kernel_size)

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        return _window_inference(self, shape, self.kernel_size, self.stride, (0, 0), self.dilation, self.ceil_mode)

    def apply(self, x, run):
        import torch

        n, c, h, w = x.shape
        (kh, kw), (sh, sw), (dh, dw) = self.kernel_size, self.stride, self.dilation
        ho = ar.pool_output_size(h, kh, sh, 0, dh, self.ceil_mode).size
        wo = ar.pool_output_size(w, kw, sw, 0, dw, self.ceil_mode).size
        span_h = (ho - 1) * sh + (kh - 1) * dh + 1
        span_w = (wo - 1) * sw + (kw - 1) * dw + 1
        # float32 holds every 8- and 16-bit value exactly; only float64 input needs float64
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        values = x.to(dtype)
        padded = torch.full((n, c, max(span_h, h), max(span_w, w)), float("nan"), dtype=dtype, device=x.device)
        padded[:, :, :h, :w] = values
        windows = padded.unfold(2, (kh - 1) * dh + 1, sh).unfold(3, (kw - 1) * dw + 1, sw)
        windows = windows[..., ::dh, ::dw][:, :, :ho, :wo].reshape(n, c, ho, wo, kh * kw)
        result = torch.nanquantile(windows, 0.5, dim=-1, interpolation="lower")
        return result.to(x.dtype)


@dataclass(frozen=True)
class AdaptiveMaxPool(Stage):
    """Max over torch's adaptive windows, so any input gives ``output_size`` (H x W)."""

    output_size: tuple[int | None, int | None]

    op: ClassVar[str] = "adaptivemaxpool"
    torch_names: ClassVar[tuple[str, ...]] = ("AdaptiveMaxPool2d",)
    args: ClassVar[tuple[str, ...]] = ("output_size", "return_indices")
    converters: ClassVar[dict] = {"output_size": to_size_pair}
    ignored: ClassVar[tuple[str, ...]] = ("return_indices",)
    dtype_policy: ClassVar[str] = "native"
    local: ClassVar[bool] = False

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = _require_spatial(self, shape)
        oh = self.output_size[0] or h
        ow = self.output_size[1] or w
        rh, rw = ar.adaptive_output_size(h, oh), ar.adaptive_output_size(w, ow)
        span_h = max(e - s for s, e in ar.adaptive_windows(h, oh))
        span_w = max(e - s for s, e in ar.adaptive_windows(w, ow))
        from fractions import Fraction

        windows = ((span_h, Fraction(h, oh)), (span_w, Fraction(w, ow)))
        ops = sum((e - s) for s, e in ar.adaptive_windows(h, oh)) * sum(
            (e - s) for s, e in ar.adaptive_windows(w, ow)
        ) * n * c
        return Inference((n, c, oh, ow), {"H": rh.formula, "W": rw.formula}, windows, 0, ops)

    def _size(self, x) -> tuple[int, int]:
        return (self.output_size[0] or x.shape[-2], self.output_size[1] or x.shape[-1])

    def apply(self, x, run):
        import torch.nn.functional as F

        if not x.is_floating_point():  # no integer kernel in torch; float32 holds 16-bit exactly
            return F.adaptive_max_pool2d(x.float(), self._size(x)).to(x.dtype)
        return F.adaptive_max_pool2d(x, self._size(x))


@dataclass(frozen=True)
class AdaptiveAvgPool(AdaptiveMaxPool):
    """Mean over torch's adaptive windows (``nn.AdaptiveAvgPool2d``)."""

    op: ClassVar[str] = "adaptiveavgpool"
    torch_names: ClassVar[tuple[str, ...]] = ("AdaptiveAvgPool2d",)
    args: ClassVar[tuple[str, ...]] = ("output_size",)
    ignored: ClassVar[tuple[str, ...]] = ()
    averaging: ClassVar[bool] = True
    dtype_policy: ClassVar[str] = "float"

    def apply(self, x, run):
        import torch.nn.functional as F

        return F.adaptive_avg_pool2d(x, self._size(x))


@dataclass(frozen=True)
class GlobalMaxPool(Stage):
    """One value per channel: the maximum over the whole plane (output 1 x 1)."""

    op: ClassVar[str] = "globalmaxpool"
    dtype_policy: ClassVar[str] = "native"
    local: ClassVar[bool] = False

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = _require_spatial(self, shape)
        formula = {"H": ar.global_output_size(h).formula, "W": ar.global_output_size(w).formula}
        return Inference((n, c, 1, 1), formula, ((h, h), (w, w)), 0, n * c * h * w)

    def apply(self, x, run):
        return x.amax(dim=(-2, -1), keepdim=True)


@dataclass(frozen=True)
class GlobalAvgPool(GlobalMaxPool):
    """One value per channel: the mean over the whole plane, as the seeds' ``avg_pool2d(img, 4)``."""

    op: ClassVar[str] = "globalavgpool"
    averaging: ClassVar[bool] = True
    dtype_policy: ClassVar[str] = "float"

    def apply(self, x, run):
        return x.mean(dim=(-2, -1), keepdim=True)


@dataclass(frozen=True)
class FractionalMaxPool(Stage):
    """Max over pseudo-random windows (``nn.FractionalMaxPool2d``), reproducible from ``--seed``."""

    kernel_size: tuple[int, int]
    output_size: tuple[int, int] | None = None
    output_ratio: tuple[float, float] | None = None

    op: ClassVar[str] = "fractionalmaxpool"
    torch_names: ClassVar[tuple[str, ...]] = ("FractionalMaxPool2d",)
    args: ClassVar[tuple[str, ...]] = ("kernel_size", "output_size", "output_ratio", "return_indices")
    converters: ClassVar[dict] = {
        "kernel_size": PAIR1,
        "output_size": to_optional(PAIR1),
        "output_ratio": to_optional(lambda v: _ratio_pair(v)),
    }
    ignored: ClassVar[tuple[str, ...]] = ("return_indices",)
    dtype_policy: ClassVar[str] = "float"
    local: ClassVar[bool] = False

    def validate(self) -> None:
        if (self.output_size is None) == (self.output_ratio is None):
            raise SpecError(
                f"{self.op}: give exactly one of output_size and output_ratio",
                "for example fractionalmaxpool:k=3,output_ratio=0.5",
            )

    def _out(self, h: int, w: int) -> tuple[ar.SizeResult, ar.SizeResult]:
        size = self.output_size or (None, None)
        ratio = self.output_ratio or (None, None)
        return (
            ar.fractional_output_size(h, self.kernel_size[0], size[0], ratio[0]),
            ar.fractional_output_size(w, self.kernel_size[1], size[1], ratio[1]),
        )

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = _require_spatial(self, shape)
        rh, rw = self._out(h, w)
        for axis, n_in, r, k in (("H", h, rh, self.kernel_size[0]), ("W", w, rw, self.kernel_size[1])):
            _check_positive(self, axis, n_in, r)
            if r.size + k - 1 > n_in:
                raise PlanError(
                    f"{self.label()} on {axis}={n_in}: output {r.size} + kernel {k} − 1 > {n_in}",
                    "torch needs output_size + kernel_size − 1 ≤ input size",
                )
        from fractions import Fraction

        windows = ((self.kernel_size[0], Fraction(h, rh.size)), (self.kernel_size[1], Fraction(w, rw.size)))
        ops = n * c * rh.size * rw.size * self.kernel_size[0] * self.kernel_size[1]
        return Inference((n, c, rh.size, rw.size), {"H": rh.formula, "W": rw.formula}, windows, 0, ops)

    def apply(self, x, run):
        import torch
        import torch.nn.functional as F

        rh, rw = self._out(x.shape[-2], x.shape[-1])
        generator = torch.Generator(device="cpu").manual_seed(run.seed)
        samples = torch.rand((x.shape[0], x.shape[1], 2), generator=generator, dtype=x.dtype).to(x.device)
        return F.fractional_max_pool2d(
            x, self.kernel_size, output_size=(rh.size, rw.size), _random_samples=samples
        )


def _ratio_pair(value: Any) -> tuple[float, float]:
    value = _parse_text(value)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = (value, value)
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
    torch_names: ClassVar[tuple[str, ...]] = ("MaxUnpool2d",)
    args: ClassVar[tuple[str, ...]] = ("kernel_size", "stride", "padding")
    converters: ClassVar[dict] = {
        "kernel_size": to_optional(PAIR1),
        "stride": to_optional(PAIR1),
        "padding": to_optional(PAIR0),
        "output_size": to_optional(PAIR1),
    }
    dtype_policy: ClassVar[str] = "native"
    local: ClassVar[bool] = False
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
        n, c, h, w = _require_spatial(self, shape)
        if not ctx.pool_stack:
            raise PlanError(
                f"stage {ctx.index} maxunpool has no maxpool before it to pair with",
                "put a maxpool earlier in the pipeline (maxunpool needs its indices)",
            )
        pool_index, pool, pool_input = ctx.pool_stack.pop()
        if (c, h, w) != tuple(pool_output_shape(pool, pool_input))[1:] or n != pool_input[0]:
            raise PlanError(
                f"stage {ctx.index} maxunpool gets {ar.format_shape(shape)} but its maxpool (stage "
                f"{pool_index}) produced {ar.format_shape(pool_output_shape(pool, pool_input))}",
                "maxunpool needs the pooled shape back: keep the stages between them shape-preserving",
            )
        kernel = self.kernel_size or tuple(ar.effective_kernel(k, d) for k, d in zip(pool.kernel_size, pool.dilation))
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
        out = (n, c, sizes[0], sizes[1])
        windows = ((1, ar.Fraction(1, stride[0])), (1, ar.Fraction(1, stride[1])))
        return Inference(out, formulas, windows, 0, math.prod(shape), pairs_with=pool_index)

    def apply(self, x, run):
        # F.max_unpool2d's own kernel has no integer (uint8) version and checks output_size
        # against its kernel/stride, which the plan has already done with the real geometry.
        # Its semantics are a scatter of each value to its flat index in the output plane.
        from .errors import PoolcliError

        indices, size = run.take_indices(self)
        n, c = x.shape[0], x.shape[1]
        area = size[0] * size[1]
        flat = indices.reshape(n, c, -1)
        if flat.numel() and int(flat.max()) >= area:
            raise PoolcliError(
                f"{self.label()}: a maxpool index ({int(flat.max())}) lies outside the "
                f"{size[0]}×{size[1]} output",
                "leave output_size out: it defaults to the paired maxpool's input size",
            )
        out = x.new_zeros((n, c, area))
        out.scatter_(2, flat, x.reshape(n, c, -1))
        return out.reshape(n, c, size[0], size[1])


def pool_output_shape(pool: MaxPool, shape: Shape) -> Shape:
    out, _, _ = _pool_sizes(pool, shape, pool.kernel_size, pool.stride, pool.padding, pool.dilation, pool.ceil_mode)
    return out


@dataclass(frozen=True)
class Pad(Stage):
    """Explicit padding, (left, right, top, bottom) as ``nn.ZeroPad2d``; modes as ``F.pad``."""

    padding: tuple[int, int, int, int]
    mode: str = "constant"
    value: float = 0.0

    op: ClassVar[str] = "pad"
    torch_names: ClassVar[tuple[str, ...]] = (
        "ZeroPad2d", "ConstantPad2d", "ReflectionPad2d", "ReplicationPad2d", "CircularPad2d",
    )
    args: ClassVar[tuple[str, ...]] = ("padding", "value")
    converters: ClassVar[dict] = {
        "padding": to_padding4,
        "mode": to_choice("constant", "reflect", "replicate", "circular"),
        "value": to_float,
    }
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

    def validate(self) -> None:
        if min(self.padding) < 0:
            raise SpecError(f"{self.op}: padding={_compact(self.padding)} is negative", "use amounts ≥ 0")

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = _require_spatial(self, shape)
        left, right, top, bottom = self.padding
        if self.mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
            raise PlanError(
                f"{self.label()} on {h}×{w}: reflect padding must be smaller than the input",
                "use replicate, or less padding",
            )
        if self.mode == "circular" and (max(top, bottom) > h or max(left, right) > w):
            raise PlanError(
                f"{self.label()} on {h}×{w}: circular padding can wrap at most once", "use less padding"
            )
        rh, rw = ar.pad_output_size(h, top, bottom), ar.pad_output_size(w, left, right)
        out = (n, c, rh.size, rw.size)
        return Inference(out, {"H": rh.formula, "W": rw.formula}, ((1, 1), (1, 1)), 0, math.prod(out))

    def apply(self, x, run):
        import torch.nn.functional as F

        if self.mode == "constant":
            fill = self.value * run.scale
            if not x.is_floating_point():
                import torch

                limits = torch.iinfo(x.dtype)
                if fill != int(fill) or not limits.min <= fill <= limits.max:  # 0.5, −1 or 2 on uint8
                    x = x.float()
            return F.pad(x, self.padding, mode="constant", value=fill)
        source = x if x.is_floating_point() else x.float()
        return F.pad(source, self.padding, mode=self.mode).to(x.dtype)


class Activation(Stage):
    """An element-wise stage: shape, receptive field and jump unchanged; one op per element."""

    dtype_policy: ClassVar[str] = "unit"
    ignored: ClassVar[tuple[str, ...]] = ("inplace",)

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        formula = None
        if len(shape) == 4:
            formula = {"H": f"unchanged = {shape[2]}", "W": f"unchanged = {shape[3]}"}
        return Inference(tuple(shape), formula, None, 0, math.prod(shape))


@dataclass(frozen=True)
class ReLU(Activation):
    """max(0, x) element-wise (``nn.ReLU``)."""

    op: ClassVar[str] = "relu"
    torch_names: ClassVar[tuple[str, ...]] = ("ReLU",)
    args: ClassVar[tuple[str, ...]] = ("inplace",)

    def apply(self, x, run):
        return x.relu()


@dataclass(frozen=True)
class Sigmoid(Activation):
    """1 / (1 + e^−x) element-wise (``nn.Sigmoid``): LeNet's activation."""

    op: ClassVar[str] = "sigmoid"
    torch_names: ClassVar[tuple[str, ...]] = ("Sigmoid",)

    def apply(self, x, run):
        return x.sigmoid()


@dataclass(frozen=True)
class Tanh(Activation):
    """tanh(x) element-wise (``nn.Tanh``)."""

    op: ClassVar[str] = "tanh"
    torch_names: ClassVar[tuple[str, ...]] = ("Tanh",)

    def apply(self, x, run):
        return x.tanh()


@dataclass(frozen=True)
class LeakyReLU(Activation):
    """x for x ≥ 0, negative_slope·x below (``nn.LeakyReLU``, slope 0.01): ``leakyrelu:0.2``."""

    negative_slope: float = 0.01

    op: ClassVar[str] = "leakyrelu"
    torch_names: ClassVar[tuple[str, ...]] = ("LeakyReLU",)
    args: ClassVar[tuple[str, ...]] = ("negative_slope", "inplace")
    converters: ClassVar[dict] = {"negative_slope": to_float}

    def apply(self, x, run):
        import torch.nn.functional as F

        return F.leaky_relu(x, self.negative_slope)


@dataclass(frozen=True)
class Grayscale(Stage):
    """C → 1 by ITU-R 601-2 luma, L = 0.299 R + 0.587 G + 0.114 B, as Pillow's mode L."""

    op: ClassVar[str] = "grayscale"

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = _require_spatial(self, shape)
        if c not in (1, 2, 3, 4):
            raise PlanError(f"grayscale needs 1 to 4 channels (L, LA, RGB, RGBA), got C={c}", "")
        formula = {"H": f"unchanged = {h}", "W": f"unchanged = {w}"}
        return Inference((n, 1, h, w), formula, ((1, 1), (1, 1)), 0, n * h * w * min(c, 3))

    def apply(self, x, run):
        import torch

        if x.shape[1] <= 2:
            return x[:, :1].float()
        weights = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
        return (x[:, :3].float() * weights).sum(dim=1, keepdim=True)


@dataclass(frozen=True)
class Flatten(Stage):
    """N×C×H×W → N×(C·H·W), as LeNet's ``Flatten`` before its linear layers."""

    start_dim: int = 1
    end_dim: int = -1

    op: ClassVar[str] = "flatten"
    torch_names: ClassVar[tuple[str, ...]] = ("Flatten",)
    args: ClassVar[tuple[str, ...]] = ("start_dim", "end_dim")
    converters: ClassVar[dict] = {"start_dim": to_int(), "end_dim": to_int()}
    dtype_policy: ClassVar[str] = "native"
    local: ClassVar[bool] = False

    def validate(self) -> None:
        if (self.start_dim, self.end_dim) != (1, -1):
            raise SpecError("flatten: only start_dim=1, end_dim=-1 is supported", "N×C×H×W → N×(C·H·W)")

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        features = math.prod(shape[1:])
        text = "·".join(str(d) for d in shape[1:])
        return Inference((shape[0], features), {"features": f"{text} = {features}"}, None, 0, 0)

    def apply(self, x, run):
        return x.flatten(1)


@dataclass(frozen=True)
class Linear(Stage):
    """y = x·Wᵀ + b on flattened features (``nn.Linear``), random weights from ``--seed``."""

    out_features: int
    in_features: int | None = None
    bias: bool = True
    seed: int | None = None

    op: ClassVar[str] = "linear"
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
    local: ClassVar[bool] = False

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

    def apply(self, x, run):
        import torch

        features = x.shape[1]
        weight, bias = random_uniform_weights(
            run.stage_seed(self), (self.out_features, features), features, self.bias
        )
        w = torch.from_numpy(weight).to(x.device)
        y = x.float() @ w.T
        if bias is not None:
            y = y + torch.from_numpy(bias).to(x.device)
        return y


def random_uniform_weights(seed: int, shape: tuple[int, ...], fan_in: int, with_bias: bool):
    """torch's default init range U(−1/√fan_in, 1/√fan_in), drawn from numpy for any engine."""
    import numpy as np

    rng = np.random.default_rng(seed)
    bound = 1.0 / math.sqrt(fan_in)
    weight = rng.uniform(-bound, bound, size=shape).astype(np.float32)
    bias = rng.uniform(-bound, bound, size=shape[0]).astype(np.float32) if with_bias else None
    return weight, bias


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

    op: ClassVar[str] = "conv"
    torch_names: ClassVar[tuple[str, ...]] = ("Conv2d",)
    args: ClassVar[tuple[str, ...]] = (
        "in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation", "groups",
        "bias", "padding_mode",
    )
    compact_args: ClassVar[tuple[str, ...]] = ("filter",)
    label_first: ClassVar[tuple[str, ...]] = ("in_channels", "out_channels", "kernel_size")
    torch_presets: ClassVar[dict[str, dict[str, Any]]] = {"Conv2d": {"bias": True}}
    converters: ClassVar[dict] = {
        "filter": lambda v: _filter_name(v),
        "weight": to_matrix,
        "weight_file": lambda v: _text(v, "a path to a .npy or .csv file"),
        "stride": PAIR1,
        "padding": to_conv_padding,
        "dilation": PAIR1,
        "padding_mode": to_choice("zeros", "reflect", "replicate", "circular"),
        "bias": lambda v: _bias(v),
        "channels": to_choice("depthwise", "sum"),
        "in_channels": to_int(1),
        "out_channels": to_int(1),
        "kernel_size": PAIR1,
        "sigma": to_positive_float,
        "groups": to_int(1),
        "seed": to_optional(to_int(0)),
    }

    def validate(self) -> None:
        sources = [n for n in ("filter", "weight", "weight_file") if getattr(self, n) is not None]
        random = self.in_channels is not None or self.out_channels is not None
        if random:
            sources.append("in_channels/out_channels")
        if len(sources) != 1:
            raise SpecError(
                "conv: give exactly one of filter=, weight=, weight_file= or nn.Conv2d's channels"
                + (f" (got {', '.join(sources)})" if sources else ""),
                "for example conv:filter=sobel-x,p=1 or conv:weight=0 1; 2 3",
            )
        if random:
            if None in (self.in_channels, self.out_channels, self.kernel_size):
                raise SpecError("conv: nn.Conv2d needs in_channels, out_channels and kernel_size", "")
            if self.in_channels % self.groups or self.out_channels % self.groups:
                raise SpecError(
                    f"conv: in_channels={self.in_channels} and out_channels={self.out_channels} "
                    f"must be divisible by groups={self.groups}",
                    "torch requires it",
                )
        elif self.bias is True:
            raise SpecError("conv: bias=true (random) needs nn.Conv2d's channels", "give bias a number")
        if self.filter is not None and self.filter not in ("box", "gaussian"):
            if self.kernel_size is not None or self.sigma is not None:
                raise SpecError(f"conv: filter {self.filter!r} has a fixed size", "k= and sigma= apply to box and gaussian")
        if self.filter in ("box", "gaussian") and self.kernel_size is not None and self.kernel_size[0] != self.kernel_size[1]:
            raise SpecError(
                f"conv: filter {self.filter!r} with kernel_size={_compact(self.kernel_size)}", "box and gaussian are square: give one size, like k=5"
            )
        if self.sigma is not None and self.filter != "gaussian":
            raise SpecError(f"conv: sigma={self.sigma:g} without filter=gaussian", "sigma applies to the gaussian filter only")
        if not random and (self.weight is not None or self.weight_file is not None):
            if self.kernel_size is not None:
                raise SpecError(
                    f"conv: kernel_size={_compact(self.kernel_size)} with a weight", "the weight's own shape sets the size"
                )
        if not random and self.groups != 1:
            raise SpecError(
                f"conv: groups={self.groups} without nn.Conv2d's channels",
                "groups follow from the weight: use channels=depthwise or a 4-D weight",
            )
        if self.padding == "same" and self.stride != (1, 1):
            raise SpecError("conv: padding=same needs stride 1", "torch does not support same padding for strided convolutions")
        object.__setattr__(self, "_kernel", self._load_kernel())

    def _load_kernel(self) -> tuple | None:
        if self.weight is not None:
            return self.weight
        if self.filter is not None:
            from .filters import named_filter

            k = self.kernel_size[0] if self.kernel_size else None
            return to_matrix(named_filter(self.filter, k, self.sigma))
        if self.weight_file is not None:
            try:
                return to_matrix(read_weight_file(self.weight_file))
            except ValueError as exc:
                raise SpecError(
                    f"conv: weight_file={self.weight_file} is not a usable kernel", f"expected {exc}"
                ) from None
        return None

    @property
    def kernel(self) -> tuple | None:
        """The weights as nested tuples (None for nn.Conv2d's random weights)."""
        return self.__dict__.get("_kernel")

    @property
    def dtype_policy(self) -> str:  # type: ignore[override]
        return "float" if self.bias in (0, 0.0, False) else "unit"

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

    def padding_lrtb(self) -> tuple[int, int, int, int]:
        """Padding per side (left, right, top, bottom); 'same' puts any odd extra at the end."""
        if self.padding == "valid":
            return (0, 0, 0, 0)
        kh, kw = self._kernel_hw()
        if self.padding == "same":
            top, bottom = ar.same_padding(kh, self.dilation[0])
            left, right = ar.same_padding(kw, self.dilation[1])
            return (left, right, top, bottom)
        ph, pw = self.padding
        return (pw, pw, ph, ph)

    def _kernel_hw(self) -> tuple[int, int]:
        if self.kernel is None:
            return self.kernel_size  # type: ignore[return-value]
        return matrix_shape(self.kernel)[-2:]  # type: ignore[return-value]

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        n, c, h, w = _require_spatial(self, shape)
        (o, i, kh, kw), groups = self.weight_shape(c)
        kernel_shape = matrix_shape(self.kernel) if self.kernel is not None else None
        if self.kernel is None and self.in_channels != c:
            raise PlanError(f"{self.label()} expects in_channels={self.in_channels}, got C={c}", f"use in_channels={c}")
        if kernel_shape is not None and len(kernel_shape) == 3 and kernel_shape[0] != c:
            raise PlanError(
                f"{self.label()}: a {ar.format_shape(kernel_shape)} weight needs C={kernel_shape[0]}, got C={c}",
                "give one kernel per input channel, or a 2-D kernel for all",
            )
        if kernel_shape is not None and len(kernel_shape) == 4 and groups == 0:
            raise PlanError(
                f"{self.label()}: a weight with I={i} input channels does not divide C={c}", "use I = C"
            )
        if kernel_shape is not None and len(kernel_shape) == 4 and o % groups:
            raise PlanError(
                f"{self.label()}: a {ar.format_shape(kernel_shape)} weight on C={c} runs as {groups} groups, "
                f"and O={o} is not divisible by {groups}",
                "torch requires out_channels divisible by groups: use I = C or O a multiple of C/I",
            )
        left, right, top, bottom = self.padding_lrtb()
        if self.padding_mode == "reflect" and (max(top, bottom) >= h or max(left, right) >= w):
            raise PlanError(
                f"{self.label()} on {h}×{w}: reflect padding ({top},{bottom} × {left},{right}) must be "
                "smaller than the input",
                "use padding_mode=replicate, or less padding",
            )
        if self.padding_mode == "circular" and (max(top, bottom) > h or max(left, right) > w):
            raise PlanError(
                f"{self.label()} on {h}×{w}: circular padding ({top},{bottom} × {left},{right}) can wrap "
                "at most once",
                "use less padding than the input size",
            )
        rh = ar.conv_output_size(h, kh, self.stride[0], top, bottom, self.dilation[0])
        rw = ar.conv_output_size(w, kw, self.stride[1], left, right, self.dilation[1])
        _check_positive(self, "H", h, rh)
        _check_positive(self, "W", w, rw)
        out = (n, o, rh.size, rw.size)
        with_bias = self.bias not in (0, 0.0, False)
        params = o * i * kh * kw + (o if with_bias else 0)
        spans = (ar.effective_kernel(kh, self.dilation[0]), ar.effective_kernel(kw, self.dilation[1]))
        windows = ((spans[0], self.stride[0]), (spans[1], self.stride[1]))
        return Inference(out, {"H": rh.formula, "W": rw.formula}, windows, params, math.prod(out) * i * kh * kw)

    def weights(self, channels: int, seed: int):
        """(weight O×I×kh×kw, bias O or None, groups) as float32 numpy arrays."""
        import numpy as np

        shape, groups = self.weight_shape(channels)
        if self.kernel is None:
            fan_in = shape[1] * shape[2] * shape[3]
            weight, bias = random_uniform_weights(seed, shape, fan_in, self.bias is True)
            if not isinstance(self.bias, bool) and self.bias != 0:  # a given constant bias
                bias = np.full(shape[0], float(self.bias), dtype=np.float32)
            return weight, bias, groups
        kernel = np.asarray(self.kernel, dtype=np.float32)
        if kernel.ndim == 2:
            weight = np.broadcast_to(kernel, shape)
        elif kernel.ndim == 3:
            weight = kernel[:, None] if self.channels == "depthwise" else kernel[None]
        else:
            weight = kernel
        bias = None
        if self.bias not in (0, 0.0, False):
            bias = np.full(shape[0], float(self.bias), dtype=np.float32)
        return np.array(weight, dtype=np.float32, order="C"), bias, groups  # a writable copy for torch

    def apply(self, x, run):
        import torch
        import torch.nn.functional as F

        weight, bias, groups = self.weights(x.shape[1], run.stage_seed(self))
        x = x if x.is_floating_point() else x.float()
        mode = {"zeros": "constant"}.get(self.padding_mode, self.padding_mode)
        padding = self.padding_lrtb()
        if any(padding):
            x = F.pad(x, padding, mode=mode)
        w = torch.from_numpy(weight).to(x.device)
        b = torch.from_numpy(bias).to(x.device) if bias is not None else None
        return F.conv2d(x, w, b, self.stride, 0, self.dilation, groups)


def _filter_name(value: Any) -> str:
    from .filters import NAMES

    if not isinstance(value, str) or value not in NAMES:
        raise ValueError(f"a filter name: {', '.join(NAMES)}")
    return value


def _text(value: Any, expected: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(expected)
    return value


def _bias(value: Any) -> Any:
    if isinstance(value, bool) or (isinstance(value, str) and value.lower() in ("true", "false")):
        return to_bool(value)
    return to_float(value)


def read_weight_file(path: str) -> Any:
    """A conv weight from ``.npy`` (no pickles) or ``.csv``/``.txt`` (a 2-D matrix)."""
    import numpy as np

    try:
        if path.lower().endswith(".npy"):
            return np.load(path, allow_pickle=False)
        return np.loadtxt(path, delimiter="," if path.lower().endswith(".csv") else None, ndmin=2)
    except (OSError, ValueError, EOFError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise SpecError(f"conv: weight_file={path}: {reason}", "give a .npy or .csv matrix") from None


STAGE_CLASSES: tuple[type[Stage], ...] = (
    MaxPool, AvgPool, MinPool, LPPool, MedianPool, AdaptiveMaxPool, AdaptiveAvgPool,
    GlobalMaxPool, GlobalAvgPool, FractionalMaxPool, MaxUnpool, Pad, Conv,
    ReLU, Sigmoid, Tanh, LeakyReLU, Grayscale, Flatten, Linear,
)


def stage_class(op: str) -> type[Stage]:
    """The class for an op name, or a SpecError that lists the known ones."""
    for cls in STAGE_CLASSES:
        if cls.op == op:
            return cls
    raise SpecError(f"unknown op {op!r}", f"known ops: {', '.join(known_ops())}")


def known_ops() -> list[str]:
    return [cls.op for cls in STAGE_CLASSES]


def create_stage(op: str, values: dict[str, Any]) -> Stage:
    """The stage ``op`` from loose parameter values (already keyword-named)."""
    return stage_class(op).create(values)
