"""The report's tables: one row per stage with the formulas worked out in numbers, and the
batch summary.

Computing and presenting are apart: ``core.plan.Plan`` holds the numbers and the run's timings
travel beside it; this module only reads them, as torchinfo keeps layer statistics apart from
their rendering. The table for d2l's ``nn.MaxPool2d(3, padding=1, stride=2)`` on 1×1×4×4 shows
the H_out cell ``⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2``.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from ..core import arithmetic as ar
from ..core.plan import Plan, StagePlan

COLUMNS = ("#", "stage", "in", "out", "H_out", "W_out", "RF", "jump", "params", "ops", "ms")


def _cell_shape(shape: Iterable[int]) -> str:
    return ar.format_shape(shape)


def _formula_cells(stage: StagePlan) -> tuple[str, str]:
    formula = stage.formula or {}
    if "features" in formula:
        return formula["features"], ""
    return formula.get("H", ""), formula.get("W", "")


def _field(values: tuple[Any, Any]) -> str:
    h, w = values
    return f"{h}x{w}" if h != w else str(h)


def plan_rows(plan: Plan, seconds: Sequence[float] | None = None) -> list[list[str]]:
    """The table's cells as plain strings (also what the golden tests compare); with ``seconds``
    (one per stage, from the run) an ``ms`` column."""
    rows = []
    for stage in plan.stages:
        h_cell, w_cell = _formula_cells(stage)
        row = [
            str(stage.index),
            stage.stage.label() + ("" if stage.pairs_with is None else f" ↩{stage.pairs_with}"),
            _cell_shape(stage.input_shape),
            _cell_shape(stage.output_shape),
            h_cell,
            w_cell,
            _field(tuple(("" if exact else "≤") + str(size)
                         for size, exact in zip(stage.receptive_field, stage.field_exact))),
            _field(tuple(ar.fraction_text(j) for j in stage.jump_fraction)),
            f"{stage.params_count:,}",
            ar.human_count(stage.ops),
        ]
        if seconds is not None:
            took = seconds[stage.index] if stage.index < len(seconds) else None
            row.append("" if took is None else f"{took * 1000:.2f}")
        rows.append(row)
    return rows


def plan_table(
    plan: Plan,
    *,
    title: str | None = None,
    seconds: Sequence[float] | None = None,
    caption: str | None = None,
) -> Any:
    """The plan as a renderable: one row per stage, the formulas worked out in numbers.

    Where the console is too narrow for the formulas to sit in their columns without folding
    mid-number, they move under the table, one line per stage::

          0 H_out, W_out: ⌊(28 + 2·2 − 1·(5−1) − 1)/1⌋ + 1 = 28
    """
    return PlanTable(plan, title=title, seconds=seconds, caption=caption)


class PlanTable:
    """Chooses a layout at render time, when the width is known, so that nothing is ever cut:

    - wide: every column, the formulas in theirs;
    - narrow: the formulas move under the table, one line per stage, and stage labels fold
      between their parameters (``avgpool:k=3,`` / ``s=2,ceil=true``), never inside a word;
    - a terminal too narrow for even that gets one block per stage, a figure to a line.
    """

    def __init__(self, plan: Plan, *, title: str | None, seconds: Sequence[float] | None, caption: str | None):
        self.plan, self.title, self.seconds, self.caption = plan, title, seconds, caption

    def __rich_console__(self, console: Any, options: Any) -> Any:
        width = options.max_width
        wide = self._table(with_formulas=True)
        if _measure(console, options, wide) <= width:
            yield wide
            return
        labels = [row[1] for row in plan_rows(self.plan)]
        longest_chunk = max((len(chunk) for label in labels for chunk in label_chunks(label)), default=1)
        for label_width in range(max((len(label) for label in labels), default=1), longest_chunk - 1, -1):
            table = self._table(with_formulas=False, label_width=label_width)
            if _measure(console, options, table) <= width:
                yield table
                yield from self._formula_lines()
                return
        numbers = self._table(with_formulas=False, with_labels=False)
        if _measure(console, options, numbers) <= width:
            yield numbers
            yield from self._formula_lines(label_width=max(10, width - 5))
            return
        yield from self._blocks(max(10, width - 3))

    def _table(self, with_formulas: bool, label_width: int | None = None, with_labels: bool = True) -> Any:
        from rich import box
        from rich.table import Table

        names = COLUMNS if self.seconds is not None else COLUMNS[:-1]
        keep = [i for i, name in enumerate(names)
                if (with_formulas or name not in ("H_out", "W_out")) and (with_labels or name != "stage")]
        table = Table(
            title=self.title, caption=self.caption if with_formulas else None,
            box=box.SIMPLE_HEAVY, title_justify="left", caption_justify="left",
            padding=(0, 1) if with_formulas else (0, 1, 0, 0), pad_edge=with_formulas,
        )
        for i in keep:
            numeric = names[i] in ("#", "params", "ops", "ms")
            formula = names[i] in ("H_out", "W_out")
            table.add_column(names[i], justify="right" if numeric else "left", overflow="fold", no_wrap=not formula)
        for row in plan_rows(self.plan, self.seconds):
            if label_width is not None:
                row[1] = "\n".join(fold_label(row[1], label_width))
            table.add_row(*(row[i] for i in keep))
        return table

    def _formula_lines(self, label_width: int | None = None) -> Any:
        """Each stage's formulas under the table, one line each (folding only at spaces); where the
        table has no stage column, each stage's label first, folded between its parameters."""
        from rich.table import Table
        from rich.text import Text

        def grid() -> Any:
            table = Table.grid(padding=(0, 1))
            table.add_column(justify="right", min_width=3)
            table.add_column(no_wrap=True)
            table.add_column(overflow="fold")
            return table

        rows = grid()
        for stage, row in zip(self.plan.stages, plan_rows(self.plan)):
            if label_width is not None:
                if rows.row_count:
                    yield rows
                    rows = grid()
                for n, line in enumerate(fold_label(row[1], label_width)):
                    yield Text(f"{str(stage.index) if n == 0 else '':>3} {line}")
            for n, (name, formula) in enumerate(_formula_lines(stage)):
                rows.add_row(str(stage.index) if n == 0 and label_width is None else "", name, formula)
        if rows.row_count:
            yield rows
        if self.caption:
            yield Text("")
            yield Text(self.caption)

    def _blocks(self, label_width: int) -> Any:
        """One block per stage: its label folded between parameters, then a figure to a line."""
        from rich.text import Text

        if self.title:
            yield Text(self.title)
        names = COLUMNS if self.seconds is not None else COLUMNS[:-1]
        for row, stage in zip(plan_rows(self.plan, self.seconds), self.plan.stages):
            lines = fold_label(row[1], label_width)
            yield Text(f"{row[0]}  {lines[0]}")
            for line in lines[1:]:
                yield Text(f"   {line}")
            for name, value in zip(names[2:], row[2:]):
                if name not in ("H_out", "W_out") and value != "":
                    yield Text(f"   {name} {value}")
            for name, formula in _formula_lines(stage):
                yield Text(f"   {name} {formula}")
        if self.caption:
            yield Text("")
            yield Text(self.caption)


