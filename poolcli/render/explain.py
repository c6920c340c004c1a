"""The textbook's window-by-window loops, for ``poolcli explain`` and as the test oracle.

d2l's ``pool2d`` and ``corr2d`` slide a window over X and reduce each position with a Python
loop. This module does the same, generalised to torch's parameters (padding, stride, dilation,
ceil_mode, count_include_pad, divisor_override) and to every stage poolcli has (min, lp and
median pools, adaptive and global pools, maxunpool, pad modes, activations), and it renders each
window with its cells and its arithmetic in numbers::

    >>> X = np.arange(9.0).reshape(3, 3)
    >>> pool2d(X, (2, 2), stride=(1, 1)).tolist()
    [[4.0, 5.0], [7.0, 8.0]]
    >>> corr2d(X, np.array([[0.0, 1.0], [2.0, 3.0]])).tolist()
    [[19.0, 25.0], [37.0, 43.0]]

The same ``windows`` generator yields the cells both for the numbers and for the rendering
(``max(0, 1, 3, 4) = 4``, ``0×0 + 1×1 + 3×2 + 4×3 = 19``), so what is shown is what was
computed. Pure Python and numpy: torch is never imported here, and the test suite checks these
loops against torch's kernels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, NamedTuple, Sequence

import numpy as np

from ..core.arithmetic import format_shape
from ..errors import PoolcliError, UsageError

REAL, PAD, OUTSIDE = "real", "pad", "outside"

WINDOW_LIMIT = 8  # windows shown per channel for inputs larger than SMALL_SIDE × SMALL_SIDE
SMALL_SIDE = 16
SMALL_WINDOWS = 64  # a small input shows every window up to this many
MAX_PLANES = 3  # channels (per sample) walked through; the rest are computed, not shown
GRID_VIEW = 16  # rows/columns of a matrix printed before it is cut
FULL_GRID = 8  # a window is drawn on the whole (padded) input up to this size, else cropped
MAX_TERMS = 24  # terms of an expression written out before it is abbreviated
MAX_ELEMENTS = 65536  # values in any tensor of the walkthrough (use --crop for images)
LINEAR_MAX_FEATURES = 16

HIGHLIGHT = "bold black on yellow"
HIGHLIGHT_PAD = "black on grey62"
PAD_STYLE = "dim"


# ----------------------------------------------------------------------------------- numbers


def fmt(value: Any) -> str:
    """A number as the walkthrough writes it: 4 (not 4.0), 1.3333, -inf, nan.

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


def _count(n: int, noun: str) -> str:
    """``1 padded cell``, ``3 padded cells``."""
    return f"{n} {noun}{'s' * (n != 1)}"


def _pad_symbol(mode: str) -> str:
    """How padding is drawn: -∞ for max (it never wins), +∞ for min, else the padded value."""
    return "-∞" if mode == "max" else "+∞" if mode == "min" else "0"


def _nth(n: int) -> str:
    """``every 2nd row``; 1 reads every single one."""
    return {1: "single", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")


def _operand(value: float) -> str:
    """A number inside a product or power: negatives in parentheses, ``3×(-1)``."""
    text = fmt(value)
    return f"({text})" if text.startswith("-") else text


# ---------------------------------------------------------------------------------- geometry


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)):
        return (int(value), int(value))
    a, b = value
    return (int(a), int(b))


def _lrtb(padding: Any) -> tuple[int, int, int, int]:
    """(ph, pw) or an int → (left, right, top, bottom); a 4-tuple is taken as (l, r, t, b)."""
    if isinstance(padding, (int, np.integer)):
        p = int(padding)
        return (p, p, p, p)
    padding = tuple(int(p) for p in padding)
    if len(padding) == 2:
        ph, pw = padding
        return (pw, pw, ph, ph)
    if len(padding) == 4:
        return padding  # type: ignore[return-value]
    raise ValueError(f"padding must be an int, (ph, pw) or (l, r, t, b), got {padding!r}")


