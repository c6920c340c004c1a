"""What every op is: the ``Stage`` base class and the records it answers planning with.

A stage is a frozen dataclass whose fields mirror ``torch.nn`` (pairs normalised to (h, w)).
``create`` converts and validates loose values (from a spec, a TOML table or CLI options) with
exactly the constraints torch applies, so a bad stage fails before any image is read. Each op
answers, for one input shape, its output shape and formula (``infer``); for tiling, the input
window each output reads (``windows``); for the memory estimate, its scratch (``scratch_elements``).
Computing is elsewhere: one kernel per engine in ``poolcli.kernels``, looked up by the op.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, Callable, ClassVar

from ...errors import PlanError, SpecError
from .. import arithmetic as ar
from ..values import show, to_bool, to_strict_bool

Shape = tuple[int, ...]

ALIASES = {"kernel_size": "k", "stride": "s", "padding": "p", "dilation": "d", "ceil_mode": "ceil"}


@dataclass(frozen=True)
class AxisWindow:
    """One stage along one axis: output o reads the inputs i with i·up in [o·stride − before,
    o·stride − before + span): for a shrinking stage (up = 1) the input [o·stride − before,
    o·stride − before + span); for an enlarging one (stride 1, up = u) the inputs whose u-fold
    positions fall in that window.

    ``min_length``: the shortest tile the stage can run on and still pad as the whole image does
    (reflect padding p reads p + 1 real pixels).
    """

    span: int
    stride: int
    before: int
    after: int
    min_length: int = 1
    up: int = 1
    enlarging: bool = False  # convtranspose and upsample, even at factor 1: the tile's output starts at lo·up


POINTWISE = AxisWindow(1, 1, 0, 0)


@dataclass
class PlanContext:
    """State carried across stages while planning: the maxpool stack that maxunpool pops."""

    pool_stack: list[tuple[int, Any, Shape]] = field(default_factory=list)
    index: int = 0


@dataclass(frozen=True)
class Inference:
    """A stage's own answer for one input shape; the planner adds receptive fields."""

    output_shape: Shape
    formula: dict[str, str] | None
    field_step: tuple[tuple[Any, Any], tuple[Any, Any]] | None  # receptive field: ((span_h, stride_h), (span_w, stride_w))
    params_count: int
    ops: int
    notes: tuple[str, ...] = ()
    pairs_with: int | None = None


def require_spatial(stage: "Stage", shape: Shape) -> tuple[int, int, int, int]:
    if len(shape) != 4:
        raise PlanError(
            f"stage {stage.label()} needs an N×C×H×W input, got {ar.format_shape(shape)}",
            "put flatten and linear after the spatial stages",
        )
    return shape  # type: ignore[return-value]


def check_positive(stage: "Stage", axis: str, n: int, result: ar.SizeResult) -> None:
    if result.size < 1:
        raise PlanError(
            f"{stage.label()} on {axis}={n} gives {axis}_out={result.size}: {result.formula}",
            "use a smaller kernel or stride, or more padding",
        )


def count(shape: Shape) -> int:
    return math.prod(shape)


