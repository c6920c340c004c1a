"""The batch on a two-node local Ray cluster against the local executor, in one run.

200 JPEGs of 1920×1080 (benchmarks/data, made by make_inputs.py), 2×2 average pool, JPEG out,
files in the page cache. The cluster (a head and one more node, one CPU each, on the loopback
address 127.0.0.2) is started once and timed on its own; then ``poolcli pool … --executor local``
and ``… --executor ray --ray-address ADDR`` run in turn, RUNS times each, as whole processes
(a run on Ray includes importing Ray Data, connecting the driver, and the job's worker processes
starting). Each executor also runs a one-image folder: that run is its fixed cost, and
``N images − 1 image`` is what the other N − 1 images cost it. Outputs of both are compared byte
for byte. Prints a Markdown table with medians and the ratios ray/local.

    python benchmarks/ray_overhead.py [--count 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from make_inputs import ensure_batch  # noqa: E402

LOOPBACK = "127.0.0.2"


def _busy_seconds() -> float:
    """CPU time spent by every process on the machine so far (/proc/stat: all but idle and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(value) for value in stat.readline().split()[1:8]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def _timed(argv: list[str]) -> tuple[float, float]:
    """Wall seconds of the command, and the CPU seconds the whole machine spent meanwhile: on
    Ray this includes its driver's executor and the raylets, which share the same cores."""
    busy, start = _busy_seconds(), time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start, _busy_seconds() - busy


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    folder = ensure_batch(args.count, log=lambda *a: None)
    out = HERE / "out" / "ray"

    def poolcli(source: Path) -> list[str]:
        return [sys.executable, "-m", "poolcli", "pool", str(source), "-m", "avg", "-k", "2", "-q", "--quality", "90"]

    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": LOOPBACK,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    cluster.wait_for_nodes()
    started = time.perf_counter() - start
    one = ensure_batch(1, log=lambda *a: None)
    executors = {"local": [], "ray": ["--executor", "ray", "--ray-address", cluster.address]}
    times: dict[tuple[str, str], list[float]] = {(name, size): [] for name in executors for size in ("one", "all")}
    cpu: dict[str, list[float]] = {name: [] for name in executors}
    try:
        for _ in range(args.runs):
            for name, extra in executors.items():
                for size, source in (("all", folder), ("one", one)):
                    shutil.rmtree(out / name / size, ignore_errors=True)
                    wall, busy = _timed([*poolcli(source), "-o", str(out / name / size), *extra])
                    times[name, size].append(wall)
                    if size == "all":
                        cpu[name].append(busy)
    finally:
        cluster.shutdown()
    compared = filecmp.dircmp(out / "local" / "all", out / "ray" / "all")
    identical = not (compared.left_only or compared.right_only or compared.diff_files)
    median = {key: statistics.median(values) for key, values in times.items()}
    print("| executor | 1 image (s) | %d images (s) | images/s | the other %d (s) | CPU s, all processes |"
          % (args.count, args.count - 1))
    print("| --- | --- | --- | --- | --- | --- |")
    for name, label in (("local", "local (threads)"), ("ray", "ray, 2 local nodes")):
        rest = median[name, "all"] - median[name, "one"]
        print(f"| {label} | {median[name, 'one']:.2f} | {median[name, 'all']:.2f} "
              f"({min(times[name, 'all']):.2f}–{max(times[name, 'all']):.2f}) | "
              f"{args.count / median[name, 'all']:.0f} | {rest:.2f} | {statistics.median(cpu[name]):.2f} |")
    whole = median["ray", "all"] / median["local", "all"]
    rest = (median["ray", "all"] - median["ray", "one"]) / (median["local", "all"] - median["local", "one"])
    print(f"\nray / local: {whole:.2f}× whole runs; {rest:.2f}× for the images after the first (target ≤ 1.5×, "
          f"Ray's start excluded); starting the cluster: {started:.1f} s; outputs identical: {identical}; "
          f"{args.runs} runs each, alternating")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