def output_length(n: int, k: int, s: int, before: int, after: int, d: int = 1, ceil_mode: bool = False) -> int:
    """Windows along one axis, as torch counts them (a ceil_mode window may not start in the
    right padding).

    >>> output_length(3, 2, 1, 0, 0), output_length(5, 3, 3, 1, 1, 1, True)
    (2, 2)
    """
    numerator = n + before + after - d * (k - 1) - 1
    if ceil_mode:
        out = -((-numerator) // s) + 1
        if (out - 1) * s >= n + before:
            out -= 1
    else:
        out = numerator // s + 1
    return max(out, 0)


def _source(pos: int, n: int, mode: str) -> int:
    """The real index a padded position copies under reflect/replicate/circular padding."""
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
    """One output position: ``out`` = (i, j), ``index`` its row-major number, and its cells in
    scan order (rows, then columns: torch's order)."""

    out: tuple[int, int]
    index: int
    cells: tuple[Cell, ...]
    note: str | None = None

    def real(self) -> list[Cell]:
        return [c for c in self.cells if c.kind == REAL]

    def of_kind(self, kind: str) -> list[Cell]:
        return [c for c in self.cells if c.kind == kind]


class _Padded:
    """A 2-D plane seen through padding: classifies and reads any (row, col)."""

    def __init__(self, X: np.ndarray, lrtb: tuple[int, int, int, int], mode: str = "constant", value: float = 0.0):
        self.X = X
        self.H, self.W = X.shape
        self.left, self.right, self.top, self.bottom = lrtb
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
            return Cell(r, c, REAL, float(self.X[r, c]), tap)
        if kind == OUTSIDE:
            return Cell(r, c, OUTSIDE, math.nan, tap)
        if self.mode == "constant":
            return Cell(r, c, PAD, self.value, tap)
        sr, sc = _source(r, self.H, self.mode), _source(c, self.W, self.mode)
        return Cell(r, c, PAD, float(self.X[sr, sc]), tap, (sr, sc))


def window_shape(
    shape: Sequence[int], kernel_size: Any, stride: Any = None, padding: Any = (0, 0),
    dilation: Any = (1, 1), ceil_mode: bool = False,
) -> tuple[int, int]:
    """(H_out, W_out) of ``windows`` with these parameters."""
    H, W = shape[-2:]
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    dh, dw = _pair(dilation)
    left, right, top, bottom = _lrtb(padding)
    return (output_length(H, kh, sh, top, bottom, dh, ceil_mode), output_length(W, kw, sw, left, right, dw, ceil_mode))


def windows(
    X: Any, kernel_size: Any, stride: Any = None, padding: Any = (0, 0), dilation: Any = (1, 1),
    ceil_mode: bool = False, *, pad_value: float = 0.0, padding_mode: str = "constant",
) -> Iterator[Window]:
    """Every window of a sliding kernel over the 2-D array X, row-major, with its cells.

    ``padding`` is (ph, pw) or (left, right, top, bottom); padded cells carry ``pad_value``
    (constant) or the value they copy (``padding_mode`` reflect, replicate, circular).

    >>> [[c.value for c in w.cells] for w in windows(np.arange(9.0).reshape(3, 3), 2, 1)][0]
    [0.0, 1.0, 3.0, 4.0]
    """
    X = np.asarray(X)
    kh, kw = _pair(kernel_size)
    sh, sw = _pair(stride if stride is not None else kernel_size)
    dh, dw = _pair(dilation)
    lrtb = _lrtb(padding)
    left, _, top, _ = lrtb
    plane = _Padded(X, lrtb, padding_mode, pad_value)
    H, W = X.shape
    ho, wo = window_shape(X.shape, (kh, kw), (sh, sw), lrtb, (dh, dw), ceil_mode)
    values = X.tolist()
    make = tuple.__new__  # Cell(...) without NamedTuple's keyword handling: this loop is hot
    row_taps = [[(a, i * sh - top + a * dh) for a in range(kh)] for i in range(ho)]
    col_taps = [[(b, j * sw - left + b * dw) for b in range(kw)] for j in range(wo)]
    for i in range(ho):
        for j in range(wo):
            cells = []
            for a, r in row_taps[i]:
                inside = 0 <= r < H
                row = values[r] if inside else None
                for b, c in col_taps[j]:
                    if inside and 0 <= c < W:
                        cells.append(make(Cell, (r, c, REAL, float(row[c]), (a, b), None)))  # type: ignore[index]
                    else:
                        cells.append(plane.cell(r, c, (a, b)))
            yield make(Window, ((i, j), i * wo + j, tuple(cells), None))


def adaptive_ranges(n: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive windows [⌊i·n/out⌋, ⌈(i+1)·n/out⌉)."""
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def adaptive_windows(X: Any, output_size: Any) -> Iterator[Window]:
    """The windows of an adaptive pool to ``output_size`` (H, W); None keeps that dimension."""
    X = np.asarray(X)
    H, W = X.shape
    oh, ow = output_size
    oh, ow = oh or H, ow or W
    rows, cols = adaptive_ranges(H, oh), adaptive_ranges(W, ow)
    for i, (r0, r1) in enumerate(rows):
        for j, (c0, c1) in enumerate(cols):
            cells = tuple(
                Cell(r, c, REAL, float(X[r, c]), (r - r0, c - c0)) for r in range(r0, r1) for c in range(c0, c1)
            )
            yield Window((i, j), i * ow + j, cells, f"rows [{r0}, {r1}) × cols [{c0}, {c1})")


def global_window(X: Any) -> Window:
    """One window over the whole plane."""
    X = np.asarray(X)
    H, W = X.shape
    cells = tuple(Cell(r, c, REAL, float(X[r, c]), (r, c)) for r in range(H) for c in range(W))
    return Window((0, 0), 0, cells, f"all {H}×{W} = {H * W} values")


# ------------------------------------------------------------------------------- the numbers


def _extreme(window: Window, width: int, negate: bool = False) -> tuple[float, int]:
    """torch's max_pool2d scan: the first strictly larger value wins, a nan always wins; the
    index starts at the first in-range tap even when no real cell is in the window."""
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


def _lp(window: Window, p: float, area: int) -> float:
    values = [c.value for c in window.real()]
    if math.isinf(p):
        return max((abs(v) for v in values), default=0.0)
    with np.errstate(all="ignore"):
        total = float(np.sum([np.power(np.float64(v), p) for v in values])) if values else 0.0
        if len(values) != area:  # torch: avg_pool2d(x^p) over the clipped window, times kh·kw
            total = total / len(values) * area if values else 0.0
        return float(np.power(np.float64(total), 1.0 / p))


def _median(window: Window) -> float:
    values = sorted(c.value for c in window.real() if not math.isnan(c.value))
    return values[(len(values) - 1) // 2] if values else math.nan


def _avg_divisor(window: Window, count_include_pad: bool, divisor_override: int | None) -> int:
    if divisor_override:
        return int(divisor_override)
    counted = len(window.real()) + (len(window.of_kind(PAD)) if count_include_pad else 0)
    return counted


def window_value(
    window: Window, mode: str, *, width: int = 0, count_include_pad: bool = True,
    divisor_override: int | None = None, norm_type: float | None = None, area: int | None = None,
) -> float:
    """One window reduced as ``mode`` (max, min, avg, lp, median) does it in torch."""
    if mode == "max":
        return _extreme(window, width)[0]
    if mode == "min":
        return _extreme(window, width, negate=True)[0]
    if mode == "avg":
        total = sum(c.value for c in window.real())
        if count_include_pad and not divisor_override:
            total += sum(c.value for c in window.of_kind(PAD))
        divisor = _avg_divisor(window, count_include_pad, divisor_override)
        return total / divisor if divisor else math.nan
    if mode == "lp":
        if norm_type is None:
            raise ValueError("lp pooling needs norm_type")
        return _lp(window, float(norm_type), area or len(window.cells))
    if mode == "median":
        return _median(window)
    raise ValueError(f"unknown pooling mode {mode!r}")


def _pad_value_for(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf if mode == "min" else 0.0


def pool2d(
    X: Any, kernel_size: Any, stride: Any = None, padding: Any = (0, 0), dilation: Any = (1, 1),
    ceil_mode: bool = False, mode: str = "max", count_include_pad: bool = True,
    divisor_override: int | None = None, norm_type: float | None = None, return_indices: bool = False,
) -> Any:
    """d2l's ``pool2d`` with torch's parameters, on a 2-D array → a 2-D float array.

    ``mode`` is max, min, avg, lp (``norm_type`` p) or median (the lower middle value of the real
    cells). Max and min never see the padding (it is -inf/+inf); avg counts padded zeros when
    ``count_include_pad``; ``return_indices`` adds max pooling's flat input indices.

    >>> pool2d(np.arange(9.0).reshape(3, 3), 2, 1, mode="avg").tolist()
    [[2.0, 3.0], [5.0, 6.0]]
    """
    X = np.asarray(X, dtype=np.float64)
    kh, kw = _pair(kernel_size)
    ho, wo = window_shape(X.shape, (kh, kw), stride, padding, dilation, ceil_mode)
    out = np.zeros((ho, wo), dtype=np.float64)
    indices = np.zeros((ho, wo), dtype=np.int64)
    width = X.shape[1]
    for window in windows(X, (kh, kw), stride, padding, dilation, ceil_mode, pad_value=_pad_value_for(mode)):
        i, j = window.out
        if mode == "max":
            out[i, j], indices[i, j] = _extreme(window, width)
        else:
            out[i, j] = window_value(
                window, mode, width=width, count_include_pad=count_include_pad,
                divisor_override=divisor_override, norm_type=norm_type, area=kh * kw,
            )
    return (out, indices) if return_indices else out


def adaptive_pool2d(X: Any, output_size: Any, mode: str = "max") -> np.ndarray:
    """Adaptive max or avg pooling of a 2-D array to ``output_size``."""
    X = np.asarray(X, dtype=np.float64)
    oh, ow = output_size
    out = np.zeros((oh or X.shape[0], ow or X.shape[1]))
    for window in adaptive_windows(X, output_size):
        out[window.out] = window_value(window, mode, width=X.shape[1])
    return out


def corr2d(
    X: Any, K: Any, stride: Any = (1, 1), padding_lrtb: Any = (0, 0, 0, 0), dilation: Any = (1, 1),
    padding_mode: str = "zeros",
) -> np.ndarray:
    """d2l's ``corr2d`` (cross-correlation: Σ X·K over each window) with stride, per-side padding
    in any padding mode, and dilation.

    >>> corr2d(np.arange(9.0).reshape(3, 3), np.array([[0, 1], [2, 3]]))[0, 0]
    np.float64(19.0)
    """
    X = np.asarray(X, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    ho, wo = window_shape(X.shape, K.shape, stride, _lrtb(padding_lrtb), dilation)
    out = np.zeros((ho, wo))
    for window in windows(X, K.shape, stride, _lrtb(padding_lrtb), dilation, padding_mode=padding_mode):
        out[window.out] = sum(cell.value * K[cell.tap] for cell in window.cells)
    return out


def unpool2d(values: Any, indices: Any, output_size: Any) -> np.ndarray:
    """MaxUnpool2d on one plane: each value goes to its flat index in an ``output_size`` plane of
    zeros (a later value wins where two windows chose the same cell)."""
    values = np.asarray(values, dtype=np.float64)
    indices = np.asarray(indices)
    oh, ow = _pair(output_size)
    out = np.zeros(oh * ow)
    for value, index in zip(values.ravel().tolist(), indices.ravel().tolist()):
        if not 0 <= index < oh * ow:
            raise ValueError(f"index {index} is outside the {oh}×{ow} output")
        out[index] = value
    return out.reshape(oh, ow)


def pad2d(X: Any, padding_lrtb: Any, mode: str = "constant", value: float = 0.0) -> np.ndarray:
    """F.pad on a 2-D array: (left, right, top, bottom), constant/reflect/replicate/circular."""
    X = np.asarray(X, dtype=np.float64)
    left, right, top, bottom = _lrtb(padding_lrtb)
    plane = _Padded(X, (left, right, top, bottom), mode, value)
    H, W = X.shape
    out = np.zeros((H + top + bottom, W + left + right))
    for i in range(out.shape[0]):
        for j in range(out.shape[1]):
            out[i, j] = plane.cell(i - top, j - left).value
    return out


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    z = math.exp(x)
    return z / (1.0 + z)


def activation(name: str, x: float, negative_slope: float = 0.01) -> float:
    """relu, sigmoid, tanh or leakyrelu of one number."""
    if math.isnan(x):
        return x
    if name == "relu":
        return x if x > 0 else 0.0
    if name == "sigmoid":
        return _sigmoid(x)
    if name == "tanh":
        return math.tanh(x)
    if name == "leakyrelu":
        return x if x >= 0 else negative_slope * x
    raise ValueError(f"unknown activation {name!r}")


GRAY_WEIGHTS = (0.299, 0.587, 0.114)


# ----------------------------------------------------------------------------- rendering


def _text(*parts: Any) -> Any:
    from rich.text import Text

    text = Text()
    for part in parts:
        if isinstance(part, tuple):
            text.append(part[0], style=part[1])
        else:
            text.append(part)
    return text


class _Canvas:
    """Draws a plane with its padding ring and ceil_mode overhang as a grid of cells; window
    cells are bracketed (and highlighted in colour), padding is dim."""

    def __init__(self, plane: _Padded, pad_text: Callable[[int, int], str], rows: tuple[int, int], cols: tuple[int, int]):
        self.plane = plane
        self.pad_text = pad_text
        self.rows = rows  # [r0, r1) in input coordinates, padding and overhang included
        self.cols = cols

    def cell_text(self, r: int, c: int) -> tuple[str, str]:
        kind = self.plane.kind(r, c)
        if kind == REAL:
            return fmt(self.plane.X[r, c]), REAL
        if kind == PAD:
            return self.pad_text(r, c), PAD
        return "·", OUTSIDE

    def render(self, highlight: Iterable[tuple[int, int]] = (), view: tuple[int, int, int, int] | None = None,
               limit: int | None = GRID_VIEW) -> tuple[Any, bool]:
        """The grid as Text, and whether it was cut to ``limit`` rows/columns."""
        r0, r1, c0, c1 = view or (*self.rows, *self.cols)
        cut = False
        if limit is not None and r1 - r0 > limit:
            r1, cut = r0 + limit, True
        if limit is not None and c1 - c0 > limit:
            c1, cut = c0 + limit, True
        marked = set(highlight)
        cells = {(r, c): self.cell_text(r, c) for r in range(r0, r1) for c in range(c0, c1)}
        width = max([len(t) for t, _ in cells.values()] + [len(str(c)) for c in range(c0, c1)])
        label = max(len(str(r)) for r in range(r0, r1))
        text = _text(" " * (label + 1))
        for c in range(c0, c1):
            text.append(f" {str(c):>{width}} ", style="dim italic")
        for r in range(r0, r1):
            text.append("\n")
            text.append(f"{str(r):>{label}} ", style="dim italic")
            for c in range(c0, c1):
                value, kind = cells[(r, c)]
                if (r, c) in marked:
                    style = HIGHLIGHT if kind == REAL else HIGHLIGHT_PAD
                    text.append(f"[{value:>{width}}]", style=style)
                else:
                    text.append(f" {value:>{width}} ", style=None if kind == REAL else PAD_STYLE)
        return text, cut

    def window_view(self, cells: Sequence[Cell]) -> tuple[int, int, int, int] | None:
        """The whole canvas when small, else the window's box and one cell around it."""
        if self.rows[1] - self.rows[0] <= FULL_GRID and self.cols[1] - self.cols[0] <= FULL_GRID:
            return None
        rows = [c.row for c in cells] or [0]
        cols = [c.col for c in cells] or [0]
        return (
            max(min(rows) - 1, self.rows[0]), min(max(rows) + 2, self.rows[1]),
            max(min(cols) - 1, self.cols[0]), min(max(cols) + 2, self.cols[1]),
        )


def _plain_canvas(X: np.ndarray) -> _Canvas:
    plane = _Padded(X, (0, 0, 0, 0))
    return _Canvas(plane, lambda r, c: "", (0, X.shape[0]), (0, X.shape[1]))


def _matrix(title: str, X: np.ndarray, canvas: _Canvas | None = None, highlight: Iterable[tuple[int, int]] = ()) -> list[Any]:
    """A titled grid of a matrix, with a note when only its top-left corner is shown."""
    canvas = canvas or _plain_canvas(X)
    grid, cut = canvas.render(highlight)
    parts = [_text((title, "bold"))]
    if cut:
        parts[0].append(
            f"  (top-left {min(GRID_VIEW, canvas.rows[1] - canvas.rows[0])}×"
            f"{min(GRID_VIEW, canvas.cols[1] - canvas.cols[0])} shown)", style="dim"
        )
    parts.append(grid)
    return parts


def _terms(values: Sequence[tuple[str, str | None]], sep: str = ", ") -> Any:
    """Terms joined by ``sep``; a long list keeps its first and last terms around '…'."""
    shown: list[tuple[str, str | None]] = list(values)
    hidden = 0
    if len(shown) > MAX_TERMS:
        hidden = len(shown) - 14
        shown = shown[:12] + [(f"… {hidden} more …", "dim")] + shown[-2:]
    text = _text()
    for k, (term, style) in enumerate(shown):
        if k:
            text.append(sep)
        text.append(term, style=style)
    return text


def _element(out: tuple[int, int]) -> str:
    return f"Y[{out[0]}, {out[1]}] = "


def _window_part(canvas: Any, window: Any, expression: Any, notes: Sequence[str]) -> Any:
    """One output element: the input with the window's cells marked, beside ``Y[i, j] = expression``."""
    marked = [(cell.row, cell.col) for cell in window.cells]
    grid, _ = canvas.render(marked, canvas.window_view(window.cells), limit=None)
    return _window_block(grid, _text(_element(window.out)).append_text(expression), notes)


def _window_block(grid: Any, expression: Any, notes: Sequence[str]) -> Any:
    from rich.table import Table

    right = _text()
    right.append_text(expression)
    for note in notes:
        right.append("\n")
        right.append(note, style="dim")
    table = Table.grid(padding=(0, 3))
    table.add_column(no_wrap=True)
    table.add_column()
    table.add_row(grid, right)
    return table


# ---------------------------------------------------------------------------- expressions


def _pool_expression(window: Window, mode: str, value: float, *, count_include_pad: bool = True,
                     divisor_override: int | None = None, norm_type: float | None = None,
                     area: int = 1, name: str | None = None) -> tuple[Any, list[str]]:
    """``max(0, 1, 3, 4) = 4``, ``(0 + 1 + 3 + 4)/4 = 2``, ``(0^2 + 1^2)^(1/2) = 1``, … and notes."""
    real = window.real()
    pads = window.of_kind(PAD)
    outside = window.of_kind(OUTSIDE)
    notes: list[str] = []
    result = _text(" = ", (fmt(value), "bold"))
    if mode in ("max", "min"):
        text = _text(f"{name or mode}(")
        text.append_text(_terms([(fmt(c.value), None) for c in real]))
        text.append(")")
        if pads:
            notes.append(f"{_count(len(pads), 'padded cell')} ({_pad_symbol(mode)}) never win{'s' * (len(pads) == 1)}")
    elif mode == "avg":
        with_pads = count_include_pad and not divisor_override
        terms = [(fmt(c.value), PAD_STYLE if c.kind == PAD else None)
                 for c in window.cells if c.kind == REAL or (c.kind == PAD and with_pads)]
        divisor = _avg_divisor(window, count_include_pad, divisor_override)
        text = _text("(") if len(terms) > 1 else _text()
        text.append_text(_terms(terms, " + ") if terms else _text("0"))
        text.append(f"){'/'}{divisor}" if len(terms) > 1 else f"/{divisor}")
        if divisor_override:
            counted = len(real) + (len(pads) if count_include_pad else 0)
            notes.append(f"divisor_override={divisor_override} replaces the count {counted}")
        elif pads and count_include_pad:
            notes.append(f"{_count(len(pads), 'padded zero')} counted (count_include_pad=true): /{divisor}")
        elif pads:
            notes.append(f"{_count(len(pads), 'padded cell')} not counted (count_include_pad=false): /{divisor}")
    elif mode == "lp":
        p = float(norm_type)  # type: ignore[arg-type]
        if math.isinf(p):
            text = _text("max(")
            text.append_text(_terms([(f"|{fmt(c.value)}|", None) for c in real]))
            text.append(")")
        else:
            power = fmt(p)
            inner = _terms([(f"{_operand(c.value)}^{power}", None) for c in real], " + ")
            if len(real) != area:
                text = _text("((")
                text.append_text(inner)
                text.append(f")·{area}/{len(real)})^(1/{power})")
                notes.append(f"torch's lp_pool2d averages the {_count(len(real), 'cell')} inside and scales by {area}: ·{area}/{len(real)}")
            else:
                text = _text("(")
                text.append_text(inner)
                text.append(f")^(1/{power})")
    elif mode == "median":
        text = _text("median(")
        text.append_text(_terms([(fmt(c.value), None) for c in real]))
        text.append(")")
        ordered = sorted(c.value for c in real if not math.isnan(c.value))
        if len(ordered) > 1:
            which = "the middle value" if len(ordered) % 2 else "the lower of the two middle values"
            listed = " ≤ ".join(fmt(v) for v in ordered) if len(ordered) <= MAX_TERMS else f"{len(ordered)} values"
            notes.append(f"sorted {listed}: {which}")
    else:
        raise ValueError(mode)
    text.append_text(result)
    if outside:
        notes.append(
            f"{_count(len(outside), 'cell')} beyond the padded input (ceil_mode overhang): not read"
        )
    if window.note:
        notes.insert(0, window.note)
    return text, notes


def _conv_expression(groups: Sequence[tuple[Window, np.ndarray]], bias: float | None, value: float) -> tuple[Any, list[str]]:
    """``0×0 + 1×1 + 3×2 + 4×3 = 19``: input × weight per cell, one parenthesis per input channel."""
    text = _text()
    notes: list[str] = []
    several = len(groups) > 1
    for g, (window, K) in enumerate(groups):
        if g:
            text.append(" + ")
        if several:
            text.append("(")
        text.append_text(_terms(
            [(f"{_operand(c.value)}×{_operand(K[c.tap])}", PAD_STYLE if c.kind == PAD else None) for c in window.cells],
            " + ",
        ))
        if several:
            text.append(")")
    if bias is not None:
        text.append(f" + {_operand(bias)}")
        notes.append(f"+ {fmt(bias)} is the bias")
    text.append(" = ")
    text.append(fmt(value), style="bold")
    pads = [c for window, _ in groups[:1] for c in window.of_kind(PAD)]
    if pads:
        sources = [c for c in pads if c.source is not None]
        if sources:
            shown = ", ".join(f"({c.row}, {c.col})←({c.source[0]}, {c.source[1]})" for c in sources[:4])  # type: ignore[index]
            notes.append(f"padded cells copy real ones: {shown}{' …' if len(sources) > 4 else ''}")
        else:
            notes.append(f"{_count(len(pads), 'padded cell')} hold{'s' * (len(pads) == 1)} {fmt(pads[0].value)}")
    if several:
        notes.append(f"one parenthesis per input channel ({len(groups)})")
    return text, notes


# -------------------------------------------------------------------------- explain a stage


@dataclass
class ExplainContext:
    """State across the stages of one walkthrough: maxpool indices for maxunpool, the seed of
    random weights (as ``--seed``), and the stage's index in the pipeline."""

    seed: int = 0
    index: int = 0
    indices: dict[int, np.ndarray] = field(default_factory=dict)

    def stage_seed(self, stage: Any) -> int:
        return stage.seed_for(self.seed, self.index)


@dataclass
class _Select:
    """Which output elements a plane shows: one (--step/--only) or the first ``limit``."""

    step: int | None = None
    only: tuple[int, int] | None = None

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


def _as_select(select: Any) -> _Select:
    if select is None:
        return _Select()
    if isinstance(select, _Select):
        return select
    if isinstance(select, (int, np.integer)):
        return _Select(step=int(select))
    return _Select(only=(int(select[0]), int(select[1])))


def _shown(total: int, input_hw: tuple[int, int], select: _Select, shape: tuple[int, int]) -> tuple[list[int], str | None]:
    """The output indices to walk through in one plane, and a note for the rest."""
    chosen = select.flat(shape)
    if chosen is not None:
        if chosen < 0:
            return [], f"({select.describe()} is outside this stage's {shape[0]}×{shape[1]} output)"
        return [chosen], None
    small = input_hw[0] <= SMALL_SIDE and input_hw[1] <= SMALL_SIDE and total <= SMALL_WINDOWS
    if small or total <= WINDOW_LIMIT:
        return list(range(total)), None
    return list(range(WINDOW_LIMIT)), (
        f"... {total - WINDOW_LIMIT} more windows (use --step N or --only i,j to see one)"
    )


def _planes(n: int, c: int) -> list[tuple[int, int]]:
    return [(a, b) for a in range(n) for b in range(c)]


def _plane_title(n_c: tuple[int, int], shape: Sequence[int], what: str = "channel") -> str | None:
    n, c = n_c
    if shape[0] == 1 and shape[1] == 1:
        return None
    return f"sample {n}, {what} {c}" if shape[0] > 1 else f"{what} {c}"


def _planes_note(total: int, what: str = "channels") -> Any:
    return _text((f"... {total - MAX_PLANES} more {what} not shown (computed the same way)", "dim"))


def _footer(output: np.ndarray, plan: Any, highlight: Iterable[tuple[int, int]] = (), title: str = "output Y") -> list[Any]:
    parts: list[Any] = []
    if output.ndim == 2:
        parts.extend(_matrix(f"{title} ({output.shape[0]}×{output.shape[1]})", output, highlight=highlight))
    formula = getattr(plan, "formula", None) or {}
    for axis, text in formula.items():
        parts.append(_text((f"{axis}_out" if axis in ("H", "W") else axis, "bold"), f": {text}"))
    for note in getattr(plan, "notes", None) or []:
        parts.append(_text((note, "dim")))
    return parts


def _header(stage: Any, plan: Any, position: str = "") -> Any:
    from rich.rule import Rule

    title = f"{position}{stage.label()}   {format_shape(plan.input_shape)} → {format_shape(plan.output_shape)}"
    return Rule(_text((title, "bold")), align="left")


POOL_OPS = {"maxpool": "max", "minpool": "min", "avgpool": "avg", "lppool": "lp", "medianpool": "median"}
ADAPTIVE_OPS = {"adaptivemaxpool": "max", "adaptiveavgpool": "avg"}
GLOBAL_OPS = {"globalmaxpool": "max", "globalavgpool": "avg"}
ACTIVATION_OPS = ("relu", "sigmoid", "tanh", "leakyrelu")
UNEXPLAINED = {
    "fractionalmaxpool": "its windows come from torch's random generator",
    "convtranspose": "its walkthrough (each input value times the kernel) is not written yet",
    "upsample": "its walkthrough (each output's source cells and weights) is not written yet",
}


def _pool_settings(stage: Any) -> dict[str, Any]:
    kernel = stage.kernel_size
    return {
        "kernel_size": kernel,
        "stride": getattr(stage, "stride", None) or kernel,
        "padding": getattr(stage, "padding", (0, 0)) or (0, 0),
        "dilation": getattr(stage, "dilation", (1, 1)) or (1, 1),
        "ceil_mode": bool(getattr(stage, "ceil_mode", False)),
    }


def explain_stage(
    stage: Any, array: Any, *, plan: Any = None, context: ExplainContext | None = None, select: Any = None,
    position: str = "",
) -> tuple[list[Any], np.ndarray]:
    """Walk through one stage on an N×C×H×W array (N×F for linear): the renderables (rich) and
    the stage's output as a float64 array, computed by this module's loops.

    ``plan`` is the stage's StagePlan (formula, shapes; planned here when None); ``context``
    carries maxpool indices to a later maxunpool; ``select`` is an output element number (as
    ``--step``) or an (i, j) pair (as ``--only``).
    """
    x = np.asarray(array, dtype=np.float64)
    context = context or ExplainContext()
    if plan is None:
        from ..core.plan import Pipeline

        plan = Pipeline([stage]).plan(x.shape).stages[0]
    sel = _as_select(select)
    op = stage.op
    if op in UNEXPLAINED:
        raise UsageError(f"{op} has no window-by-window explanation: {UNEXPLAINED[op]}", "poolcli shape shows its sizes")
    parts: list[Any] = [_header(stage, plan, position)]
    if op in POOL_OPS or op in ADAPTIVE_OPS or op in GLOBAL_OPS:
        out = _explain_pool(stage, x, plan, context, sel, parts)
    elif op == "conv":
        out = _explain_conv(stage, x, plan, context, sel, parts)
    elif op == "maxunpool":
        out = _explain_unpool(stage, x, plan, context, sel, parts)
    elif op == "pad":
        out = _explain_pad(stage, x, plan, sel, parts)
    elif op in ACTIVATION_OPS:
        out = _explain_activation(stage, x, plan, sel, parts)
    elif op == "grayscale":
        out = _explain_grayscale(x, plan, sel, parts)
    elif op == "flatten":
        out = _explain_flatten(x, plan, sel, parts)
    elif op == "linear":
        out = _explain_linear(stage, x, plan, context, sel, parts)
    else:
        raise UsageError(f"{op} has no window-by-window explanation", "poolcli shape shows its sizes")
    return parts, out


def _explain_pool(stage: Any, x: np.ndarray, plan: Any, context: ExplainContext, sel: _Select, parts: list[Any]) -> np.ndarray:
    op = stage.op
    N, C, H, W = x.shape
    ho, wo = plan.output_shape[-2:]
    out = np.zeros((N, C, ho, wo))
    options: dict[str, Any] = {}
    if op in POOL_OPS:
        mode = POOL_OPS[op]
        settings = _pool_settings(stage)
        kh, kw = settings["kernel_size"]
        options = {
            "count_include_pad": bool(getattr(stage, "count_include_pad", True)),
            "divisor_override": getattr(stage, "divisor_override", None),
            "norm_type": getattr(stage, "norm_type", None),
            "area": kh * kw,
        }
        pad_value = _pad_value_for(mode)
        left, right, top, bottom = _lrtb(settings["padding"])
        # the canvas reaches as far as the last window does (a ceil_mode overhang)
        span_h = (ho - 1) * settings["stride"][0] + settings["dilation"][0] * (kh - 1) + 1
        span_w = (wo - 1) * settings["stride"][1] + settings["dilation"][1] * (kw - 1) + 1
        rows = (-top, max(H + bottom, span_h - top))
        cols = (-left, max(W + right, span_w - left))
        indices = np.zeros((N, C, ho, wo), dtype=np.int64)

        def make(X: np.ndarray) -> Iterator[Window]:
            return windows(X, (kh, kw), settings["stride"], settings["padding"], settings["dilation"],
                           settings["ceil_mode"], pad_value=pad_value)
    else:
        mode = (ADAPTIVE_OPS.get(op) or GLOBAL_OPS[op])
        pad_value, (left, right, top, bottom) = 0.0, (0, 0, 0, 0)
        rows, cols = (0, H), (0, W)
        indices = None

        def make(X: np.ndarray) -> Iterator[Window]:
            if op in GLOBAL_OPS:
                return iter([global_window(X)])
            return adaptive_windows(X, (ho, wo))

    name = {"lp": "lp", "median": "median"}.get(mode, mode)
    pad_label = _pad_symbol(mode)
    planes = _planes(N, C)
    for number, (n, c) in enumerate(planes):
        X = x[n, c]
        show = number < MAX_PLANES
        canvas = _Canvas(_Padded(X, (left, right, top, bottom), "constant", pad_value), lambda r, cc: pad_label, rows, cols)
        all_windows = list(make(X))
        for window in all_windows:
            i, j = window.out
            if mode == "max":
                out[n, c, i, j], index = _extreme(window, W)
                if indices is not None:
                    indices[n, c, i, j] = index
            else:
                out[n, c, i, j] = window_value(window, mode, width=W, **options)
        if not show:
            continue
        title = _plane_title((n, c), x.shape)
        if title:
            parts.append(_text((title, "bold underline")))
        parts.extend(_matrix(f"input X ({H}×{W})" + (f", padding shown as {pad_label}" if top or left or bottom or right else ""), X, canvas))
        if op in POOL_OPS and settings["dilation"] != (1, 1):
            dh, dw = settings["dilation"]
            parts.append(_text((f"dilation {dh}×{dw}: a window reads every {_nth(dh)} row and every {_nth(dw)} column", "dim")))
        chosen, rest = _shown(len(all_windows), (H, W), sel, (ho, wo))
        for k in chosen:
            window = all_windows[k]
            value = out[n, c][window.out]
            expression, notes = _pool_expression(window, mode, value, name=name, **{
                key: options[key] for key in ("count_include_pad", "divisor_override", "norm_type", "area") if key in options
            })
            parts.append(_window_part(canvas, window, expression, notes))
        if rest:
            parts.append(_text((rest, "dim")))
        parts.extend(_footer(out[n, c], plan))
    if len(planes) > MAX_PLANES:
        parts.append(_planes_note(len(planes)))
    if indices is not None and op == "maxpool":
        context.indices[context.index] = indices
    return out


def _explain_conv(stage: Any, x: np.ndarray, plan: Any, context: ExplainContext, sel: _Select, parts: list[Any]) -> np.ndarray:
    N, C, H, W = x.shape
    from ..kernels.weights import conv_weights

    weight, bias, groups = conv_weights(stage, C, context.stage_seed(stage))
    weight = np.asarray(weight, dtype=np.float64)
    O, I, kh, kw = weight.shape
    per_group = O // groups
    lrtb = stage.padding_lrtb()
    left, right, top, bottom = lrtb
    mode = stage.padding_mode
    ho, wo = plan.output_shape[-2:]
    out = np.zeros((N, O, ho, wo))
    if stage.kernel is None:
        parts.append(_text((f"random weights (nn.Conv2d's init) from seed {context.stage_seed(stage)}", "dim")))
    broadcast = np.ndim(np.asarray(stage.kernel)) == 2 if stage.kernel is not None else False
    if broadcast:
        parts.extend(_matrix(f"kernel K ({kh}×{kw})" + (f", on each of the {C} channels" if C > 1 else ""), weight[0, 0]))

    def pad_text(X: np.ndarray) -> Callable[[int, int], str]:
        if mode == "zeros":
            return lambda r, c: "0"
        return lambda r, c: fmt(X[_source(r, X.shape[0], mode), _source(c, X.shape[1], mode)])

    planes = _planes(N, O)
    for number, (n, o) in enumerate(planes):
        g = o // per_group
        inputs = [g * I + i for i in range(I)]
        kernels = [weight[o, i] for i in range(I)]
        b = float(bias[o]) if bias is not None else None
        per_channel = [
            list(windows(x[n, ci], (kh, kw), stage.stride, lrtb, stage.dilation, padding_mode=mode)) for ci in inputs
        ]
        for k in range(ho * wo):
            total = sum(cell.value * K[cell.tap] for chan, K in zip(per_channel, kernels) for cell in chan[k].cells)
            out[n, o].flat[k] = total + (b or 0.0)
        if number >= MAX_PLANES:
            continue
        title = _plane_title((n, o), (N, O), "output channel")
        if title:
            parts.append(_text((title, "bold underline")))
        X = x[n, inputs[0]]
        canvas = _Canvas(_Padded(X, lrtb, mode, 0.0), pad_text(X), (-top, H + bottom), (-left, W + right))
        name = f"input X (channel {inputs[0]}, {H}×{W})" if C > 1 else f"input X ({H}×{W})"
        if any(lrtb):
            name += f", {mode} padding" + (" (dim)" if mode != "zeros" else " shown as 0")
        parts.extend(_matrix(name, X, canvas))
        if not broadcast:
            for i, K in enumerate(kernels[:MAX_PLANES]):
                parts.extend(_matrix(f"kernel W[{o}, {i}] ({kh}×{kw}) for input channel {inputs[i]}", K))
            if len(kernels) > MAX_PLANES:
                parts.append(_planes_note(len(kernels), "kernels"))
        if len(inputs) > 1:
            parts.append(_text((f"the same window is read on input channels {', '.join(map(str, inputs))}", "dim")))
        chosen, rest = _shown(ho * wo, (H, W), sel, (ho, wo))
        for k in chosen:
            window = per_channel[0][k]
            expression, notes = _conv_expression([(chan[k], K) for chan, K in zip(per_channel, kernels)], b, out[n, o].flat[k])
            parts.append(_window_part(canvas, window, expression, notes))
        if rest:
            parts.append(_text((rest, "dim")))
        parts.extend(_footer(out[n, o], plan))
    if len(planes) > MAX_PLANES:
        parts.append(_planes_note(len(planes)))
    return out


def _explain_unpool(stage: Any, x: np.ndarray, plan: Any, context: ExplainContext, sel: _Select, parts: list[Any]) -> np.ndarray:
    N, C, H, W = x.shape
    pool_index = getattr(plan, "pairs_with", None)
    if pool_index is None or pool_index not in context.indices:
        raise UsageError("maxunpool needs the indices of its maxpool", "explain the maxpool and the maxunpool in one pipeline")
    indices = context.indices.pop(pool_index)
    oh, ow = plan.output_shape[-2:]
    out = np.zeros((N, C, oh, ow))
    planes = _planes(N, C)
    for number, (n, c) in enumerate(planes):
        flat = indices[n, c]
        if flat.size and int(flat.max()) >= oh * ow:
            raise PoolcliError(
                f"{stage.label()}: a maxpool index ({int(flat.max())}) lies outside the {oh}×{ow} output",
                "leave output_size out: it defaults to the paired maxpool's input size",
            )
        out[n, c] = unpool2d(x[n, c], flat, (oh, ow))
        if number >= MAX_PLANES:
            continue
        title = _plane_title((n, c), x.shape)
        if title:
            parts.append(_text((title, "bold underline")))
        parts.extend(_matrix(f"input X ({H}×{W})", x[n, c]))
        parts.extend(_matrix(f"indices from stage {pool_index} maxpool (flat positions in its input)", flat.astype(np.float64)))
        writer: dict[int, tuple[int, int]] = {}
        for i in range(H):
            for j in range(W):
                writer[int(flat[i, j])] = (i, j)
        chosen = sel.flat((oh, ow))
        lines: list[Any] = []
        if chosen is not None:
            if chosen < 0:
                lines.append(_text((f"({sel.describe()} is outside this stage's {oh}×{ow} output)", "dim")))
            else:
                r, col = divmod(chosen, ow)
                if chosen in writer:
                    i, j = writer[chosen]
                    lines.append(_text(f"Y[{r}, {col}] = ", (fmt(x[n, c, i, j]), "bold"),
                                       f": X[{i}, {j}], the max of window ({i}, {j}) was at position {chosen} = ({r}, {col})"))
                else:
                    lines.append(_text(f"Y[{r}, {col}] = ", ("0", "bold"), ": no window's max was here"))
        else:
            total = H * W
            count, rest = _shown(total, (H, W), _Select(), (H, W))
            seen: dict[int, tuple[int, int]] = {}
            for k in count:
                i, j = divmod(k, W)
                index = int(flat[i, j])
                r, col = divmod(index, ow)
                line = _text(f"{fmt(x[n, c, i, j])} → position {index} = ({r}, {col}), the max of window ({i}, {j})")
                if index in seen:
                    line.append(f"  (overwrites window {seen[index]}'s value)", style="dim")
                seen[index] = (i, j)
                lines.append(line)
            if rest:
                lines.append(_text((rest.replace("windows", "values"), "dim")))
            lines.append(_text((f"every other position of the {oh}×{ow} output is 0", "dim")))
        parts.extend(lines)
        placed = [divmod(int(v), ow) for v in flat.ravel()]
        parts.extend(_footer(out[n, c], plan, placed))
    if len(planes) > MAX_PLANES:
        parts.append(_planes_note(len(planes)))
    return out


def _explain_pad(stage: Any, x: np.ndarray, plan: Any, sel: _Select, parts: list[Any]) -> np.ndarray:
    N, C, H, W = x.shape
    left, right, top, bottom = stage.padding
    mode = stage.mode
    value = float(stage.value)
    oh, ow = H + top + bottom, W + left + right
    out = np.zeros((N, C, oh, ow))
    planes = _planes(N, C)
    for number, (n, c) in enumerate(planes):
        X = x[n, c]
        padded = _Padded(X, (left, right, top, bottom), mode, value)
        cells = [padded.cell(i - top, j - left) for i in range(oh) for j in range(ow)]
        for k, cell in enumerate(cells):
            out[n, c].flat[k] = cell.value
        if number >= MAX_PLANES:
            continue
        title = _plane_title((n, c), x.shape)
        if title:
            parts.append(_text((title, "bold underline")))
        parts.extend(_matrix(f"input X ({H}×{W})", X))
        chosen = sel.flat((oh, ow))
        if chosen is not None:
            listed = [chosen] if chosen >= 0 else []
            if chosen < 0:
                parts.append(_text((f"({sel.describe()} is outside this stage's {oh}×{ow} output)", "dim")))
        else:
            listed = [k for k, cell in enumerate(cells) if cell.kind == PAD]
            parts.append(_text((f"the {H * W} inner cells are X itself; the {len(listed)} padded cells:", "dim")))
        rest = None
        if chosen is None and len(listed) > WINDOW_LIMIT and not (H <= SMALL_SIDE and W <= SMALL_SIDE and len(listed) <= SMALL_WINDOWS):
            rest = f"... {len(listed) - WINDOW_LIMIT} more padded cells (use --step N or --only i,j to see one)"
            listed = listed[:WINDOW_LIMIT]
        for k in listed:
            cell = cells[k]
            i, j = divmod(k, ow)
            line = _text(f"Y[{i}, {j}] = ")
            if cell.kind == REAL:
                line.append(f"X[{cell.row}, {cell.col}] = ")
                line.append(fmt(cell.value), style="bold")
            elif mode == "constant":
                line.append(fmt(cell.value), style="bold")
                line.append(f"  (constant padding, value={fmt(value)})", style="dim")
            else:
                sr, sc = cell.source  # type: ignore[misc]
                line.append(f"X[{sr}, {sc}] = ")
                line.append(fmt(cell.value), style="bold")
                line.append(f"  ({mode}: row {cell.row} → {sr}, col {cell.col} → {sc})", style="dim")
            parts.append(line)
        if rest:
            parts.append(_text((rest, "dim")))
        canvas = _Canvas(padded, lambda r, cc, p=padded: fmt(p.cell(r, cc).value), (-top, H + bottom), (-left, W + right))
        grid, cut = canvas.render()
        parts.append(_text((f"output Y ({oh}×{ow}), padding dim, rows and columns numbered as in X", "bold")
                           ) if not cut else _text((f"output Y ({oh}×{ow}, top-left {GRID_VIEW}×{GRID_VIEW} shown)", "bold")))
        parts.append(grid)
        parts.extend(_footer(np.zeros((0,)), plan))
    if len(planes) > MAX_PLANES:
        parts.append(_planes_note(len(planes)))
    return out


def _activation_line(op: str, x: float, y: float, slope: float) -> Any:
    if op == "relu":
        body = f"relu({fmt(x)}) = max(0, {fmt(x)})"
    elif op == "sigmoid":
        body = f"sigmoid({fmt(x)}) = 1/(1 + e^{_operand(-x)})"
    elif op == "tanh":
        body = f"tanh({fmt(x)})"
    else:
        body = f"leakyrelu({fmt(x)})" + (f" = {fmt(slope)}·{_operand(x)}" if x < 0 else "")
    return _text(body, " = ", (fmt(y), "bold"))


def _explain_activation(stage: Any, x: np.ndarray, plan: Any, sel: _Select, parts: list[Any]) -> np.ndarray:
    op = stage.op
    slope = float(getattr(stage, "negative_slope", 0.01))
    out = np.vectorize(lambda v: activation(op, float(v), slope), otypes=[np.float64])(x) if x.size else x.copy()
    if x.ndim != 4:
        parts.append(_text((f"element by element on {x.shape[-1]} features", "dim")))
        for k in range(min(x.shape[-1], WINDOW_LIMIT)):
            parts.append(_text(f"Y[{k}] = ").append_text(_activation_line(op, x[0, k], out[0, k], slope)))
        if x.shape[-1] > WINDOW_LIMIT:
            parts.append(_text((f"... {x.shape[-1] - WINDOW_LIMIT} more values", "dim")))
        return out
    N, C, H, W = x.shape
    planes = _planes(N, C)
    for number, (n, c) in enumerate(planes[:MAX_PLANES]):
        title = _plane_title((n, c), x.shape)
        if title:
            parts.append(_text((title, "bold underline")))
        parts.extend(_matrix(f"input X ({H}×{W})", x[n, c]))
        chosen, rest = _shown(H * W, (H, W), sel, (H, W))
        for k in chosen:
            i, j = divmod(k, W)
            parts.append(_text(_element((i, j))[:-2] + "= ").append_text(_activation_line(op, x[n, c, i, j], out[n, c, i, j], slope)))
        if rest:
            parts.append(_text((rest.replace("windows", "values"), "dim")))
        parts.extend(_footer(out[n, c], plan))
    if len(planes) > MAX_PLANES:
        parts.append(_planes_note(len(planes)))
    return out


def _explain_grayscale(x: np.ndarray, plan: Any, sel: _Select, parts: list[Any]) -> np.ndarray:
    N, C, H, W = x.shape
    out = np.zeros((N, 1, H, W))
    for n in range(N):
        for i in range(H):
            for j in range(W):
                if C <= 2:
                    out[n, 0, i, j] = x[n, 0, i, j]
                else:
                    out[n, 0, i, j] = sum(w * x[n, ch, i, j] for ch, w in enumerate(GRAY_WEIGHTS))
    for n in range(min(N, MAX_PLANES)):
        if N > 1:
            parts.append(_text((f"sample {n}", "bold underline")))
        if C <= 2:
            parts.append(_text(("1 or 2 channels (L, LA): Y is channel 0, alpha dropped", "dim")))
        else:
            parts.append(_text(("ITU-R 601-2 luma, as Pillow's mode L: Y = 0.299·R + 0.587·G + 0.114·B"
                                + (" (alpha dropped)" if C == 4 else ""), "dim")))
            for ch, name in enumerate("RGB"):
                parts.extend(_matrix(f"{name} = channel {ch} ({H}×{W})", x[n, ch]))
            chosen, rest = _shown(H * W, (H, W), sel, (H, W))
            for k in chosen:
                i, j = divmod(k, W)
                terms = " + ".join(f"{w}·{_operand(x[n, ch, i, j])}" for ch, w in enumerate(GRAY_WEIGHTS))
                parts.append(_text(f"Y[{i}, {j}] = {terms} = ", (fmt(out[n, 0, i, j]), "bold")))
            if rest:
                parts.append(_text((rest.replace("windows", "pixels"), "dim")))
        parts.extend(_footer(out[n, 0], plan))
    return out


def _explain_flatten(x: np.ndarray, plan: Any, sel: _Select, parts: list[Any]) -> np.ndarray:
    N = x.shape[0]
    out = x.reshape(N, -1).copy()
    shape = x.shape[1:]
    parts.append(_text(("Y[k] = X[c, h, w] with k = (c·H + h)·W + w (row-major, channel first)", "dim")))
    picks = [sel.step] if sel.step is not None else list(range(min(out.shape[1], WINDOW_LIMIT)))
    for k in picks:
        if k >= out.shape[1]:
            parts.append(_text((f"({sel.describe()} is outside this stage's {out.shape[1]} features)", "dim")))
            continue
        where = ", ".join(str(v) for v in np.unravel_index(k, shape))
        parts.append(_text(f"Y[{k}] = X[{where}] = ", (fmt(out[0, k]), "bold")))
    if sel.step is None and out.shape[1] > WINDOW_LIMIT:
        parts.append(_text((f"... {out.shape[1] - WINDOW_LIMIT} more features", "dim")))
    parts.extend(_vector("output Y", out[0]))
    parts.extend(_footer(np.zeros((0,)), plan))
    return out


def _vector(title: str, values: np.ndarray) -> list[Any]:
    shown = [fmt(v) for v in values[: GRID_VIEW * 2]]
    more = f" … ({len(values)} values)" if len(values) > len(shown) else ""
    return [_text((f"{title} ({len(values)})", "bold")), _text("[" + ", ".join(shown) + more + "]")]


def _explain_linear(stage: Any, x: np.ndarray, plan: Any, context: ExplainContext, sel: _Select, parts: list[Any]) -> np.ndarray:
    from ..kernels.weights import linear_weights

    N, F = x.shape
    weight, bias = linear_weights(stage, F, context.stage_seed(stage))
    weight = np.asarray(weight, dtype=np.float64)
    out = np.zeros((N, stage.out_features))
    for n in range(N):
        for j in range(stage.out_features):
            out[n, j] = sum(weight[j, i] * x[n, i] for i in range(F)) + (float(bias[j]) if bias is not None else 0.0)
    parts.append(_text((f"random weights (nn.Linear's init) from seed {context.stage_seed(stage)}: "
                        "Y[j] = Σ_i X[i]·W[j, i] + b[j]", "dim")))
    parts.extend(_vector("input X", x[0]))
    picks = [sel.step] if sel.step is not None else list(range(min(stage.out_features, WINDOW_LIMIT)))
    for j in picks:
        if j >= stage.out_features:
            parts.append(_text((f"({sel.describe()} is outside this stage's {stage.out_features} features)", "dim")))
            continue
        text = _text(f"Y[{j}] = ")
        text.append_text(_terms([(f"{_operand(x[0, i])}×{_operand(weight[j, i])}", None) for i in range(F)], " + "))
        if bias is not None:
            text.append(f" + {_operand(float(bias[j]))}")
        text.append(" = ")
        text.append(fmt(out[0, j]), style="bold")
        parts.append(text)
    if sel.step is None and stage.out_features > WINDOW_LIMIT:
        parts.append(_text((f"... {stage.out_features - WINDOW_LIMIT} more features", "dim")))
    parts.extend(_vector("output Y", out[0]))
    parts.extend(_footer(np.zeros((0,)), plan))
    return out


# ------------------------------------------------------------------------------- the command


def _load_file(path: str) -> tuple[np.ndarray, str]:
    """The array of a file (NCHW) and a line saying what its values are."""
    from ..io.reading import load_image

    image = load_image(path)
    if image.is_array:
        return np.asarray(image.array), "array, values as stored"
    return np.asarray(image.array), f"image, values as stored (0..{fmt(image.maxval)}, as --scale raw)"


def _nchw(array: np.ndarray, what: str) -> np.ndarray:
    if array.ndim == 2:
        return array[None, None]
    if array.ndim == 3:
        return array[None]
    if array.ndim == 4:
        return array
    raise UsageError(f"{what} has {array.ndim} dimensions", "give a 2-D (H×W), 3-D (C×H×W) or 4-D (N×C×H×W) array")


def _crop(array: np.ndarray, crop: str) -> np.ndarray:
    try:
        x, y, w, h = (int(v) for v in crop.replace(" ", "").split(","))
    except ValueError:
        raise UsageError(f"--crop {crop!r} is not X,Y,W,H", "for example --crop 10,20,8,8") from None
    H, W = array.shape[-2:]
    if min(x, y) < 0 or min(w, h) < 1 or x + w > W or y + h > H:
        raise UsageError(
            f"--crop {crop} does not fit the {W}×{H} (W×H) input",
            f"use X + W ≤ {W} and Y + H ≤ {H}, with W and H ≥ 1",
        )
    return array[..., y:y + h, x:x + w]


def _parse_only(only: str) -> tuple[int, int]:
    try:
        i, j = (int(v) for v in only.replace(" ", "").replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--only {only!r} is not i,j", "for example --only 0,1 (row, column of the output)") from None
    if min(i, j) < 0:
        raise UsageError(f"--only {only}: negative position", "rows and columns count from 0")
    return i, j


def _stages(specs: list[str] | None, pipeline_file: str | None) -> list[Any]:
    from ..io.specs import read_stages

    stages = read_stages(specs, pipeline_file)
    if not stages:
        raise UsageError("no stages to explain", "give -S SPEC (repeatable) or --pipeline FILE")
    return stages


def _check_explainable(plan: Any, select: _Select) -> None:
    """Refuse, before printing anything, what cannot be walked through."""
    for stage_plan in plan.stages:
        op = stage_plan.stage.op
        if op in UNEXPLAINED:
            raise UsageError(
                f"stage {stage_plan.index} {op} has no window-by-window explanation: {UNEXPLAINED[op]}",
                "poolcli shape shows its sizes; poolcli run computes it",
            )
        if op == "linear" and stage_plan.input_shape[-1] > LINEAR_MAX_FEATURES:
            raise UsageError(
                f"stage {stage_plan.index} linear on {stage_plan.input_shape[-1]} features is too big to "
                f"explain term by term (at most {LINEAR_MAX_FEATURES})",
                "explain the stages before it; poolcli shape shows the whole pipeline",
            )
    sizes = [plan.input_shape] + [s.output_shape for s in plan.stages]
    biggest = max(sizes, key=lambda s: math.prod(s))
    if math.prod(biggest) > MAX_ELEMENTS:
        raise UsageError(
            f"a {format_shape(biggest)} tensor is too big to explain window by window (at most {MAX_ELEMENTS} values)",
            "use --crop X,Y,W,H to explain a region, or poolcli shape for the sizes",
        )
    if select.active:
        fits = []
        for s in plan.stages:
            shape = s.output_shape
            if len(shape) == 4:
                fits.append(select.flat(tuple(shape[-2:])) != -1)  # type: ignore[arg-type]
            else:
                fits.append(select.step is not None and select.step < shape[-1])
        if not any(fits):
            last = plan.stages[-1].output_shape
            raise UsageError(
                f"{select.describe()} is outside every stage's output (the last is {format_shape(last)})",
                "output elements count from 0, row-major: --step N or --only row,col",
            )


def explain_command(
    matrix: str | None, path: str | None, specs: list[str] | None, pipeline_file: str | None,
    crop: str | None, step: int | None, only: str | None, env: Any,
) -> int:
    """``poolcli explain``: each stage's walkthrough in turn on a matrix, an array or an image
    region, the output of one feeding the next. Returns the exit status (0); raises UsageError
    (or SpecError/PlanError/InputError) for what cannot be explained."""
    from ..core.plan import Pipeline

    if (matrix is None) == (path is None):
        raise UsageError(
            "explain needs exactly one input: --matrix or an ARRAY/IMAGE file" + (", not both" if matrix is not None else ""),
            "for example poolcli explain --matrix '0 1 2; 3 4 5; 6 7 8' -S maxpool:2,s=1",
        )
    if step is not None and only is not None:
        raise UsageError("--step and --only both given", "use one: --step N (row-major) or --only row,col")
    if step is not None and step < 0:
        raise UsageError(f"--step {step} is negative", "output elements count from 0")
    select = _Select(step=step, only=_parse_only(only) if only is not None else None)
    stages = _stages(specs, pipeline_file)
    if matrix is not None:
        from ..io.reading import load_matrix

        array, source, values = load_matrix(matrix), "--matrix", "values as given"
    else:
        array, values = _load_file(path)  # type: ignore[arg-type]
        source = path
    x = _nchw(np.asarray(array, dtype=np.float64), source)  # type: ignore[arg-type]
    if crop is not None:
        x = np.ascontiguousarray(_crop(x, crop))
    plan = Pipeline(stages).plan(x.shape)
    _check_explainable(plan, select)
    crop_note = f", crop {crop}" if crop else ""
    env.report(_text((f"{source}{crop_note}: {format_shape(x.shape)} ({values})", "bold")))
    context = ExplainContext()
    total = len(stages)
    for stage_plan in plan.stages:
        context.index = stage_plan.index
        parts, x = explain_stage(
            stage_plan.stage, x, plan=stage_plan, context=context, select=select,
            position=f"#{stage_plan.index}  " if total > 1 else "",
        )
        for part in parts:
            env.report(part)
    return 0
