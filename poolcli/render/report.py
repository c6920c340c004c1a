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
            _field(stage.receptive_field),
            _field(stage.jump),
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
    """Chooses the wide or the narrow layout at render time, when the width is known."""

    def __init__(self, plan: Plan, *, title: str | None, seconds: Sequence[float] | None, caption: str | None):
        self.plan, self.title, self.seconds, self.caption = plan, title, seconds, caption

    def __rich_console__(self, console: Any, options: Any) -> Any:
        from rich.measure import Measurement

        wide = self._table(with_formulas=True)
        natural = Measurement.get(console, options.update(max_width=10_000), wide).maximum
        if natural <= options.max_width:
            yield wide
            return
        yield self._table(with_formulas=False)
        yield from self._formula_lines()

    def _table(self, with_formulas: bool) -> Any:
        from rich import box
        from rich.table import Table

        names = COLUMNS if self.seconds is not None else COLUMNS[:-1]
        keep = [i for i, name in enumerate(names) if with_formulas or name not in ("H_out", "W_out")]
        table = Table(
            title=self.title, caption=self.caption if with_formulas else None,
            box=box.SIMPLE_HEAVY, title_justify="left", caption_justify="left",
            padding=(0, 1) if with_formulas else (0, 1, 0, 0), pad_edge=with_formulas,
        )
        for i in keep:
            numeric = names[i] in ("#", "params", "ops", "ms")
            table.add_column(
                names[i], justify="right" if numeric else "left", overflow="fold",
                no_wrap=names[i] not in ("stage", "H_out", "W_out"),
            )
        for row in plan_rows(self.plan, self.seconds):
            table.add_row(*(row[i] for i in keep))
        return table

    def _formula_lines(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        grid = Table.grid(padding=(0, 1))
        grid.add_column(justify="right", min_width=3)
        grid.add_column(no_wrap=True)
        grid.add_column(overflow="fold")
        for stage in self.plan.stages:
            h_cell, w_cell = _formula_cells(stage)
            if not h_cell:
                continue
            if stage.formula and "features" in stage.formula:
                lines = [("features:", h_cell)]
            elif h_cell == w_cell:
                lines = [("H_out, W_out:", h_cell)]
            else:
                lines = [("H_out:", h_cell), ("W_out:", w_cell)]
            for n, (name, formula) in enumerate(lines):
                grid.add_row(str(stage.index) if n == 0 else "", name, formula)
        yield grid
        if self.caption:
            yield Text("")
            yield Text(self.caption)


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


def summary_table(counts: dict[str, Any]) -> Any:
    """The batch summary: ok, skipped, failed, seconds, images/s, MP/s."""
    from rich import box
    from rich.table import Table

    table = Table(box=box.SIMPLE_HEAVY, title="summary", title_justify="left")
    for key in counts:
        table.add_column(key, justify="right")
    table.add_row(*(str(v) for v in counts.values()))
    return table
