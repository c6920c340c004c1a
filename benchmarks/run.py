"""Benchmark poolcli against libvips, ImageMagick, Pillow and torch scripts, in one session.

    .venv/bin/python benchmarks/run.py                      # everything (make bench)
    .venv/bin/python benchmarks/run.py --quick              # smoke check: 20 images, 1 run
    .venv/bin/python benchmarks/run.py --suite single,batch --count 2000

Targets are measured, never asserted: the tables print times, throughput, peak memory and the
ratio of every row to poolcli. Tables go to stdout and, as Markdown, to benchmarks/results.md
(--quick: benchmarks/out/results-quick.md, so a smoke check never replaces the real results);
progress goes to stderr. See benchmarks/README.md for what each suite measures and why.
"""

from __future__ import annotations

import argparse
import compileall
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import machine
from peers import snapshot_of
from suites import SUITES, Settings

HERE = Path(__file__).resolve().parent


def _names(text: str, allowed: tuple[str, ...]) -> tuple[str, ...]:
    """A comma-separated list, each name checked against ``allowed``."""
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in allowed]
    if unknown:
        raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(allowed)}")
    return names


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small counts for a smoke check (1 run, 20 images)")
    parser.add_argument("--suite", type=lambda t: _names(t, tuple(SUITES)), default=tuple(SUITES),
                        help=f"comma-separated, from {','.join(SUITES)} (default: all)")
    parser.add_argument("--tasks", type=lambda t: _names(t, ("avg", "max")), default=("avg", "max"),
                        help="pooling tasks for single, batch and gpu (default: avg,max)")
    parser.add_argument("--runs", type=int, help="timed runs per command (default 3, --quick 1)")
    parser.add_argument("--count", type=int, help="1080p images in the batch suite (default 200, --quick 20;"
                        " issue 6's target is 2000)")
    parser.add_argument("--output", type=Path, help="Markdown results file")
    parser.add_argument("--commit", help="measure poolcli as committed at this git revision (a snapshot of its"
                        " package under /tmp), not the working tree, which others may be editing")
    parser.add_argument("--before", help="the paired suite also pairs poolcli with itself at this git revision"
                        " (before/after a change)")
    parser.add_argument("--pairs", type=int, default=10, help="timed pairs per comparison in the paired suite")
    args = parser.parse_args(argv)
    args.runs = args.runs or (1 if args.quick else 3)
    args.count = args.count or (20 if args.quick else 200)
    args.output = args.output or (HERE / "out" / "results-quick.md" if args.quick else HERE / "results.md")
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def header(args: argparse.Namespace) -> str:
    command = shlex.join(["benchmarks/run.py", *sys.argv[1:]])
    lines = [f"{line}  " for line in machine.describe()]  # two spaces: a Markdown line break
    return "\n".join([
        "## poolcli benchmark", "",
        f"`{command}` on {time.strftime('%Y-%m-%d %H:%M')}: suites {', '.join(args.suite)};"
        f" {args.runs} timed run(s) per command after one warm-up run.", "",
        *lines, "",
    ])


def use_commit(revision: str) -> None:
    """Import poolcli from a snapshot of ``revision``: PYTHONPATH for the poolcli processes (it comes
    before the editable install), sys.path for the in-process suites."""
    snapshot = snapshot_of(revision)
    commit = snapshot.name.rsplit("-", 1)[-1]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(snapshot), os.environ.get("PYTHONPATH")]))
    os.environ["POOLCLI_COMMIT"] = commit
    sys.path.insert(0, str(snapshot))
    log(f"measuring poolcli at {commit} from {snapshot}")


def compile_poolcli() -> None:
    """Byte-compile the poolcli package that will be measured, as pip does at install time.

    Without ``__pycache__`` (an editable checkout, a snapshot, or ``PYTHONDONTWRITEBYTECODE=1``,
    which this machine sets) every poolcli process would compile its modules from source, about
    0.1 s that no installed poolcli pays and no peer pays either.
    """
    probe = subprocess.run([sys.executable, "-c", "import os, poolcli; print(os.path.dirname(poolcli.__file__))"],
                           capture_output=True, text=True, cwd="/")  # not the checkout: `-c` puts the cwd first
    folder = probe.stdout.strip()
    if folder:
        compileall.compile_dir(folder, quiet=1)
        log(f"byte-compiled {folder}")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.commit:
        use_commit(args.commit)
    compile_poolcli()
    before = snapshot_of(args.before) if args.before else None
    if before is not None:
        compileall.compile_dir(str(before), quiet=1)
    settings = Settings(args.runs, args.count, args.tasks, log, args.pairs, before)
    document = [header(args)]
    print(document[0], flush=True)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    for name in args.suite:
        log(f"suite {name}")
        started, load_before = time.perf_counter(), machine.load_average()
        for table in SUITES[name](settings):
            document.append(table.markdown())
            print(document[-1], flush=True)
        document.append(f"_suite {name}: {time.perf_counter() - started:.0f} s; load average before {load_before},"
                        f" after {machine.load_average()}_\n")
        print(document[-1], flush=True)
        args.output.write_text("\n".join(document))  # after every suite, so an interrupted run keeps its tables
    log(f"wrote {args.output}")


if __name__ == "__main__":
    main()