def _measure(console: Any, options: Any, renderable: Any) -> int:
    from rich.measure import Measurement

    return Measurement.get(console, options.update(max_width=10_000), renderable).maximum


def _formula_lines(stage: StagePlan) -> list[tuple[str, str]]:
    """A stage's formulas as (name, formula) lines: both axes in one where they are the same."""
    h_cell, w_cell = _formula_cells(stage)
    if not h_cell:
        return []
    if stage.formula and "features" in stage.formula:
        return [("features:", h_cell)]
    if h_cell == w_cell:
        return [("H_out, W_out:", h_cell)]
    return [("H_out:", h_cell), ("W_out:", w_cell)]


def label_chunks(label: str) -> list[str]:
    """A stage label cut where it may fold: after the op's colon and after each top-level comma
    (a matrix's inner commas only when a single value is itself long); a chunk keeps its comma.

    >>> label_chunks("avgpool:k=3,s=2,ceil=true")
    ['avgpool:', 'k=3,', 's=2,', 'ceil=true']
    """
    head, colon, rest = label.partition(":")
    chunks = [head + colon] if colon else [head]
    depth, current = 0, ""
    for char in rest:
        current += char
        depth += char in "([{"
        depth -= char in ")]}"
        if char == "," and depth == 0:
            chunks.append(current)
            current = ""
    if current:
        chunks.append(current)
    return [chunk for chunk in chunks if chunk]


def fold_label(label: str, width: int) -> list[str]:
    """The label in lines of at most ``width`` characters, folded only between its chunks (a chunk
    longer than ``width`` gets a line of its own).

    >>> fold_label("conv:filter=sobel-x,p=1,padding_mode=reflect", 20)
    ['conv:filter=sobel-x,', 'p=1,', 'padding_mode=reflect']
    """
    lines: list[str] = []
    for chunk in label_chunks(label):
        pieces = [chunk] if len(chunk) <= width else inner_chunks(chunk)
        for piece in pieces:
            if lines and len(lines[-1]) + len(piece) <= width:
                lines[-1] += piece
            else:
                lines.append(piece)
    return lines or [label]


