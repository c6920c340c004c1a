"""explain's text: the walkthrough's items (``core.walkthrough``) as rich renderables. It reads
the walkthrough and computes nothing; every line is built once from its segments
(``lines.line_text``), so the caption of an animation frame is the line printed here.

    >>> import io
    >>> from rich.console import Console
    >>> from poolcli.core.spec import parse_stage
    >>> from poolcli.core.walkthrough import walk_stage
    >>> walk = walk_stage(parse_stage("maxpool:2,s=1"), [[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]]])
    >>> console = Console(file=io.StringIO(), width=80, color_system=None)
    >>> for part in render_stage(walk):
    ...     console.print(part)
    >>> "0 [0][1] 2" in console.file.getvalue()
    True
"""

from __future__ import annotations

from typing import Any, Iterator

from ...core.textbook import fmt
from ...core.walkthrough import Grid, Heading, StageWalk, Step, Text, Vector
from .grids import GRID_VIEW, grid_parts, window_block
from .lines import caption, line_text


def heading(item: Heading) -> Any:
    from rich.rule import Rule
    from rich.text import Text as RichText

    return Rule(RichText(item.text, style="bold"), align="left")


def vector(item: Vector) -> list[Any]:
    from rich.text import Text as RichText

    values = [fmt(v) for v in item.values[: GRID_VIEW * 2]]
    more = f" … ({len(item.values)} values)" if len(item.values) > len(values) else ""
    return [RichText(f"{item.title} ({len(item.values)})", style="bold"), RichText("[" + ", ".join(values) + more + "]")]


def render_item(item: Any) -> list[Any]:
    """The renderables of one walkthrough item, printed one after the other."""
    if isinstance(item, Heading):
        return [heading(item)]
    if isinstance(item, Text):
        return [line_text(item.line)]
    if isinstance(item, Grid):
        return grid_parts(item)
    if isinstance(item, Vector):
        return vector(item)
    if isinstance(item, Step):
        if item.canvas is None:
            return [line_text(item.line)]
        return [window_block(item.canvas, item.cells, line_text(item.line), item.notes)]
    raise TypeError(f"not a walkthrough item: {item!r}")


def render(walk: StageWalk) -> Iterator[Any]:
    """A stage's renderables, made as they are printed."""
    for item in walk.items():
        yield from render_item(item)


def render_stage(walk: StageWalk) -> list[Any]:
    return list(render(walk))


__all__ = ["caption", "fmt", "line_text", "render", "render_item", "render_stage"]
