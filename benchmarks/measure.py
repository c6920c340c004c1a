"""Timing a command: median wall time, CPU time / wall time and peak RSS.

Every command first runs once on its own, outside the timed runs: that run warms the page cache
and the tool's own caches, checks that the command works (a failing peer becomes a table note,
not a crash) and gives the peak RSS. The timed runs use hyperfine when it is installed (no shell
in between, its user/system times for CPU) and ``time.perf_counter`` around each child otherwise.

CPU time comes from ``os.wait4`` (the child's own user + system time). Peak RSS comes from
GNU time (``/usr/bin/time -f %M``), not from wait4 or ``getrusage(RUSAGE_CHILDREN)``: Linux
carries a process's RSS high-water mark across exec, and Python spawns children from its own
address space, so those report this (torch-importing) benchmark's own size for a child as small
as ``python -c pass``. GNU time forks the command from its own tiny process. Without it the
tables show no peak. The peak is the largest single process of the tree (``xargs -P 2`` runs two
of them at once, so it uses about twice that).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HYPERFINE = shutil.which("hyperfine")
GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


class CommandFailed(Exception):
    """A command exited with an error; the message is its last line of stderr."""


@dataclass(frozen=True)
class Command:
    """One thing to time: ``argv`` for a peer and a task; ``fresh_dir`` is emptied before each run
    (batch outputs, so no run finds the previous run's files)."""

    label: str
    task: str
    argv: list[str]
    fresh_dir: Path | None = None


@dataclass(frozen=True)
class Timing:
    median_s: float
    cpu_per_wall: float
    peak_mb: float | None  # None without GNU time


@dataclass(frozen=True)
class Usage:
    """One run: wall seconds, CPU seconds (user + system) and peak RSS in MB."""

    wall: float
    cpu: float
    peak_mb: float | None  # None without GNU time


def empty_dir(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)


def _peak_mb(report: Path) -> float | None:
    """GNU time's %M (KiB) from its output file: the last line (earlier ones say how it exited)."""
    lines = report.read_text().split() if report.exists() else []
    return int(lines[-1]) / 1024 if lines and lines[-1].isdigit() else None


def run_once(argv: list[str]) -> Usage:
    """Run ``argv`` to completion; its stdout is dropped, stderr kept for the error message."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "time.txt"
        wrapped = [GNU_TIME, "-f", "%M", "-o", str(report), *argv] if GNU_TIME else argv
        with open(Path(tmp) / "stderr", "w+b") as stderr:
            start = time.perf_counter()
            process = subprocess.Popen(wrapped, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr)
            _, status, usage = os.wait4(process.pid, 0)
            wall = time.perf_counter() - start
            process.returncode = os.waitstatus_to_exitcode(status)  # wait4 reaped it; tell Popen
            if process.returncode != 0:
                stderr.seek(0)
                lines = stderr.read().decode(errors="replace").strip().splitlines() or ["(no message)"]
                raise CommandFailed(f"exit {process.returncode}: {lines[-1].strip()}")
        return Usage(wall, usage.ru_utime + usage.ru_stime, _peak_mb(report))


def _prepare(command: Command) -> None:
    if command.fresh_dir is not None:
        empty_dir(command.fresh_dir)


def _loop(command: Command, runs: int) -> tuple[float, float]:
    """Median wall time and CPU/wall of ``runs`` runs, timed here."""
    usages = []
    for _ in range(runs):
        _prepare(command)
        usages.append(run_once(command.argv))
    wall = sum(u.wall for u in usages)
    return statistics.median(u.wall for u in usages), sum(u.cpu for u in usages) / wall


def _hyperfine(command: Command, runs: int) -> tuple[float, float]:
    """Median wall time and CPU/wall from hyperfine (``-N``: no shell to subtract)."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "hyperfine.json"
        argv = [HYPERFINE, "-N", "--style", "none", "--runs", str(runs), "--export-json", str(report)]
        if command.fresh_dir is not None:
            fresh = shlex.quote(str(command.fresh_dir))
            argv += ["--prepare", f"bash -c 'rm -rf {fresh} && mkdir -p {fresh}'"]
        done = subprocess.run(argv + [shlex.join(command.argv)], capture_output=True, text=True)
        if done.returncode != 0:  # the warm-up run passed, so a timed run failed: a table note, not a crash
            lines = done.stderr.strip().splitlines() or ["(no message)"]
            raise CommandFailed(f"hyperfine exit {done.returncode}: {lines[-1].strip()}")
        result = json.loads(report.read_text())["results"][0]
    return result["median"], (result["user"] + result["system"]) / result["mean"]


def measure(command: Command, runs: int) -> Timing:
    """Warm-up run (checks it works, peak RSS), then ``runs`` timed runs. Raises CommandFailed."""
    _prepare(command)
    first = run_once(command.argv)
    timed = _hyperfine if HYPERFINE else _loop
    median, cpu_per_wall = timed(command, runs)
    return Timing(median, cpu_per_wall, first.peak_mb)
