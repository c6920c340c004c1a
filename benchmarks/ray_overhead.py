"""The batch on a two-node local Ray cluster against the local executor, in one run.

200 JPEGs of 1920×1080 (benchmarks/data, made by make_inputs.py), 2×2 average pool, JPEG out,
files in the page cache. The cluster (a head and one more node, one CPU each, on the loopback
address 127.0.0.2) is started once and timed on its own; then ``poolcli pool … --executor local``
and ``… --executor ray --ray-address ADDR`` run in turn, RUNS times each, as whole processes
(a run on Ray includes connecting the driver to the cluster). Outputs of both are compared byte
for byte. Prints a Markdown table with medians and the ratio ray/local.

    python benchmarks/ray_overhead.py [--count 200] [--runs 5]
"""

from __future__ import annotations

import argparse
import filecmp
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


def _timed(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    from ray.cluster_utils import Cluster

    folder = ensure_batch(args.count, log=lambda *a: None)
    out = HERE / "out" / "ray"
    poolcli = [sys.executable, "-m", "poolcli", "pool", str(folder), "-m", "avg", "-k", "2", "-q", "--quality", "90"]
    start = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "node_ip_address": LOOPBACK,
                                                            "include_dashboard": False})
    cluster.add_node(num_cpus=1, node_ip_address=LOOPBACK)
    cluster.wait_for_nodes()
    started = time.perf_counter() - start
    local, ray = [], []
    try:
        for _ in range(args.runs):
            for name, extra, times in (("local", [], local),
                                       ("ray", ["--executor", "ray", "--ray-address", cluster.address], ray)):
                shutil.rmtree(out / name, ignore_errors=True)
                times.append(_timed([*poolcli, "-o", str(out / name), *extra]))
    finally:
        cluster.shutdown()
    compared = filecmp.dircmp(out / "local", out / "ray")
    identical = not (compared.left_only or compared.right_only or compared.diff_files)
    local_s, ray_s = statistics.median(local), statistics.median(ray)
    print(f"| executor | median wall (s) | images/s | min–max (s) |\n| --- | --- | --- | --- |")
    print(f"| local (threads) | {local_s:.2f} | {args.count / local_s:.0f} | {min(local):.2f}–{max(local):.2f} |")
    print(f"| ray, 2 local nodes | {ray_s:.2f} | {args.count / ray_s:.0f} | {min(ray):.2f}–{max(ray):.2f} |")
    print(f"\nray / local: {ray_s / local_s:.2f}× (target ≤ 1.5×); starting the cluster: {started:.1f} s, "
          f"not counted; outputs identical: {identical}; {args.runs} runs each, alternating")
    return 0 if identical else 1


if __name__ == "__main__":
    sys.exit(main())
