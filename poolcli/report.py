"""The report: a rich table per distinct input shape, and JSON Lines records, from one plan.

Computing and presenting are apart: ``pipeline.Plan`` holds the numbers; this module only
formats them, as torchinfo keeps layer statistics apart from their rendering. The table for
d2l's ``nn.MaxPool2d(3, padding=1, stride=2)`` on 1×1×4×4 shows the H_out cell
``⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2``.
"""

from __future__ import annotations

import json
from typing import Any, Iterable

from . import arithmetic as ar
from .pipeline import Plan
from .stages import StagePlan

COLUMNS = ("#", "stage", "in", "out", "H_out", "W_out", "RF", "jump", "params", "ops", "ms")


def stage_record(stage: StagePlan) -> dict[str, Any]:
    """One stage as DESIGN.md §4's JSON object."""
    return {
        "index": stage.index,
        "op": stage.op,
        "params": stage.stage.params(),
        "input_shape": list(stage.input_shape),
        "output_shape": list(stage.output_shape),
        "formula": stage.formula,
        "receptive_field": list(stage.receptive_field),
        "jump": list(stage.jump),
        "params_count": stage.params_count,
        "ops": stage.ops,
        "seconds": None if stage.seconds is None else round(stage.seconds, 6),
    }


def record(
    *,
    input: str,
    output: str | None = None,
    status: str = "ok",
    error: str | None = None,
    device: str | None = None,
    plan: Plan | None = None,
    seconds: Iterable[float] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The JSON Lines object for one input (or for ``shape``): DESIGN.md §4's keys, in order."""
    stages = []
    if plan is not None:
        times = list(seconds) if seconds is not None else [None] * len(plan.stages)
        for stage, took in zip(plan.stages, times):
            stage.seconds = took
            stages.append(stage_record(stage))
    result = {
        "input": input,
        "output": output,
        "status": status,
        "error": error,
        "device": device,
        "input_shape": list(plan.input_shape) if plan else None,
        "output_shape": list(plan.output_shape) if plan else None,
        "stages": stages,
    }
    result.update(extra)
    return result


def json_line(obj: dict[str, Any]) -> str:
    return json.dumps(obj, ensure_ascii=False)


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


def plan_rows(plan: Plan, timed: bool) -> list[list[str]]:
    """The table's cells as plain strings (also what the golden tests compare)."""
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
        if timed:
            row.append("" if stage.seconds is None else f"{stage.seconds * 1000:.2f}")
        rows.append(row)
    return rows


def plan_table(
    plan: Plan,
    *,
    title: str | None = None,
    timed: bool = False,
    caption: str | None = None,
) -> Any:
    """The plan as a renderable: one row per stage, the formulas worked out in numbers.

    Where the console is too narrow for the formulas to sit in their columns without folding
    mid-number, they move under the table, one line per stage::

          0 H_out, W_out: ⌊(28 + 2·2 − 1·(5−1) − 1)/1⌋ + 1 = 28
    """
    return PlanTable(plan, title=title, timed=timed, caption=caption)


class PlanTable:
    """Chooses the wide or the narrow layout at render time, when the width is known."""

    def __init__(self, plan: Plan, *, title: str | None, timed: bool, caption: str | None):
        self.plan, self.title, self.timed, self.caption = plan, title, timed, caption

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

        names = COLUMNS if self.timed else COLUMNS[:-1]
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
        for row in plan_rows(self.plan, self.timed):
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


def plan_caption(plan: Plan, extra: Iterable[str] = ()) -> str:
    """Totals and notes under the table."""
    parts = [
        f"{ar.format_shape(plan.input_shape)} → {ar.format_shape(plan.output_shape)}",
        f"params {plan.params_count:,}",
        f"ops {ar.human_count(plan.ops)}",
    ]
    parts.extend(extra)
    notes = [note for stage in plan.stages for note in stage.notes] + list(plan.notes)
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
