"""explain as a moving picture (``poolcli explain ... --animate FILE``): the window walks across
the grid, drawn with Pillow alone from the walkthrough's steps (``core.walkthrough``).

Frames, in order: for each stage, one frame per window position of its first plane (sample 0,
channel 0): the input grid with the window (padding grey, ``-∞`` for max; a ceil_mode overhang
``·``; cells no window reads hatched), beside it the reduction over the window's values (the
winner green) or the conv kernel, and the output grid filling in; the caption is the line
explain prints. A step that writes several output cells (``Step.targets``) lights them all with
the sums they hold after it, and what a crop cuts (``Step.cut``) in a grey border around the
output: so a transposed convolution, whose steps are its kernel copies (``Grid.step``), plays one
frame per input cell, the kernel beside it. Then one result frame per stage: the whole output
and its size formulas. So an animation has Σ steps (windows, elements or input cells) + one
frame per stage; step frames last 1/fps seconds, result frames twice that, and the last frame
3 s. Every frame has the same size.

The walk is read twice, once to size the frame and once to draw, and each frame is written as it
is drawn (``writers``), so memory does not grow with the number of frames.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ...core.textbook import OUTSIDE, PAD, fmt
from ...core.walkthrough import Grid, StageWalk, Step
from ..explain import caption
from .draw import PADDING, WINDOW, WINNER, Extent, InputGrid, Layout, OutputGrid, Painter, Panel, palette
from .fonts import Fonts
from .writers import FORMATS, writer_for

MAX_SIDE = 32  # rows or columns of a stage's input or output that still make a readable picture
PANEL_LIMIT = 8  # a window wider or taller than this is not repeated beside the grid
DEFAULT_FPS = 1.0
MAX_FPS = 50.0
LAST_FRAME_MS = 3000


@dataclass
class StageSurvey:
    """What the first reading of a stage learns: its grids' sizes, the cells any window reads,
    its number of frames and its longest caption."""

    heading: str
    rows: tuple[int, int] = (0, 0)
    cols: tuple[int, int] = (0, 0)
    output: tuple[int, int] = (0, 0)
    out_rows: tuple[int, int] = (0, 0)  # the output grid's rows drawn, a cropped border included
    out_cols: tuple[int, int] = (0, 0)
    panel: tuple[int, int] = (0, 0)
    reached: set = field(default_factory=set)
    written: set = field(default_factory=set)
    windowed: bool = False
    unit: str | None = None
    steps: int = 0
    caption_chars: int = 0
    caption_lines: int = 1
    labels: tuple[str, str, str] = ("", "", "")


def first_plane_steps(walk: StageWalk) -> Iterator[Step]:
    """The steps of a stage's first plane (the walk stops being read after them), a grid's
    step (``Grid.step``) among them."""
    plane = None
    for item in walk.items():
        if isinstance(item, Grid):
            item = item.step
        if isinstance(item, Step) and item.plane is not None:
            if plane is None:
                plane = item.plane
            elif item.plane is not plane:
                return
            yield item


def _taps(step: Step) -> tuple[int, int]:
    if not step.cells:
        return (0, 0)
    return (max(c.tap[0] for c in step.cells) + 1, max(c.tap[1] for c in step.cells) + 1)


def _panel_shape(step: Step) -> tuple[int, int]:
    if step.plane.kernel is not None:
        shape = (len(step.plane.kernel), len(step.plane.kernel[0]))
    elif step.plane.reduction is not None:
        shape = _taps(step)
    else:
        return (0, 0)
    return shape if max(shape) <= PANEL_LIMIT else (0, 0)


def result_caption(walk: StageWalk) -> str:
    shape = walk.plan.output_shape
    formulas = [f"{axis}_out: {text}" for axis, text in (walk.plan.formula or {}).items()]
    return "\n".join([f"output Y ({shape[-2]}×{shape[-1]})", *formulas])


def survey(walk: StageWalk) -> StageSurvey:
    result = result_caption(walk).split("\n")
    found = StageSurvey(walk.heading.text, caption_chars=max(map(len, result)), caption_lines=len(result))
    for step in first_plane_steps(walk):
        if not found.steps:
            found.rows, found.cols = step.plane.canvas.rows, step.plane.canvas.cols
            found.output = (len(step.plane.output), len(step.plane.output[0]))
            found.out_rows, found.out_cols = (0, found.output[0]), (0, found.output[1])
            found.unit = step.plane.unit
            panel = _panel(step)
            found.labels = (_input_label(step.plane), panel.label if panel else "", "")
        found.steps += 1
        found.panel = tuple(max(a, b) for a, b in zip(found.panel, _panel_shape(step)))  # type: ignore[assignment]
        found.reached.update((c.row, c.col) for c in step.cells if c.kind not in (PAD, OUTSIDE))
        found.written.update(step.written)
        for r, c, _ in step.cut:
            found.out_rows = (min(found.out_rows[0], r), max(found.out_rows[1], r + 1))
            found.out_cols = (min(found.out_cols[0], c), max(found.out_cols[1], c + 1))
        found.windowed = found.windowed or step.plane.reduction is not None or step.plane.kernel is not None
        found.caption_chars = max(found.caption_chars, len(caption(step.line)))
    if found.steps:
        found.labels = (found.labels[0], found.labels[1], _output_label(found))
    return found


def _panel(step: Step) -> Panel | None:
    rows, cols = _panel_shape(step)
    if not rows:
        return None
    if step.plane.kernel is not None:
        return Panel("kernel K", [[(fmt(v), (255, 255, 255)) for v in row] for row in step.plane.kernel])
    grid: list[list[tuple[str, tuple]]] = [[("", PADDING) for _ in range(cols)] for _ in range(rows)]
    winner = (step.winner.row, step.winner.col) if step.winner is not None else None
    for cell in step.cells:
        text, kind = step.plane.canvas.text(cell.row, cell.col)
        fill = WINNER if (cell.row, cell.col) == winner else WINDOW if kind == "real" else PADDING
        grid[cell.tap[0]][cell.tap[1]] = (text, fill)
    return Panel(f"{step.plane.reduction} of the window", grid)


def title(found: StageSurvey, number: int) -> str:
    unit = found.unit or ("window" if found.windowed else "element")
    return f"{found.heading}   {unit} {number} of {found.steps}"


def _input_label(view: Any) -> str:
    return f"{view.name or 'input X'} ({view.canvas.plane.H}×{view.canvas.plane.W})"


def _output_label(found: StageSurvey) -> str:
    cropped = found.out_rows != (0, found.output[0]) or found.out_cols != (0, found.output[1])
    return f"output Y ({found.output[0]}×{found.output[1]})" + (", cropped border grey" if cropped else "")


def _output_grid(found: StageSurvey, values: list, filled: dict, label: str = "", step: Step | None = None) -> OutputGrid:
    """The output grid of a stage (its cropped border too); with ``step``, the cells it writes lit."""
    if step is None:
        return OutputGrid(label, found.output, values, filled, rows=found.out_rows, cols=found.out_cols)
    return OutputGrid(label, found.output, values, filled, tuple(step.out) if step.targets is None else None,
                      step.written, step.cut, found.out_rows, found.out_cols)  # type: ignore[arg-type]


def frames(walks: Iterable[StageWalk], surveys: list[StageSurvey], painter: Painter, fps: float) -> Iterator[tuple[Any, int]]:
    """(frame, duration in ms) for every window of every stage, then each stage's result.

    Each stage's grids are drawn once (``standing``); a window's frame is drawn over a copy of
    them, and the output cell it wrote is then added to them."""
    from PIL import ImageDraw

    step_ms = round(1000 / fps)
    for walk, found in zip(walks, surveys):
        reached = frozenset(found.reached) if found.windowed else frozenset()
        standing = None
        last: Step | None = None
        for k, step in enumerate(first_plane_steps(walk)):
            if standing is None:  # what no step writes is there from the start (pad's inner cells, unpool's zeros)
                values = step.plane.output
                filled = {(r, c): values[r][c] for r in range(found.output[0]) for c in range(found.output[1])
                          if (r, c) not in found.written}
                standing = painter.frame("", InputGrid(step.plane.canvas, _input_label(step.plane), (), reached), None,
                                         _output_grid(found, values, filled, found.labels[2]), "")
                pen = ImageDraw.Draw(standing)
            written = step.written
            sums = step.sums or [step.value if cell == tuple(step.out) else step.plane.output[cell[0]][cell[1]]
                                 for cell in written]
            filled.update(zip(written, sums))
            grid = InputGrid(step.plane.canvas, _input_label(step.plane), step.cells, reached, step.winner)
            output = _output_grid(found, step.plane.output, filled, step=step)
            yield painter.overlay(standing, title(found, k + 1), grid, _panel(step), output, caption(step.line)), step_ms
            _output_grid(found, step.plane.output, filled).draw(painter, pen, cells=written)
            last = step
        if last is None:
            continue
        values = last.plane.output
        done = {(r, c): values[r][c] for r in range(found.output[0]) for c in range(found.output[1])}
        grid = InputGrid(last.plane.canvas, _input_label(last.plane), (), reached)
        output = _output_grid(found, values, done, found.labels[2])
        yield painter.frame(f"{found.heading}   result", grid, None, output, result_caption(walk)), 2 * step_ms


def prepare(walks: Iterable[StageWalk], fonts: Fonts | None = None) -> tuple[list[StageSurvey], Painter]:
    """The first reading: every stage surveyed, and the painter of the frame that fits them all."""
    surveys = [survey(walk) for walk in walks]
    extent = Extent(
        input_rows=max(s.rows[1] - s.rows[0] for s in surveys), input_cols=max(s.cols[1] - s.cols[0] for s in surveys),
        panel_rows=max(s.panel[0] for s in surveys), panel_cols=max(s.panel[1] for s in surveys),
        output_rows=max(s.out_rows[1] - s.out_rows[0] for s in surveys),
        output_cols=max(s.out_cols[1] - s.out_cols[0] for s in surveys),
        caption_chars=max(s.caption_chars for s in surveys), caption_lines=max(s.caption_lines for s in surveys),
        labels=tuple(max((s.labels[k] for s in surveys), key=len) for k in range(3)),  # type: ignore[arg-type]
        title=max((title(s, s.steps) for s in surveys), key=len),
    )
    return surveys, Painter(Layout(extent, fonts or Fonts()))


def animate(walks: Callable[[], Iterable[StageWalk]], path: str, fps: float = DEFAULT_FPS,
            fonts: Fonts | None = None) -> int:
    """Write the animation of the stages ``walks()`` yields (it is called twice) to ``path``
    (``.gif`` or ``.png`` as APNG); the number of frames written."""
    surveys, painter = prepare(walks(), fonts)
    writer = writer_for(path, painter.layout.size, palette())
    try:
        held = None
        for frame, duration in frames(walks(), surveys, painter, fps):
            if held is not None:
                writer.add(*held)
            held = (frame, duration)
        if held is not None:
            writer.add(held[0], max(LAST_FRAME_MS, held[1]))
    except BaseException:
        writer.abort()
        raise
    return writer.close()


__all__ = ["DEFAULT_FPS", "FORMATS", "MAX_FPS", "MAX_SIDE", "animate", "first_plane_steps", "frames", "prepare", "survey"]
