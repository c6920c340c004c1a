"""Is poolcli's memory flat over a long batch? Issue 6: the peak RSS over the last half of a
2,000-file batch within 10% of the first half's.

Runs ``poolcli pool DIR -o OUT -m avg -k 2 -q`` on ``benchmarks/data/1080p-<count>/`` (made by
make_inputs.py), samples the child's resident set from /proc every 50 ms together with how many
outputs exist, and prints the peak RSS while the first and while the second half of the outputs
were being written, their ratio, and the throughput.

    .venv/bin/python benchmarks/memory_flat.py --count 2000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_inputs import ensure_batch  # noqa: E402


def resident_mb(pid: int) -> float | None:
    """VmRSS of ``pid`` in MB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def count_outputs(folder: Path) -> int:
    try:
        return sum(1 for entry in os.scandir(folder) if entry.name.endswith(".jpg") and not entry.name.startswith("."))
    except FileNotFoundError:
        return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="1080p inputs (default 2000)")
    parser.add_argument("--poolcli", default=str(HERE.parent / ".venv" / "bin" / "poolcli"))
    args = parser.parse_args()
    inputs = ensure_batch(args.count, log=lambda *a: print(*a, file=sys.stderr))
    out = Path(tempfile.mkdtemp(prefix="poolcli-flat-")) / "out"
    command = [args.poolcli, "pool", str(inputs), "-o", str(out), "-m", "avg", "-k", "2", "-q", "--quality", "85"]
    start = time.perf_counter()
    child = subprocess.Popen(command)
    samples: list[tuple[int, float]] = []
    while child.poll() is None:
        rss = resident_mb(child.pid)
        if rss is not None:
            samples.append((count_outputs(out), rss))
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    written = count_outputs(out)
    shutil.rmtree(out.parent, ignore_errors=True)
    half = args.count // 2
    first = max((rss for done, rss in samples if done < half), default=0.0)
    second = max((rss for done, rss in samples if done >= half), default=0.0)
    print(f"| files | exit | outputs | seconds | images/s | peak RSS first half MB | peak RSS second half MB | ratio |")
    print(f"|---|---|---|---|---|---|---|---|")
    ratio = second / first if first else float("nan")
    print(f"| {args.count} | {child.returncode} | {written} | {seconds:.1f} | {written / seconds:.1f} | "
          f"{first:.0f} | {second:.0f} | {ratio:.2f} |")


if __name__ == "__main__":
    main()
