"""Paired timings: two commands run in turn, A B A B …, and the ratio A/B taken pair by pair.

Why: on a shared machine (this one has 2 cores and several sessions) speed drifts by 10–30%
between minutes, more than many changes are worth. Two commands timed in separate blocks then
compare two different minutes; alternating them and taking each pair's ratio compares like with
like, and the median of those ratios moves little when a neighbour starts or stops working.

    .venv/bin/python benchmarks/paired.py --pairs 10 -- poolcli pool d -o o1 -q -- python s.py d o2

Also the ``paired`` suite of run.py (suites.py), which pairs poolcli with the Pillow script and
with the floors, and poolcli with itself at ``--before REV``.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from measure import Usage, run_once


@dataclass(frozen=True)
class Paired:
    """Medians of A's and B's runs and of the pair-by-pair ratios (wall and CPU), with the ratios' spread."""

    pairs: int
    a_wall: float
    b_wall: float
    a_cpu: float
    b_cpu: float
    wall_ratio: float
    wall_ratio_low: float
    wall_ratio_high: float
    cpu_ratio: float
    a_peak_mb: float | None = None  # the largest of A's runs (GNU time), None without it
    b_peak_mb: float | None = None

    def cells(self) -> list[str]:
        """median s A, B; CPU/wall A, B; A/B wall median [min–max]; A/B CPU; peak MB A, B."""
        peaks = "–" if self.a_peak_mb is None or self.b_peak_mb is None else f"{self.a_peak_mb:.0f} / {self.b_peak_mb:.0f}"
        return [f"{self.a_wall:.3f}", f"{self.b_wall:.3f}", f"{self.a_cpu / self.a_wall:.2f}",
                f"{self.b_cpu / self.b_wall:.2f}",
                f"{self.wall_ratio:.3f} [{self.wall_ratio_low:.2f}–{self.wall_ratio_high:.2f}]", f"{self.cpu_ratio:.3f}",
                peaks]


def time_paired(a: list[str], b: list[str], pairs: int, fresh: tuple[Path | None, Path | None] = (None, None),
                warmup: int = 1) -> Paired:
    """``warmup`` untimed pairs, then ``pairs`` timed ones, A first in each; ``fresh`` folders are
    emptied before each run of their command (batch outputs). Raises measure.CommandFailed."""

    def one(argv: list[str], folder: Path | None) -> Usage:
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir(parents=True)
        return run_once(argv)

    for _ in range(warmup):
        one(a, fresh[0])
        one(b, fresh[1])
    runs = [(one(a, fresh[0]), one(b, fresh[1])) for _ in range(pairs)]
    walls = sorted(x.wall / y.wall for x, y in runs)
    return Paired(
        pairs, statistics.median(x.wall for x, _ in runs), statistics.median(y.wall for _, y in runs),
        statistics.median(x.cpu for x, _ in runs), statistics.median(y.cpu for _, y in runs),
        statistics.median(walls), walls[0], walls[-1], statistics.median(x.cpu / y.cpu for x, y in runs),
        _largest(x.peak_mb for x, _ in runs), _largest(y.peak_mb for _, y in runs),
    )


def _largest(peaks) -> float | None:
    known = [peak for peak in peaks if peak is not None]
    return max(known) if known else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=10)
    parser.add_argument("commands", nargs=argparse.REMAINDER, help="-- A ... -- B ...")
    args = parser.parse_args(argv)
    words = args.commands[1:] if args.commands[:1] == ["--"] else args.commands
    if "--" not in words:
        parser.error("give two commands: -- A ... -- B ...")
    split = words.index("--")
    result = time_paired(words[:split], words[split + 1:], args.pairs)
    names = ["A median s", "B median s", "A CPU/wall", "B CPU/wall", "A/B wall [min–max]", "A/B CPU", "peak MB A / B"]
    for name, cell in zip(names, result.cells()):
        print(f"{name:>20}  {cell}")
    print(f"{'pairs':>20}  {result.pairs}", file=sys.stderr)


if __name__ == "__main__":
    main()
