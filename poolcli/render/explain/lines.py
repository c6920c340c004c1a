"""A walkthrough line, built once from its segments: the rich Text that explain prints, whose
``.plain`` is the caption a picture shows.

    >>> from poolcli.core.walkthrough import Segment, Terms
    >>> text = line_text((Segment("max("), Terms(tuple(Segment(str(v)) for v in range(30)), ", "), Segment(")")))
    >>> text.plain
    'max(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, … 16 more …, 28, 29)'
"""

from __future__ import annotations

from typing import Any

from ...core.walkthrough import Line, Segment, Terms
from ...core.walkthrough.items import HEADING, LABEL, MAX_TERMS, MUTED, PADDED, VALUE

STYLES = {VALUE: "bold", LABEL: "bold", HEADING: "bold underline", MUTED: "dim", PADDED: "dim"}
KEPT_FIRST, KEPT_LAST = 12, 2  # terms kept around '…' when a list is longer than MAX_TERMS


def shortened(terms: Terms) -> list[Segment]:
    """The terms with their separators; a long list keeps its first and last terms around '…'."""
    items: list[Segment] = list(terms.items)
    if len(items) > MAX_TERMS:
        hidden = len(items) - KEPT_FIRST - KEPT_LAST
        items = items[:KEPT_FIRST] + [Segment(f"… {hidden} more …", MUTED)] + items[-KEPT_LAST:]
    out: list[Segment] = []
    for k, item in enumerate(items):
        if k:
            out.append(Segment(terms.sep))
        out.append(item)
    return out


def segments(line: Line) -> list[Segment]:
    """A line's pieces as segments, long term lists shortened."""
    out: list[Segment] = []
    for piece in line:
        out.extend(shortened(piece) if isinstance(piece, Terms) else [piece])
    return out


def line_text(line: Line) -> Any:
    """The rich Text of a line (styles by segment kind)."""
    from rich.text import Text

    text = Text()
    for segment in segments(line):
        text.append(segment.text, style=STYLES.get(segment.kind) if segment.kind else None)
    return text


def caption(line: Line) -> str:
    """The line as plain text, exactly as explain prints it (long term lists shortened)."""
    return "".join(segment.text for segment in segments(line))
