"""One frame: the input grid with the window, the reduction (or the kernel) beside it, the output
grid filling in, and the caption. Every frame of an animation has the same ``Layout``, so the
picture does not jump; the cell size shrinks for bigger grids.

Colours, and what they mark (the tests read them back at cell positions, ``Layout.probe``):
``WINDOW`` the window's real cells, ``WINDOW_PAD`` its padded ones, ``PADDING`` the padding ring,
``OVERHANG`` a ceil_mode window's cells beyond the padding, ``UNREACHED`` (hatched) cells no window
reads, ``WINNER`` the value a max or min took, ``CURRENT`` the output cell being computed,
``FILLED``/``EMPTY`` output cells done and still to come; around the output, ``PADDING`` the
border a transposed convolution's crop removes, ``WINDOW_PAD`` a kernel copy's values cut there.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from ...core.textbook import OUTSIDE, PAD, REAL, fmt
from .fonts import Fonts

WHITE = (255, 255, 255)
INK = (33, 37, 41)
GRID_LINE = (173, 181, 189)
PADDING = (206, 212, 218)
PAD_INK = (108, 117, 125)
OVERHANG = (241, 243, 245)
UNREACHED = (248, 249, 250)
HATCH = (206, 212, 218)
WINDOW = (255, 212, 59)
WINDOW_PAD = (214, 190, 120)
WINDOW_EDGE = (232, 89, 12)
WINNER = (81, 207, 102)
CURRENT = (255, 212, 59)
FILLED = (255, 255, 255)
EMPTY = (241, 243, 245)
TITLE_INK = (73, 80, 87)
BASE_COLOURS = [WHITE, INK, GRID_LINE, PADDING, PAD_INK, OVERHANG, UNREACHED, HATCH, WINDOW, WINDOW_PAD,
                WINDOW_EDGE, WINNER, EMPTY, TITLE_INK]


def palette() -> list[tuple[int, int, int]]:
    """The GIF palette: the colours above and, for antialiased text, blends of each with the inks."""
    colours = list(dict.fromkeys(BASE_COLOURS))
    for background in (WHITE, PADDING, OVERHANG, WINDOW, WINDOW_PAD, WINNER, EMPTY):
        for ink in (INK, PAD_INK):
            for step in range(1, 8):
                t = step / 8
                colours.append(tuple(round(b + (i - b) * t) for b, i in zip(background, ink)))  # type: ignore[misc]
    return list(dict.fromkeys(colours))[:256]


MARGIN = 16
GAP = 28  # between the panels
LABEL_GAP = 6
CAPTION_LINES = 4


def cell_size(largest: int) -> int:
    """Pixels per cell for a grid of ``largest`` rows or columns: 44 for small grids, down to 12.

    >>> cell_size(3), cell_size(8), cell_size(34)
    (44, 44, 12)
    """
    return max(12, min(44, 360 // max(largest, 1)))


@dataclass(frozen=True)
class Extent:
    """The largest of each part over every stage, which fixes the frame's size."""

    input_rows: int
    input_cols: int
    panel_rows: int
    panel_cols: int
    output_rows: int
    output_cols: int
    caption_chars: int
    caption_lines: int = 1
    labels: tuple[str, str, str] = ("", "", "")  # the longest input, panel and output labels
    title: str = ""  # the longest title