def inner_chunks(chunk: str) -> list[str]:
    """A long value cut after each of its inner commas (between a matrix's numbers).

    >>> inner_chunks("weight=[[0,1],[2,3]]")
    ['weight=[[0,', '1],', '[2,', '3]]']
    """
    pieces = [piece + "," for piece in chunk.split(",")]
    pieces[-1] = pieces[-1][:-1]
    return [piece for piece in pieces if piece]


def plan_caption(plan: Plan, extra: Iterable[str] = (), notes: Iterable[str] = ()) -> str:
    """Totals under the table, then the plan's notes and the run's (``notes``)."""
    parts = [
        f"{ar.format_shape(plan.input_shape)} → {ar.format_shape(plan.output_shape)}",
        f"params {plan.params_count:,}",
        f"ops {ar.human_count(plan.ops)}",
    ]
    parts.extend(extra)
    notes = list(plan.notes) + list(notes)
    text = " · ".join(parts)
    if notes:
        text += "\n" + "\n".join(f"note: {n}" for n in notes)
    return text


FAILURES_SHOWN = 20


def summary_table(counts: dict[str, Any], failures: Sequence[str] = ()) -> Any:
    """The batch summary (ok, skipped, failed, seconds, images/s, MP/s) and, when files failed,
    which and why: the first ``FAILURES_SHOWN`` error lines, then how many more."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    table = Table(box=box.SIMPLE_HEAVY, title="summary", title_justify="left")
    for key in counts:
        table.add_column(key, justify="right", no_wrap=True)
    table.add_row(*(str(v) for v in counts.values()))
    if not failures:
        return table
    lines = [Text(f"failed ({len(failures)}):")]
    lines += [Text(f"  {line}", overflow="fold") for line in failures[:FAILURES_SHOWN]]
    if len(failures) > FAILURES_SHOWN:
        lines.append(Text(f"  … and {len(failures) - FAILURES_SHOWN} more (--json or --report FILE lists every one)"))
    return Group(table, *lines)


def other_shapes_line(shown: tuple[int, ...], shapes: dict[tuple[int, ...], int]) -> str | None:
    """Under a batch's one table: how many other input shapes there were, None when there were none.

    >>> other_shapes_line((1, 3, 4, 4), {(1, 3, 4, 4): 2, (1, 3, 8, 8): 1, (1, 1, 8, 8): 3})
    "and 4 more files in 2 other shapes (--json or --report FILE has every file's shapes)"
    """
    others = {shape: count for shape, count in shapes.items() if shape != shown}
    if not others:
        return None
    files = sum(others.values())
    return (f"and {files} more file{'s' * (files != 1)} in {len(others)} other shape{'s' * (len(others) != 1)} "
            "(--json or --report FILE has every file's shapes)")


class FileTable:
    """Facts about files (``poolcli info``): a table, its file names folded only after a ``/``
    where the terminal is narrow, else one block per file; a name itself is never broken."""

    def __init__(self, columns: Sequence[str], rows: Sequence[Sequence[str]]):
        self.columns, self.rows = list(columns), [list(row) for row in rows]

    def _table(self, name_width: int | None) -> Any:
        from rich import box
        from rich.table import Table

        table = Table(box=box.SIMPLE_HEAVY, padding=(0, 1, 0, 0), pad_edge=False)
        for name in self.columns:
            table.add_column(name, no_wrap=True)
        for row in self.rows:
            path = row[0] if name_width is None else "\n".join(fold_path(row[0], name_width))
            table.add_row(path, *row[1:])
        return table

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.text import Text

        longest = max((len(row[0]) for row in self.rows), default=1)
        part = max((len(piece) for row in self.rows for piece in fold_path(row[0], 1)), default=1)
        for width in [None, *range(longest - 1, part - 1, -1)]:
            table = self._table(width)
            if _measure(console, options, table) <= options.max_width:
                yield table
                return
        for row in self.rows:
            yield Text(row[0])
            for name, value in zip(self.columns[1:], row[1:]):
                yield Text(f"  {name} {value}")


def fold_path(path: str, width: int) -> list[str]:
    """A path in lines of at most ``width``, folded only after a ``/`` (a longer name stays whole).

    >>> fold_path("sample_images/palette_transparent.png", 20)
    ['sample_images/', 'palette_transparent.png']
    """
    pieces = [piece + "/" for piece in path.split("/")]
    pieces[-1] = pieces[-1][:-1]
    lines: list[str] = []
    for piece in (p for p in pieces if p):
        if lines and len(lines[-1]) + len(piece) <= width:
            lines[-1] += piece
        else:
            lines.append(piece)
    return lines or [path]