class Stage:
    """Base of every op. Subclasses are frozen dataclasses and set the class variables."""

    op: ClassVar[str]
    torch_names: ClassVar[tuple[str, ...]] = ()
    args: ClassVar[tuple[str, ...]] = ()  # positional order, as in torch's constructor
    compact_args: ClassVar[tuple[str, ...] | None] = None  # bare values in a compact spec (default: args)
    torch_presets: ClassVar[dict[str, dict[str, Any]]] = {}  # values implied by a torch class name
    torch_args: ClassVar[dict[str, tuple[str, ...]]] = {}  # positional order where a torch class differs
    converters: ClassVar[dict[str, Callable[[Any], Any]]] = {}
    torch_converters: ClassVar[dict[str, Callable[[Any], Any]]] = {}  # where a torch call reads a value otherwise
    ignored: ClassVar[tuple[str, ...]] = ()  # torch arguments that change nothing here
    averaging: ClassVar[bool] = False  # works on premultiplied colour for images with alpha
    dtype_policy: ClassVar[str] = "float"  # "native": integer dtype ok; "float": scaled floats; "unit": values in [0,1]
    deterministic: ClassVar[bool] = True  # False: each image draws its own random windows
    keeps_range: ClassVar[bool] = False  # values in [0, 1] in, values in [0, 1] out (pools, unpool, pad)
    label_defaults: ClassVar[dict[str, Any]] = {}  # values the label leaves out besides the defaults
    label_first: ClassVar[tuple[str, ...]] = ()  # parameters the label names before the rest
    # How ``explain`` walks through it: the name of a walker in ``core.walkthrough.WALKERS``
    # (None: refused, with ``unexplained`` as the reason), and for window reductions which one.
    walkthrough: ClassVar[str | None] = None
    unexplained: ClassVar[str] = ""
    reduction: ClassVar[str | None] = None

    @classmethod
    def check_torch_values(cls, values: dict[str, Any], torch_name: str) -> None:
        """Refuse, in torch's words, a combination of a torch call's values that torch refuses
        although each value alone converts (none by default)."""

    @classmethod
    def create(cls, values: dict[str, Any], *, torch_name: str | None = None) -> "Stage":
        """Convert and validate loose values; raise SpecError naming the stage and the token.

        ``torch_name``: the values come from a call of that torch class, which takes exactly what
        torch takes (``converters_for``, and bools only as True or False)."""
        torch_call = torch_name is not None
        if torch_call:
            cls.check_torch_values(values, torch_name)
        converters = cls.converters_for(torch_name)
        converted: dict[str, Any] = {}
        for name, value in values.items():
            if name in cls.ignored:
                continue
            convert = converters.get(name)
            if torch_call and convert is to_bool:
                convert = to_strict_bool
            if convert is None:
                known = ", ".join(f.name for f in parameters(cls))
                raise SpecError(
                    f"{cls.op}: unknown parameter {name!r}",
                    f"{cls.op} takes {known}" if known else f"{cls.op} takes no parameters",
                )
            try:
                converted[name] = convert(value)
            except ValueError as exc:
                raise SpecError(f"{cls.op}: {name}={show(value)} is not valid", f"expected {exc}") from None
        missing = [
            f.name for f in parameters(cls)
            if f.name not in converted and f.default is MISSING and f.default_factory is MISSING
        ]
        if missing:
            raise SpecError(f"{cls.op}: missing {', '.join(missing)}", cls.missing_hint(missing[0]))
        stage = cls(**converted)  # type: ignore[call-arg]
        stage.validate()
        return stage

    @classmethod
    def converters_for(cls, torch_name: str | None) -> dict[str, Callable[[Any], Any]]:
        """The converters for values from a spec or table (None), or from a call of ``torch_name``."""
        return {**cls.converters, **cls.torch_converters} if torch_name else cls.converters

    @classmethod
    def missing_hint(cls, name: str) -> str:
        return f"for example {cls.op}:{name}=2"

    def validate(self) -> None:
        """Torch's constraints that involve several parameters."""

    def params(self) -> dict[str, Any]:
        """The parameters as JSON values (pairs as lists)."""
        return {f.name: jsonable(getattr(self, f.name)) for f in parameters(self)}

    def label(self) -> str:
        """The compact spec that recreates this stage, for the table: ``maxpool:k=2x2,s=2x2``."""
        parts = []
        ordered = sorted(parameters(self), key=lambda f: f.name not in self.label_first)
        for f in ordered:
            value = getattr(self, f.name)
            if value == f.default or value is None or value == self.label_defaults.get(f.name, f.default):
                continue
            if f.name == "stride" and f.default is None and value == getattr(self, "kernel_size", None):
                continue
            parts.append(f"{ALIASES.get(f.name, f.name)}={compact(value)}")
        return f"{self.op}:{','.join(parts)}" if parts else self.op

    def infer(self, shape: Shape, ctx: PlanContext) -> Inference:
        raise NotImplementedError

    def windows(self) -> tuple[AxisWindow, AxisWindow] | str:
        """The (H, W) input window of each output, for tiled runs; or why the stage cannot run on
        tiles (it needs the whole plane)."""
        return f"{self.op} needs the whole plane"

    def scratch_elements(self, input_shape: Shape, output_shape: Shape) -> int:
        """Elements the kernels hold besides input and output (a float32 copy of the input, say):
        an upper bound, so that a run that fits the estimate fits memory."""
        return count(input_shape)

    def seed_for(self, run_seed: int, index: int) -> int:
        """The seed of this stage's random weights or windows: its own ``seed=``, else ``--seed``
        plus its index, so that two random stages of one pipeline differ. ``run`` and ``explain``
        both draw from it."""
        own = getattr(self, "seed", None)
        return own if own is not None else run_seed + index


def parameters(stage: Any) -> list[Any]:
    """The dataclass fields that are the op's parameters (not what io attached, like a file's weights)."""
    return [f for f in fields(stage) if not f.metadata.get("hidden")]


def compact(value: Any) -> str:
    """A parameter as the label writes it: (2, 2) → '2', (2, 3) → '2x3', True → 'true'."""
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return str(value[0]) if value[0] == value[1] else f"{value[0]}x{value[1]}"
    if isinstance(value, tuple):
        return "[" + ",".join(compact(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def jsonable(value: Any) -> Any:
    if isinstance(value, tuple):
        return [jsonable(v) for v in value]
    return value