class Layout:
    """Where everything goes in a frame of an animation with this ``Extent``."""

    def __init__(self, extent: Extent, fonts: Fonts):
        self.extent = extent
        self.fonts = fonts
        largest = max(extent.input_rows, extent.input_cols, extent.output_rows, extent.output_cols,
                      extent.panel_rows, extent.panel_cols)
        self.cell = cell_size(largest)
        self.title_font = fonts.get(15, bold=True)
        self.label_font = fonts.get(13)
        self.caption_font = fonts.get(15)
        self.title_h = 24
        self.label_h = 18
        top = MARGIN + self.title_h + 8 + self.label_h + LABEL_GAP
        self.input_at = (MARGIN, top)
        widths = [self.label_font.getlength(fonts.text(text)) for text in extent.labels]
        panel_x = MARGIN + max(extent.input_cols * self.cell, widths[0]) + GAP
        self.panel_at = (int(panel_x), top)
        panel_w = max(extent.panel_cols * self.cell, widths[1]) if extent.panel_cols else 0
        output_x = panel_x + panel_w + (GAP if panel_w else 0)
        self.output_at = (int(output_x), top)
        grids_h = max(extent.input_rows, extent.output_rows, extent.panel_rows) * self.cell
        title_w = 2 * MARGIN + self.title_font.getlength(fonts.text(extent.title))
        width = max(output_x + max(extent.output_cols * self.cell, widths[2]) + MARGIN, title_w, 480)
        char_w = max(self.caption_font.getlength("0"), 1)
        self.caption_width = int((width - 2 * MARGIN) // char_w)
        lines = min(CAPTION_LINES, max(extent.caption_lines, -(-extent.caption_chars // max(self.caption_width, 1))))
        self.caption_at = (MARGIN, top + grids_h + 16)
        height = self.caption_at[1] + lines * 20 + MARGIN
        self.size = (int(width) + (int(width) % 2), int(height) + (int(height) % 2))

    def box(self, origin: tuple[int, int], row: int, col: int) -> tuple[int, int, int, int]:
        x, y = origin[0] + col * self.cell, origin[1] + row * self.cell
        return (x, y, x + self.cell, y + self.cell)

    @staticmethod
    def probe(box: tuple[int, int, int, int]) -> tuple[int, int]:
        """A point inside a cell that no text or edge covers: where a cell's colour is read."""
        return (box[0] + 4, box[1] + 4)


class Painter:
    """Draws frames on one layout."""

    def __init__(self, layout: Layout):
        self.layout = layout
        self.fonts = layout.fonts
        self.fitted: dict[tuple[str, int], Any] = {}

    def new(self) -> tuple[Any, Any]:
        from PIL import Image, ImageDraw

        image = Image.new("RGB", self.layout.size, WHITE)
        return image, ImageDraw.Draw(image)

    def text(self, draw: Any, at: tuple[float, float], text: str, font: Any, fill: tuple = INK, anchor: str = "la") -> None:
        draw.text(at, self.fonts.text(text), font=font, fill=fill, anchor=anchor)

    def cell(self, draw: Any, box: tuple[int, int, int, int], fill: tuple, text: str = "", ink: tuple = INK,
             edge: tuple | None = None, hatch: bool = False) -> None:
        draw.rectangle(box, fill=fill, outline=GRID_LINE)
        if hatch:
            x0, y0, x1, y1 = box
            for k in range(x0 - (y1 - y0), x1, 6):
                draw.line([(max(k, x0), y0 + max(x0 - k, 0)), (min(k + (y1 - y0), x1), y0 + min(x1 - k, y1 - y0))],
                          fill=HATCH, width=1)
            draw.rectangle(box, outline=GRID_LINE)
        if edge is not None:
            draw.rectangle(box, outline=edge, width=2)
        if text:
            self.fit_text(draw, box, text, ink)

    def fit_text(self, draw: Any, box: tuple[int, int, int, int], text: str, ink: tuple) -> None:
        text = self.fonts.text(text)
        width = box[2] - box[0] - 4
        key = (text, width)
        if key not in self.fitted:
            size = max(7, int(self.layout.cell * 0.42))
            font = self.fonts.get(size)
            while size > 7 and font.getlength(text) > width:
                size -= 1
                font = self.fonts.get(size)
            self.fitted[key] = font
        draw.text(((box[0] + box[2]) / 2, (box[1] + box[3]) / 2), text, font=self.fitted[key], fill=ink, anchor="mm")

    def frame(self, title: str, input_grid: "InputGrid", panel: "Panel | None", output: "OutputGrid",
              caption: str) -> Any:
        """A whole frame, drawn from nothing."""
        image, draw = self.new()
        self.words(draw, title, caption)
        input_grid.draw(self, draw)
        if panel is not None:
            panel.draw(self, draw)
        output.draw(self, draw)
        return image

    def overlay(self, base: Any, title: str, input_grid: "InputGrid", panel: "Panel | None", output: "OutputGrid",
                caption: str) -> Any:
        """A frame drawn over a copy of ``base`` (the stage's grids as they stand): only the window, the
        panel, the output cells being written, and the words change, so a frame costs its window."""
        from PIL import ImageDraw

        layout = self.layout
        image = base.copy()
        draw = ImageDraw.Draw(image)
        width, height = layout.size
        draw.rectangle((0, 0, width, layout.input_at[1] - self.layout.label_h - LABEL_GAP - 2), fill=WHITE)
        draw.rectangle((0, layout.caption_at[1] - 4, width, height), fill=WHITE)
        panel_right = layout.output_at[0] - GAP // 2 if layout.output_at[0] > layout.panel_at[0] else layout.panel_at[0]
        draw.rectangle((layout.panel_at[0], layout.input_at[1] - layout.label_h - LABEL_GAP, panel_right,
                        layout.caption_at[1] - 6), fill=WHITE)
        self.words(draw, title, caption)
        input_grid.draw(self, draw, only_window=True)
        if panel is not None:
            panel.draw(self, draw)
        output.draw(self, draw, only_current=True)
        return image

    def words(self, draw: Any, title: str, caption: str) -> None:
        layout = self.layout
        self.text(draw, (MARGIN, MARGIN), title, layout.title_font, TITLE_INK)
        lines = [line for part in self.fonts.text(caption).split("\n")
                 for line in (textwrap.wrap(part, layout.caption_width) or [""])]
        for k, line in enumerate(lines[:CAPTION_LINES]):
            draw.text((layout.caption_at[0], layout.caption_at[1] + 20 * k), line, font=layout.caption_font, fill=INK)


@dataclass
class InputGrid:
    """The input canvas (padding and overhang included), its window, and the cells no window reaches."""

    canvas: Any
    label: str
    window: Sequence[Any] = ()
    reached: frozenset = frozenset()
    winner: Any = None

    def draw(self, painter: Painter, draw: Any, only_window: bool = False) -> None:
        layout = painter.layout
        origin = layout.input_at
        r0, r1 = self.canvas.rows
        c0, c1 = self.canvas.cols
        marked = {(c.row, c.col): c for c in self.window}
        if only_window:
            cells = [(r, c) for r, c in marked if r0 <= r < r1 and c0 <= c < c1]
        else:
            painter.text(draw, (origin[0], origin[1] - LABEL_GAP), self.label, layout.label_font, TITLE_INK, "ld")
            cells = [(r, c) for r in range(r0, r1) for c in range(c0, c1)]
        for r, c in cells:
            text, kind = self.canvas.text(r, c)
            box = layout.box(origin, r - r0, c - c0)
            if (r, c) in marked:
                is_winner = self.winner is not None and (r, c) == (self.winner.row, self.winner.col)
                fill = WINNER if is_winner else WINDOW if kind == REAL else WINDOW_PAD
                painter.cell(draw, box, fill, text, INK if kind == REAL else PAD_INK, edge=WINDOW_EDGE)
            elif kind == PAD:
                painter.cell(draw, box, PADDING, text, PAD_INK)
            elif kind == OUTSIDE:
                painter.cell(draw, box, OVERHANG, "·", PAD_INK)
            elif self.reached and (r, c) not in self.reached:
                painter.cell(draw, box, UNREACHED, text, PAD_INK, hatch=True)
            else:
                painter.cell(draw, box, WHITE, text)


@dataclass
class Panel:
    """Beside the input: the reduction over the window's values (the winner green), or the kernel."""

    label: str
    values: Sequence[Sequence[tuple[str, tuple]]]

    def draw(self, painter: Painter, draw: Any) -> None:
        layout = painter.layout
        origin = layout.panel_at
        painter.text(draw, (origin[0], origin[1] - LABEL_GAP), self.label, layout.label_font, TITLE_INK, "ld")
        for r, row in enumerate(self.values):
            for c, (text, fill) in enumerate(row):
                painter.cell(draw, layout.box(origin, r, c), fill, text, INK if fill != PADDING else PAD_INK)


@dataclass
class OutputGrid:
    """The output plane: cells done so far, the ones being written, the rest empty. ``rows`` and
    ``cols`` are the cells drawn (output coordinates): beyond the output they are the border a
    crop removes (grey), where ``cut`` (row, column, value) shows what the current step loses."""

    label: str
    shape: tuple[int, int]
    values: Any
    filled: dict
    current: tuple[int, int] | None = None
    targets: tuple[tuple[int, int], ...] = ()
    cut: tuple[tuple[int, int, float], ...] = ()
    rows: tuple[int, int] | None = None
    cols: tuple[int, int] | None = None

    def draw(self, painter: Painter, draw: Any, only_current: bool = False,
             cells: Iterable[tuple[int, int]] | None = None) -> None:
        """The grid; or only the cells being written (``only_current``), or only ``cells``."""
        layout = painter.layout
        origin = layout.output_at
        r0, r1 = self.rows or (0, self.shape[0])
        c0, c1 = self.cols or (0, self.shape[1])
        lost = {(r, c): value for r, c, value in self.cut}
        if only_current:
            cells = [cell for cell in {self.current, *self.targets, *lost} if cell is not None]
        elif cells is None:
            painter.text(draw, (origin[0], origin[1] - LABEL_GAP), self.label, layout.label_font, TITLE_INK, "ld")
            cells = [(r, c) for r in range(r0, r1) for c in range(c0, c1)]
        for r, c in cells:
            box = layout.box(origin, r - r0, c - c0)
            if (r, c) in lost:
                painter.cell(draw, box, WINDOW_PAD, fmt(lost[(r, c)]), PAD_INK, edge=WINDOW_EDGE)
            elif not (0 <= r < self.shape[0] and 0 <= c < self.shape[1]):
                painter.cell(draw, box, PADDING)
            elif (r, c) == self.current or (r, c) in self.targets:
                painter.cell(draw, box, CURRENT, fmt(self.filled.get((r, c), self.values[r][c])), edge=WINDOW_EDGE)
            elif (r, c) in self.filled:
                painter.cell(draw, box, FILLED, fmt(self.filled[(r, c)]))
            else:
                painter.cell(draw, box, EMPTY)


__all__ = ["Extent", "InputGrid", "Layout", "OutputGrid", "Painter", "Panel", "palette", "PAD", "REAL"]
