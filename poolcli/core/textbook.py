"""The textbook's window-by-window loops in pure Python: ``explain``'s arithmetic and the test oracle.

d2l's ``pool2d`` and ``corr2d`` slide a window over X and reduce each position with a Python
loop. These are the same loops, generalised to torch's parameters (padding, stride, dilation,
ceil_mode, count_include_pad, divisor_override) and to every window poolcli has (min, lp and
median reductions, adaptive and global windows, maxunpool, padding in every mode), on plain
lists of lists: no numpy, no torch. The seeds' numbers::

    >>> X = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
    >>> pool2d(X, (2, 2), stride=(1, 1))
    [[4.0, 5.0], [7.0, 8.0]]
    >>> pool2d(X, (2, 2), stride=(1, 1), reduction="avg")
    [[2.0, 3.0], [5.0, 6.0]]
    >>> corr2d(X, [[0.0, 1.0], [2.0, 3.0]])
    [[19.0, 25.0], [37.0, 43.0]]

``windows`` yields each window's cells (value, kind, kernel tap) both for these numbers and for
``poolcli.core.walkthrough``, so what explain shows is what was computed. The test suite checks
every loop against torch's kernels.
"""

from __future__ import annotations

import math
from typing import Any, Iterator, NamedTuple, Sequence

from .arithmetic import adaptive_windows as adaptive_ranges
from .arithmetic import effective_kernel
from .ops.pointwise import Grayscale

REAL, PAD, OUTSIDE = "real", "pad", "outside"
Plane = list  # a 2-D plane: a list of rows, each a list of floats


# ----------------------------------------------------------------------------------- numbers


def fmt(value: Any) -> str:
    """A number as the textbook writes it: 4 (not 4.0), 1.3333, -inf, nan.

    >>> fmt(4.0), fmt(4 / 3), fmt(-0.0), fmt(float("-inf")), fmt(0.5)
    ('4', '1.3333', '0', '-inf', '0.5')
    """
    v = float(value)
    if math.isnan(v):
        return "nan"
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    text = f"{v:.4f}".rstrip("0").rstrip(".")
    if text in ("0", "-0") or abs(v) >= 1e15:
        return f"{v:.4g}"
    return text


def operand(value: float) -> str:
    """A number inside a product or power: negatives in parentheses, ``3×(-1)``.

    >>> operand(-1.0), operand(2.5)
    ('(-1)', '2.5')
    """
    text = fmt(value)
    return f"({text})" if text.startswith("-") else text


def plane_of(values: Any) -> Plane:
    """Any 2-D array-like (lists, a numpy array) as a list of lists of floats."""
    rows = values.tolist() if hasattr(values, "tolist") else values
    return [[float(v) for v in row] for row in rows]


def zeros(h: int, w: int) -> Plane:
    return [[0.0] * w for _ in range(h)]


# ---------------------------------------------------------------------------------- geometry


def pair(value: Any) -> tuple[int, int]:
    """An int or a 2-sequence as (a, b)."""
    if isinstance(value, int):
        return (value, value)
    a, b = value
    return (int(a), int(b))


def lrtb(padding: Any) -> tuple[int, int, int, int]:
    """(ph, pw) or an int → (left, right, top, bottom); a 4-tuple is taken as (l, r, t, b).

    >>> lrtb(1), lrtb((1, 2)), lrtb((0, 1, 2, 3))
    ((1, 1, 1, 1), (2, 2, 1, 1), (0, 1, 2, 3))
    """
    if isinstance(padding, int):
        return (padding, padding, padding, padding)
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        ph, pw = padding
        return (pw, pw, ph, ph)
    if len(padding) == 4:
        return padding  # type: ignore[return-value]
    raise ValueError(f"padding must be an int, (ph, pw) or (l, r, t, b), got {padding!r}")


