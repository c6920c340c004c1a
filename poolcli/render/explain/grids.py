"""Grids: a plane (its padding ring and ceil_mode overhang too) as rows of cells, with a window's
cells bracketed and highlighted; and the block of a window beside its arithmetic.

    >>> from poolcli.core.walkthrough import Canvas
    >>> text, cut = grid_text(Canvas.of([[0.0, 1.0], [2.0, 3.0]]), {(0, 0)})
    >>> print(text.plain)
       0  1 
    0 [0] 1 
    1  2  3 
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from ...core.textbook import REAL, Cell
from ...core.walkthrough import Canvas, Grid
from ...core.walkthrough.items import label
from .lines import line_text

GRID_VIEW = 16  # rows/columns of a matrix printed before it is cut
FULL_GRID = 8  # a window is drawn on the whole (padded) input up to this size, else cropped

HIGHLIGHT = "bold black on yellow"
HIGHLIGHT_PAD = "black on grey62"
PAD_STYLE = "dim"
INDEX_STYLE = "dim italic"


def grid_text(canvas: Canvas, highlight: Iterable[tuple[int, int]] = (), view: tuple[int, int, int, int] | None = None,
              limit: int | None = GRID_VIEW) -> tuple[Any, bool]:
    """The grid as Text, and whether it was cut to ``limit`` rows/columns."""
    from rich.text import Text

    r0, r1, c0, c1 = view or (*canvas.rows, *canvas.cols)
    cut = False
    if limit is not None and r1 - r0 > limit:
        r1, cut = r0 + limit, True
    if limit is not None and c1 - c0 > limit:
        c1, cut = c0 + limit, True
    marked = set(highlight)
    cells = {(r, c): canvas.text(r, c) for r in range(r0, r1) for c in range(c0, c1)}
    width = max([len(t) for t, _ in cells.values()] + [len(str(c)) for c in range(c0, c1)])
    label = max(len(str(r)) for r in range(r0, r1))
    text = Text(" " * (label + 1))
    for c in range(c0, c1):
        text.append(f" {str(c):>{width}} ", style=INDEX_STYLE)
    for r in range(r0, r1):
        text.append("\n")
        text.append(f"{str(r):>{label}} ", style=INDEX_STYLE)
        for c in range(c0, c1):
            value, kind = cells[(r, c)]
            if (r, c) in marked:
                text.append(f"[{value:>{width}}]", style=HIGHLIGHT if kind == REAL else HIGHLIGHT_PAD)
            else:
                text.append(f" {value:>{width}} ", style=None if kind == REAL else PAD_STYLE)
    return text, cut


def window_view(canvas: Canvas, cells: Sequence[Cell]) -> tuple[int, int, int, int] | None:
    """The whole canvas when small, else the window's box and one cell around it."""
    if canvas.rows[1] - canvas.rows[0] <= FULL_GRID and canvas.cols[1] - canvas.cols[0] <= FULL_GRID:
        return None
    rows = [c.row for c in cells] or [0]
    cols = [c.col for c in cells] or [0]
    return (
        max(min(rows) - 1, canvas.rows[0]), min(max(rows) + 2, canvas.rows[1]),
        max(min(cols) - 1, canvas.cols[0]), min(max(cols) + 2, canvas.cols[1]),
    )


def grid_parts(grid: Grid) -> list[Any]:
    """A titled grid, with a note when only its top-left corner is shown."""
    text, cut = grid_text(grid.canvas, grid.highlight)
    canvas = grid.canvas
    if cut and grid.cut_title is not None:
        return [line_text(label(grid.cut_title.format(limit=f"{GRID_VIEW}×{GRID_VIEW}"))), text]
    title = line_text(grid.title)
    if cut:
        title.append(f"  (top-left {min(GRID_VIEW, canvas.rows[1] - canvas.rows[0])}×"
                     f"{min(GRID_VIEW, canvas.cols[1] - canvas.cols[0])} shown)", style="dim")
    return [title, text]


def window_block(canvas: Canvas, cells: Sequence[Cell], expression: Any, notes: Sequence[str]) -> Any:
    """The input with the window's cells marked, beside ``Y[i, j] = expression`` and its notes."""
    from rich.table import Table

    grid, _ = grid_text(canvas, [(cell.row, cell.col) for cell in cells], window_view(canvas, cells), limit=None)
    right = expression.copy()
    for note in notes:
        right.append("\n")
        right.append(note, style="dim")
    table = Table.grid(padding=(0, 3))
    table.add_column(no_wrap=True)
    table.add_column()
    table.add_row(grid, right)
    return table
