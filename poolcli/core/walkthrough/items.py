"""The walkthrough's data: segments and lines, canvases, the items a reader goes through
(``Heading``, ``Text``, ``Grid``, ``Vector``, ``Step``), the selection and the context across stages.

    >>> plain((element((0, 1)), Segment("max("), Terms((Segment("1"), Segment("2")), ", "), Segment(")"), *result(2.0)))
    'Y[0, 1] = max(1, 2) = 2'
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, NamedTuple, Protocol, Sequence

from ..textbook import OUTSIDE, PAD, REAL, Cell, Padded, fmt

WINDOW_LIMIT = 8  # windows shown per plane for inputs larger than SMALL_SIDE × SMALL_SIDE
SMALL_SIDE = 16
SMALL_WINDOWS = 64  # a small input shows every window up to this many
MAX_PLANES = 3  # channels (per sample) walked through; the rest are computed, not shown
MAX_TERMS = 24  # terms of an expression written out before it is abbreviated
LINEAR_MAX_FEATURES = 16

# kinds of segment: how a piece of a line is meant (render chooses the look)
VALUE, LABEL, HEADING, MUTED, PADDED = "value", "label", "heading", "muted", "padded"


# ------------------------------------------------------------------------------------ items


class Segment(NamedTuple):
    """A piece of a line: its text and its kind (None: plain)."""

    text: str
    kind: str | None = None


class Terms(NamedTuple):
    """The terms of an expression joined by ``sep``; render may shorten a long list."""

    items: tuple[Segment, ...]
    sep: str


Line = tuple  # of Segment and Terms


def plain(line: Line) -> str:
    """A line's text in full (every term).

    >>> plain((Segment("max("), Terms((Segment("1"), Segment("2")), ", "), Segment(")")))
    'max(1, 2)'
    """
    return "".join(piece.sep.join(s.text for s in piece.items) if isinstance(piece, Terms) else piece.text
                   for piece in line)


@dataclass(frozen=True)
class Canvas:
    """A plane drawn as a grid over rows [r0, r1) and cols [c0, c1) in input coordinates, its
    padding ring and a ceil_mode overhang included."""

    plane: Padded
    rows: tuple[int, int]
    cols: tuple[int, int]

    @classmethod
    def of(cls, X: Any) -> "Canvas":
        plane = Padded(X, (0, 0, 0, 0))
        return cls(plane, (0, plane.H), (0, plane.W))

    def text(self, r: int, c: int) -> tuple[str, str]:
        """A cell as written, and its kind: padding as its value (±∞ for max/min), overhang ``·``."""
        kind = self.plane.kind(r, c)
        if kind == REAL:
            return fmt(self.plane.X[r][c]), REAL
        if kind == PAD:
            value = self.plane.cell(r, c).value
            return ("-∞" if value == -math.inf else "+∞" if value == math.inf else fmt(value)), PAD
        return "·", OUTSIDE


@dataclass(frozen=True)
class Heading:
    text: str


@dataclass(frozen=True)
class Text:
    line: Line


@dataclass(frozen=True)
class Grid:
    """A titled grid; ``cut_title`` (with ``{limit}``) replaces the title when render cuts it.
    ``step`` is the step the grid shows when a picture draws it differently from the text (a
    transposed convolution's kernel copy: text prints where it lands, a picture animates it)."""

    title: Line
    canvas: Canvas
    highlight: tuple[tuple[int, int], ...] = ()
    cut_title: str | None = None
    step: "Step | None" = None


@dataclass(frozen=True)
class Vector:
    title: str
    values: tuple[float, ...]


@dataclass(frozen=True)
class PlaneView:
    """The plane a step belongs to, for pictures: the input canvas, the whole output plane,
    the conv kernel (or None), the reduction's name, what the canvas is when it is not X, and
    what one step is when it is not a window or an output element (``input cell``)."""

    canvas: Canvas
    output: list
    kernel: list | None = None
    reduction: str | None = None
    name: str | None = None
    unit: str | None = None


@dataclass(frozen=True)
class Step:
    """One output element: where (``out``), its value, its line (``Y[i, j] = … = value``), notes,
    the input cells it read, and the canvas to mark them on (None: the line alone). ``plane`` is
    the plane it belongs to (for pictures), ``winner`` the cell a max or min took.

    A step that writes other output cells than ``out`` (a transposed convolution's kernel copy
    lands on several) lists them in ``targets`` (None: ``out`` alone), with ``sums`` the values
    they hold after it (empty: the plane's final values), and in ``cut`` the positions beyond
    the output that a crop (padding) removes, as (row, column, value)."""

    out: tuple[int, ...]
    value: float
    line: Line
    notes: tuple[str, ...] = ()
    cells: tuple[Cell, ...] = ()
    canvas: Canvas | None = None
    plane: PlaneView | None = None
    winner: Cell | None = None
    targets: tuple[tuple[int, int], ...] | None = None
    sums: tuple[float, ...] = ()
    cut: tuple[tuple[int, int, float], ...] = ()

    @property
    def written(self) -> tuple[tuple[int, int], ...]:
        """The output cells this step writes: ``targets``, or ``out`` alone."""
        return (tuple(self.out),) if self.targets is None else self.targets  # type: ignore[return-value]


Item = Any  # Heading | Text | Grid | Vector | Step


def muted(text: str) -> Text:
    return Text((Segment(text, MUTED),))


def label(text: str) -> Line:
    return (Segment(text, LABEL),)


# -------------------------------------------------------------------------------- selection


@dataclass(frozen=True)
class Select:
    """Which output elements a plane shows: one (``step``: row-major number, ``only``: (i, j)),
    all of them (``every``, for pictures), or by default the first ``WINDOW_LIMIT`` of a big plane."""

    step: int | None = None
    only: tuple[int, int] | None = None
    every: bool = False

    def flat(self, shape: tuple[int, int]) -> int | None:
        """The selected flat index in an output plane, -1 when it does not exist there, None: all."""
        ho, wo = shape
        if self.step is not None:
            return self.step if self.step < ho * wo else -1
        if self.only is not None:
            i, j = self.only
            return i * wo + j if i < ho and j < wo else -1
        return None

    @property
    def active(self) -> bool:
        return self.step is not None or self.only is not None

    def describe(self) -> str:
        return f"--step {self.step}" if self.step is not None else f"--only {self.only[0]},{self.only[1]}"  # type: ignore[index]


def as_select(select: Any) -> Select:
    """None, a Select, an element number (``--step``) or an (i, j) pair (``--only``)."""
    if select is None:
        return Select()
    if isinstance(select, Select):
        return select
    if isinstance(select, int):
        return Select(step=select)
    return Select(only=(int(select[0]), int(select[1])))


def shown(total: int, input_hw: tuple[int, int], select: Select, shape: tuple[int, int],
          what: str = "windows") -> tuple[range | list[int], str | None]:
    """The output indices to walk through in one plane, and a note for the rest."""
    chosen = select.flat(shape)
    if chosen is not None:
        if chosen < 0:
            return [], f"({select.describe()} is outside this stage's {shape[0]}×{shape[1]} output)"
        return [chosen], None
    small = input_hw[0] <= SMALL_SIDE and input_hw[1] <= SMALL_SIDE and total <= SMALL_WINDOWS
    if select.every or small or total <= WINDOW_LIMIT:
        return range(total), None
    return range(WINDOW_LIMIT), f"... {total - WINDOW_LIMIT} more {what} (use --step N or --only i,j to see one)"


# --------------------------------------------------------------------------------- context


class WeightSource(Protocol):
    """Where conv and linear weights come from (``kernels.weights``, supplied by the caller, so
    that core needs no numpy): nested lists of floats."""

    def conv(self, stage: Any, channels: int, seed: int) -> tuple[list, list | None, int]: ...

    def linear(self, stage: Any, features: int, seed: int) -> tuple[list, list | None]: ...


@dataclass
class WalkContext:
    """State across the stages of one walkthrough: maxpool indices for maxunpool, the run seed
    (stage seeds follow ``Stage.seed_for``, as ``run``), the stage's index, the weight source,
    and whether the values are still an image's integers (luma then uses Pillow's fixed point)."""

    seed: int = 0
    index: int = 0
    indices: dict[int, list] = field(default_factory=dict)
    weights: WeightSource | None = None
    integer: bool = False

    def stage_seed(self, stage: Any) -> int:
        return stage.seed_for(self.seed, self.index)


@dataclass
class StageWalk:
    """One stage walked through: its output (nested lists) and its items, made when read."""

    stage: Any
    plan: Any
    output: list
    heading: Heading
    body: Callable[[], Iterator[Item]]

    def items(self) -> Iterator[Item]:
        yield self.heading
        yield from self.body()


# -------------------------------------------------------------------------- shared pieces


def planes(n: int, c: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(n) for b in range(c)]


def plane_title(n_c: tuple[int, int], shape: Sequence[int], what: str = "channel") -> Text | None:
    n, c = n_c
    if shape[0] == 1 and shape[1] == 1:
        return None
    return Text((Segment(f"sample {n}, {what} {c}" if shape[0] > 1 else f"{what} {c}", HEADING),))


def planes_note(total: int, what: str = "channels") -> Text:
    return muted(f"... {total - MAX_PLANES} more {what} not shown (computed the same way)")


def footer(plan: Any, output: list | None = None, highlight: Sequence[tuple[int, int]] = ()) -> Iterator[Item]:
    """The output grid (when given), the stage's size formulas and the plan's notes."""
    if output is not None:
        yield Grid(label(f"output Y ({len(output)}×{len(output[0])})"), Canvas.of(output), tuple(highlight))
    for axis, text in (getattr(plan, "formula", None) or {}).items():
        yield Text((Segment(f"{axis}_out" if axis in ("H", "W") else axis, LABEL), Segment(f": {text}")))
    for note in getattr(plan, "notes", None) or []:
        yield muted(note)


def plane_end(rest: str | None, plan: Any, output: list | None = None,
              highlight: Sequence[tuple[int, int]] = ()) -> Iterator[Item]:
    """What closes a plane's walk: the note on the elements not shown, then the footer."""
    if rest:
        yield muted(rest)
    yield from footer(plan, output, highlight)


def count_of(n: int, noun: str) -> str:
    """``1 padded cell``, ``3 padded cells``."""
    return f"{n} {noun}{'s' * (n != 1)}"


def nth(n: int) -> str:
    """``every 2nd row``; 1 reads every single one."""
    return {1: "single", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def element(out: Sequence[int]) -> Segment:
    return Segment(f"Y[{', '.join(str(v) for v in out)}] = ")


def result(value: float) -> tuple[Segment, Segment]:
    return Segment(" = "), Segment(fmt(value), VALUE)


def terms(values: Sequence[Segment], sep: str) -> Terms:
    return Terms(tuple(values), sep)


def nested_depth(value: Any) -> int:
    depth = 0
    while isinstance(value, (list, tuple)):
        value, depth = value[0], depth + 1
    return depth


def shape_of(x: Any) -> tuple[int, ...]:
    shape = []
    while isinstance(x, (list, tuple)):
        shape.append(len(x))
        x = x[0] if x else None
    return tuple(shape)


def elementwise(function: Callable[[float], float], x: Any) -> Any:
    return [elementwise(function, v) for v in x] if isinstance(x, list) else function(x)


