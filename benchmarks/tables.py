"""Result rows and their Markdown tables (padded, so the same text reads well in a terminal).

Ratios are always "this row's time / poolcli's time" for the same task: above 1 poolcli is
faster, below 1 the row is. The floor row is compared with poolcli's avg.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from measure import Timing

@dataclass(frozen=True)
class Row:
    """One timed command; ``timing`` None when it was skipped or failed (``note`` says why)."""

    label: str
    task: str
    timing: Timing | None
    images: int
    note: str = ""
    baseline: bool = False  # poolcli as it starts by default: the row the ratios divide by


@dataclass
class Table:
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def markdown(self) -> str:
        rows = [[cell.replace("|", "\\|") for cell in row] for row in self.rows]  # an error message may hold one
        widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(self.headers)]

        def line(cells: list[str]) -> str:
            return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"

        parts = [f"### {self.title}", "", line(self.headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
        parts += [line(row) for row in rows]
        if self.notes:
            parts += [""] + [f"- {note}" for note in self.notes]
        return "\n".join(parts) + "\n"


def number(value: float) -> str:
    """Three significant digits, whole numbers from 100 up: 0.0123, 1.23, 123, 1234."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


def _baselines(rows: list[Row]) -> dict[str, float]:
    times = {row.task: row.timing.median_s for row in rows if row.baseline and row.timing}
    if "avg" in times:
        times["floor"] = times["avg"]
    return times


def timing_table(title: str, rows: list[Row], notes: list[str] | None = None) -> Table:
    """tool, task, median s, images/s, peak MB, CPU/wall, × poolcli, note."""
    table = Table(title, ["tool", "task", "median s", "images/s", "peak MB", "CPU/wall", "× poolcli", "note"],
                  notes=list(notes or []))
    baselines = _baselines(rows)
    for row in rows:
        t = row.timing
        if t is None:
            table.rows.append([row.label, row.task, "–", "–", "–", "–", "–", row.note])
            continue
        rate = number(row.images / t.median_s) if row.images else "–"
        ratio = f"{t.median_s / baselines[row.task]:.2f}" if row.task in baselines else "–"
        peak = "–" if t.peak_mb is None else f"{t.peak_mb:.0f}"
        table.rows.append([row.label, row.task, number(t.median_s), rate, peak,
                           f"{t.cpu_per_wall:.2f}", ratio, row.note])
    return table