def output_length(n: int, k: int, s: int, before: int, after: int, d: int = 1, ceil_mode: bool = False) -> int:
    """Windows along one axis, as torch counts them (a ceil_mode window may not start in the
    right padding; ``core.arithmetic.pool_output_size`` writes the same rule out as a formula).

    >>> output_length(3, 2, 1, 0, 0), output_length(5, 3, 3, 1, 1, 1, True)
    (2, 2)
    """
    numerator = n + before + after - effective_kernel(k, d)
    if ceil_mode:
        out = -((-numerator) // s) + 1
        if (out - 1) * s >= n + before:
            out -= 1
    else:
        out = numerator // s + 1
    return max(out, 0)


def source_index(pos: int, n: int, mode: str) -> int:
    """The real index a padded position copies under reflect, replicate or circular padding.

    >>> source_index(-1, 3, "reflect"), source_index(-1, 3, "replicate"), source_index(-1, 3, "circular")
    (1, 0, 2)
    """
    if 0 <= pos < n:
        return pos
    if mode == "reflect":
        return -pos if pos < 0 else 2 * (n - 1) - pos
    if mode == "replicate":
        return min(max(pos, 0), n - 1)
    if mode == "circular":
        return pos % n
    raise ValueError(f"no source for padding mode {mode!r}")


class Cell(NamedTuple):
    """One position a window reads: input coordinates (negative or ≥ size in the padding), its
    kind (``real``, ``pad`` or ``outside`` the padded input: a ceil_mode overhang), its value
    (the padded value for ``pad``, nan ``outside``), its kernel position, and for reflect,
    replicate and circular padding the real cell it copies."""

    row: int
    col: int
    kind: str
    value: float
    tap: tuple[int, int] = (0, 0)
    source: tuple[int, int] | None = None


class Window(NamedTuple):
    """One output position: ``out`` = (i, j), ``index`` its row-major number, its cells in scan
    order (rows, then columns: torch's order), and a note on how it was placed (adaptive)."""

    out: tuple[int, int]
    index: int
    cells: tuple[Cell, ...]
    note: str | None = None

    def real(self) -> list[Cell]:
        return [c for c in self.cells if c.kind == REAL]

    def of_kind(self, kind: str) -> list[Cell]:
        return [c for c in self.cells if c.kind == kind]


class Padded:
    """A 2-D plane seen through padding (left, right, top, bottom): classifies and reads any
    (row, col). ``mode`` is constant (``value``), reflect, replicate or circular.

    >>> Padded([[1.0, 2.0]], (1, 1, 0, 0), "reflect").cell(0, -1).value
    2.0
    """

    def __init__(self, X: Plane, padding: tuple[int, int, int, int], mode: str = "constant", value: float = 0.0):
        self.X = X
        self.H, self.W = len(X), (len(X[0]) if X else 0)
        self.left, self.right, self.top, self.bottom = padding
        self.mode = "constant" if mode == "zeros" else mode
        self.value = float(value)

    def kind(self, r: int, c: int) -> str:
        if 0 <= r < self.H and 0 <= c < self.W:
            return REAL
        if -self.top <= r < self.H + self.bottom and -self.left <= c < self.W + self.right:
            return PAD
        return OUTSIDE

    def cell(self, r: int, c: int, tap: tuple[int, int] = (0, 0)) -> Cell:
        kind = self.kind(r, c)
        if kind == REAL:
            return Cell(r, c, REAL, self.X[r][c], tap)
        if kind == OUTSIDE:
            return Cell(r, c, OUTSIDE, math.nan, tap)
        if self.mode == "constant":
            return Cell(r, c, PAD, self.value, tap)
        sr, sc = source_index(r, self.H, self.mode), source_index(c, self.W, self.mode)
        return Cell(r, c, PAD, self.X[sr][sc], tap, (sr, sc))


def window_shape(
    shape: Sequence[int], kernel_size: Any, stride: Any = None, padding: Any = (0, 0),
    dilation: Any = (1, 1), ceil_mode: bool = False,
) -> tuple[int, int]:
    """(H_out, W_out) of ``windows`` with these parameters on a plane of ``shape`` (…, H, W).

    >>> window_shape((4, 4), 3, 2, 1)
    (2, 2)
    """
    H, W = shape[-2:]
    kh, kw = pair(kernel_size)
    sh, sw = pair(stride if stride is not None else kernel_size)
    dh, dw = pair(dilation)
    left, right, top, bottom = lrtb(padding)
    return (output_length(H, kh, sh, top, bottom, dh, ceil_mode), output_length(W, kw, sw, left, right, dw, ceil_mode))


class Sliding:
    """A kernel sliding over a padded plane: its output size, and any window's cells on demand,
    so that a walkthrough can show window k without keeping the others.

    >>> Sliding([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]], 2, 1).window(1, 1).cells[0]
    Cell(row=1, col=1, kind='real', value=4.0, tap=(0, 0), source=None)
    """

    def __init__(self, X: Plane, kernel_size: Any, stride: Any = None, padding: Any = (0, 0), dilation: Any = (1, 1),
                 ceil_mode: bool = False, *, pad_value: float = 0.0, padding_mode: str = "constant"):
        self.kh, self.kw = pair(kernel_size)
        self.sh, self.sw = pair(stride if stride is not None else kernel_size)
        self.dh, self.dw = pair(dilation)
        self.padding = lrtb(padding)
        self.plane = Padded(X, self.padding, padding_mode, pad_value)
        self.shape = window_shape((self.plane.H, self.plane.W), (self.kh, self.kw), (self.sh, self.sw),
                                  self.padding, (self.dh, self.dw), ceil_mode)

    def rows(self) -> tuple[int, int]:
        """[r0, r1) in input coordinates that the padded plane and every window cover."""
        left, right, top, bottom = self.padding
        span = (self.shape[0] - 1) * self.sh + effective_kernel(self.kh, self.dh)
        return (-top, max(self.plane.H + bottom, span - top))

    def cols(self) -> tuple[int, int]:
        left, right, top, bottom = self.padding
        span = (self.shape[1] - 1) * self.sw + effective_kernel(self.kw, self.dw)
        return (-left, max(self.plane.W + right, span - left))

    def window(self, i: int, j: int) -> Window:
        left, _, top, _ = self.padding
        H, W, X, make = self.plane.H, self.plane.W, self.plane.X, tuple.__new__
        cells = []
        for a in range(self.kh):
            r = i * self.sh - top + a * self.dh
            inside = 0 <= r < H
            for b in range(self.kw):
                c = j * self.sw - left + b * self.dw
                if inside and 0 <= c < W:
                    cells.append(make(Cell, (r, c, REAL, X[r][c], (a, b), None)))  # type: ignore[index]
                else:
                    cells.append(self.plane.cell(r, c, (a, b)))
        return make(Window, ((i, j), i * self.shape[1] + j, tuple(cells), None))

    def __iter__(self) -> Iterator[Window]:
        ho, wo = self.shape
        for i in range(ho):
            for j in range(wo):
                yield self.window(i, j)


def windows(
    X: Any, kernel_size: Any, stride: Any = None, padding: Any = (0, 0), dilation: Any = (1, 1),
    ceil_mode: bool = False, *, pad_value: float = 0.0, padding_mode: str = "constant",
) -> Iterator[Window]:
    """Every window of a sliding kernel over the 2-D plane X, row-major, with its cells.

    ``padding`` is (ph, pw) or (left, right, top, bottom); padded cells carry ``pad_value``
    (constant) or the value they copy (``padding_mode`` reflect, replicate, circular).

    >>> [c.value for c in next(windows([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]], 2, 1)).cells]
    [0.0, 1.0, 3.0, 4.0]
    """
    return iter(Sliding(plane_of(X), kernel_size, stride, padding, dilation, ceil_mode,
                        pad_value=pad_value, padding_mode=padding_mode))


class AdaptiveWindows:
    """torch's adaptive windows [⌊i·n/out⌋, ⌈(i+1)·n/out⌉) on a plane, any window on demand;
    ``output_size`` None keeps that dimension.

    >>> AdaptiveWindows([[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0]], (1, 3)).window(0, 1).note
    'rows [0, 2) × cols [1, 4)'
    """

    def __init__(self, X: Plane, output_size: Any):
        self.X = X
        H, W = len(X), len(X[0])
        oh, ow = output_size
        self.shape = (oh or H, ow or W)
        self.row_ranges, self.col_ranges = adaptive_ranges(H, self.shape[0]), adaptive_ranges(W, self.shape[1])
        self.plane = Padded(X, (0, 0, 0, 0))

    def rows(self) -> tuple[int, int]:
        return (0, self.plane.H)

    def cols(self) -> tuple[int, int]:
        return (0, self.plane.W)

    def window(self, i: int, j: int) -> Window:
        (r0, r1), (c0, c1) = self.row_ranges[i], self.col_ranges[j]
        cells = tuple(Cell(r, c, REAL, self.X[r][c], (r - r0, c - c0)) for r in range(r0, r1) for c in range(c0, c1))
        return Window((i, j), i * self.shape[1] + j, cells, f"rows [{r0}, {r1}) × cols [{c0}, {c1})")

    def __iter__(self) -> Iterator[Window]:
        for i in range(self.shape[0]):
            for j in range(self.shape[1]):
                yield self.window(i, j)


class GlobalWindow(AdaptiveWindows):
    """One window over the whole plane.

    >>> GlobalWindow([[1.0, 2.0], [3.0, 4.0]]).window(0, 0).note
    'all 2×2 = 4 values'
    """

    def __init__(self, X: Plane):
        super().__init__(X, (1, 1))

    def window(self, i: int, j: int) -> Window:
        H, W = len(self.X), len(self.X[0])
        cells = tuple(Cell(r, c, REAL, self.X[r][c], (r, c)) for r in range(H) for c in range(W))
        return Window((0, 0), 0, cells, f"all {H}×{W} = {H * W} values")


# ------------------------------------------------------------------------------- reductions


def extreme(window: Window, width: int, negate: bool = False) -> tuple[float, int]:
    """(value, flat index) as torch's max_pool2d scans: the first strictly larger value wins, a
    nan always wins; the index starts at the first in-range tap even when no real cell is in
    the window. ``negate``: the minimum, as max pooling of −X.

    >>> extreme(Window((0, 0), 0, (Cell(0, 0, REAL, 3.0), Cell(0, 1, REAL, 5.0))), 2)
    (5.0, 1)
    """
    rows = [c.row for c in window.cells if c.row >= 0]
    cols = [c.col for c in window.cells if c.col >= 0]
    index = (min(rows) if rows else 0) * width + (min(cols) if cols else 0)
    best = -math.inf
    for cell in window.cells:
        if cell.kind != REAL:
            continue
        v = -cell.value if negate else cell.value
        if v > best or math.isnan(v):
            best, index = v, cell.row * width + cell.col
    return (-best if negate else best), index


def power(x: float, p: float) -> float:
    """x^p as numpy's float64 power: nan for a negative base with a fractional p, inf on overflow."""
    try:
        return math.pow(x, p)
    except OverflowError:
        return math.inf
    except ValueError:
        return math.inf if x == 0 else math.nan


def lp_norm(window: Window, p: float, area: int) -> float:
    """torch's lp_pool2d: (Σ x^p)^(1/p); a window clipped by ceil_mode is averaged over its real
    cells and scaled by kh·kw, as torch computes it through avg_pool2d.

    >>> lp_norm(Window((0, 0), 0, (Cell(0, 0, REAL, 3.0), Cell(0, 1, REAL, 4.0))), 2.0, 2)
    5.0
    """
    values = [c.value for c in window.real()]
    if math.isinf(p):
        return max((abs(v) for v in values), default=0.0)
    total = 0.0
    for v in values:
        total += power(v, p)
    if values and len(values) != area:
        total = total / len(values) * area
    return power(total, 1.0 / p)


def median(window: Window) -> float:
    """The lower middle of the window's real values (torch.median), nan for none."""
    values = sorted(c.value for c in window.real() if not math.isnan(c.value))
    return values[(len(values) - 1) // 2] if values else math.nan


def avg_divisor(window: Window, count_include_pad: bool, divisor_override: int | None) -> int:
    """What avg_pool2d divides by: the override, or the real cells (and padded ones if counted)."""
    if divisor_override:
        return int(divisor_override)
    return len(window.real()) + (len(window.of_kind(PAD)) if count_include_pad else 0)


def average(window: Window, count_include_pad: bool = True, divisor_override: int | None = None) -> float:
    total = sum(c.value for c in window.real())
    if count_include_pad and not divisor_override:
        total += sum(c.value for c in window.of_kind(PAD))
    divisor = avg_divisor(window, count_include_pad, divisor_override)
    return total / divisor if divisor else math.nan


def reduce(window: Window, reduction: str, *, width: int = 0, count_include_pad: bool = True,
           divisor_override: int | None = None, norm_type: float | None = None, area: int | None = None) -> float:
    """One window reduced as torch does it: ``max``, ``min``, ``avg``, ``lp`` or ``median``
    (the reductions that ops name in their ``reduction`` attribute)."""
    if reduction == "max":
        return extreme(window, width)[0]
    if reduction == "min":
        return extreme(window, width, negate=True)[0]
    if reduction == "avg":
        return average(window, count_include_pad, divisor_override)
    if reduction == "lp":
        if norm_type is None:
            raise ValueError("lp pooling needs norm_type")
        return lp_norm(window, float(norm_type), area or len(window.cells))
    if reduction == "median":
        return median(window)
    raise ValueError(f"unknown reduction {reduction!r}")


def pad_value_for(reduction: str) -> float:
    """What padding holds for a reduction: -inf for max (it never wins), +inf for min, else 0."""
    return -math.inf if reduction == "max" else math.inf if reduction == "min" else 0.0


# ------------------------------------------------------------------------------ the loops


def pool2d(
    X: Any, kernel_size: Any, stride: Any = None, padding: Any = (0, 0), dilation: Any = (1, 1),
    ceil_mode: bool = False, reduction: str = "max", count_include_pad: bool = True,
    divisor_override: int | None = None, norm_type: float | None = None, return_indices: bool = False,
) -> Any:
    """d2l's ``pool2d`` with torch's parameters, on a 2-D plane → a 2-D list of floats.

    ``reduction`` is max, min, avg, lp (``norm_type`` p) or median (the lower middle value of the
    real cells). Max and min never see the padding (it is -inf/+inf); avg counts padded zeros when
    ``count_include_pad``; ``return_indices`` adds max pooling's flat input indices. d2l's
    padded max pool on arange(16)::

    >>> X = [[float(4 * r + c) for c in range(4)] for r in range(4)]
    >>> pool2d(X, 3, stride=2, padding=1, return_indices=True)
    ([[5.0, 7.0], [13.0, 15.0]], [[5, 7], [13, 15]])
    """
    X = plane_of(X)
    sliding = Sliding(X, kernel_size, stride, padding, dilation, ceil_mode, pad_value=pad_value_for(reduction))
    ho, wo = sliding.shape
    out, indices = zeros(ho, wo), [[0] * wo for _ in range(ho)]
    width = sliding.plane.W
    area = sliding.kh * sliding.kw
    for window in sliding:
        i, j = window.out
        if reduction == "max":
            out[i][j], indices[i][j] = extreme(window, width)
        else:
            out[i][j] = reduce(window, reduction, width=width, count_include_pad=count_include_pad,
                               divisor_override=divisor_override, norm_type=norm_type, area=area)
    return (out, indices) if return_indices else out


def adaptive_pool2d(X: Any, output_size: Any, reduction: str = "max") -> Plane:
    """Adaptive max or avg pooling of a 2-D plane to ``output_size``.

    >>> adaptive_pool2d([[0.0, 1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0, 9.0]], (1, 3), "avg")
    [[3.0, 4.5, 6.0]]
    """
    X = plane_of(X)
    grid = AdaptiveWindows(X, output_size)
    out = zeros(*grid.shape)
    for window in grid:
        out[window.out[0]][window.out[1]] = reduce(window, reduction, width=len(X[0]))
    return out


def corr2d(
    X: Any, K: Any, stride: Any = (1, 1), padding_lrtb: Any = (0, 0, 0, 0), dilation: Any = (1, 1),
    padding_mode: str = "zeros",
) -> Plane:
    """d2l's ``corr2d`` (cross-correlation: Σ X·K over each window) with stride, per-side padding
    in any padding mode, and dilation.

    >>> corr2d([[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]], [[0.0, 1.0], [2.0, 3.0]], padding_lrtb=(1, 0, 0, 0))
    [[9.0, 19.0, 25.0], [21.0, 37.0, 43.0]]
    """
    X, K = plane_of(X), plane_of(K)
    sliding = Sliding(X, (len(K), len(K[0])), stride, lrtb(padding_lrtb), dilation, padding_mode=padding_mode)
    out = zeros(*sliding.shape)
    for window in sliding:
        out[window.out[0]][window.out[1]] = sum(cell.value * K[cell.tap[0]][cell.tap[1]] for cell in window.cells)
    return out


def unpool2d(values: Any, indices: Any, output_size: Any) -> Plane:
    """MaxUnpool2d on one plane: each value goes to its flat index in an ``output_size`` plane of
    zeros (a later value wins where two windows chose the same cell).

    >>> unpool2d([[5.0, 7.0]], [[1, 2]], (2, 2))
    [[0.0, 5.0], [7.0, 0.0]]
    """
    oh, ow = pair(output_size)
    out = [0.0] * (oh * ow)
    for row, index_row in zip(plane_of(values), indices.tolist() if hasattr(indices, "tolist") else indices):
        for value, index in zip(row, index_row):
            if not 0 <= int(index) < oh * ow:
                raise ValueError(f"index {index} is outside the {oh}×{ow} output")
            out[int(index)] = value
    return [out[r * ow:(r + 1) * ow] for r in range(oh)]


def pad2d(X: Any, padding_lrtb: Any, mode: str = "constant", value: float = 0.0) -> Plane:
    """F.pad on a 2-D plane: (left, right, top, bottom), constant/reflect/replicate/circular.

    >>> pad2d([[1.0, 2.0]], (1, 1, 0, 0), "reflect"), pad2d([[1.0]], (1, 0, 0, 0), value=9.0)
    ([[2.0, 1.0, 2.0, 1.0]], [[9.0, 1.0]])
    """
    left, right, top, bottom = lrtb(padding_lrtb)
    plane = Padded(plane_of(X), (left, right, top, bottom), mode, value)
    return [[plane.cell(i - top, j - left).value for j in range(plane.W + left + right)]
            for i in range(plane.H + top + bottom)]


def luma(R: Any, G: Any, B: Any, integer: bool = False) -> Plane:
    """ITU-R 601-2 luma of three planes, pixel by pixel through ``Grayscale.pixel`` (Pillow's
    fixed point for ``integer`` pixels, its float weights otherwise).

    >>> luma([[255.0]], [[0.0]], [[0.0]], integer=True), luma([[0.0]], [[2.0]], [[4.0]])
    ([[76.0]], [[1.63]])
    """
    return [[float(Grayscale.pixel(r, g, b, integer)) for r, g, b in zip(*rows)]
            for rows in zip(plane_of(R), plane_of(G), plane_of(B))]
