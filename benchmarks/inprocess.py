"""Pooling arrays already in memory, in this process: how close poolcli's arithmetic comes to the
speed of copying the same bytes, with no decoding or encoding in the way.

2x2 pooling reads every input byte once and writes a quarter as many, so a copy of the input
(which reads and writes it all) is a fair yardstick: a kernel at "× copy" near 1 is limited by
memory, far above 1 by arithmetic or Python overhead. GB/s counts bytes read plus bytes written.
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from tables import Table, number

PHOTO_HWC = (3000, 4000, 3)  # 12 MP RGB
GPU_BATCH = (16, 3, 1080, 1920)  # poolcli's default --batch-size of 1080p frames, about 100 MB


@dataclass(frozen=True)
class Case:
    """One operation, timed by the wall clock around ``run()``; with ``own_timer`` ``run()`` returns
    the seconds to count instead, when that clock would include work that is not the operation
    (poolcli uploads a host array to the GPU before its stage timer starts)."""

    label: str
    run: Callable[[], Any]
    bytes_moved: int
    own_timer: bool = False


def time_case(case: Case, runs: int) -> tuple[float, float]:
    """Median seconds and process CPU time / wall time, after one warm-up call."""
    case.run()
    seconds, cpu, wall = [], 0.0, 0.0
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        result = case.run()
        elapsed = time.perf_counter() - start
        seconds.append(result if case.own_timer else elapsed)
        cpu, wall = cpu + time.process_time() - start_cpu, wall + elapsed
    return statistics.median(seconds), cpu / wall


def bandwidth_table(title: str, cases: list[Case], runs: int, notes: list[str]) -> Table:
    """op, median ms, GB/s, × copy (the first case is the copy), CPU/wall."""
    table = Table(title, ["op", "median ms", "GB/s", "× copy", "CPU/wall"], notes=notes)
    copy_seconds = None
    for case in cases:
        median, cpu_per_wall = time_case(case, runs)
        copy_seconds = copy_seconds or median
        table.rows.append([case.label, number(median * 1e3), number(case.bytes_moved / median / 1e9),
                           f"{median / copy_seconds:.2f}", f"{cpu_per_wall:.2f}"])
    return table


# ------------------------------------------------------------------------------------ poolcli


def _poolcli(op: str, array: np.ndarray, engine: str, device: str, threads: int = 1) -> Callable[[], None]:
    """poolcli's library as the CLI drives it for one 8-bit picture: the one-stage pipeline told
    that its output is an 8-bit image (``bit_depth=8``, as ``batch`` says), quantized to uint8;
    ``threads`` as ``--workers`` gives a lone input (left out where this poolcli predates them)."""
    from poolcli import Pipeline, run_pipeline

    quantize = _quantize()
    pipeline = Pipeline.from_specs([f"{op}pool:2"])
    plan = pipeline.plan(array.shape)
    accepted = _run_pipeline_options()
    options = {name: value for name, value in (("bit_depth", 8), ("threads", threads)) if name in accepted}
    return lambda: quantize(run_pipeline(pipeline, array, maxval=255, device=device, engine=engine, plan=plan,
                                         **options), 8)


def _quantize() -> Callable[..., Any]:
    """The quantizer's policy, where this poolcli keeps it (an older snapshot: in ``engine``)."""
    try:
        from poolcli.execute.quantize import quantize
    except ImportError:
        from poolcli.engine import quantize  # type: ignore[no-redef]
    return quantize


def _run_pipeline_options() -> set[str]:
    """The keyword options of this poolcli's ``run_pipeline`` (an older snapshot has fewer)."""
    import inspect

    from poolcli import run_pipeline

    return set(inspect.signature(run_pipeline).parameters)


def _poolcli_stage(op: str, array: np.ndarray, device: str) -> Callable[[], float]:
    """poolcli's own stage time on ``device`` (synchronised), leaving out the upload."""
    from poolcli import Pipeline, run_pipeline

    pipeline = Pipeline.from_specs([f"{op}pool:2"])
    plan = pipeline.plan(array.shape)
    return lambda: sum(run_pipeline(pipeline, array, maxval=255, device=device, engine="torch", plan=plan).seconds)


def _kernel_cases(x: np.ndarray, moved: int) -> list[Case]:
    """poolcli's numpy kernels called directly, where this poolcli has them."""
    try:
        from poolcli.kernels.numpy import pools as k
    except ImportError:
        try:
            from poolcli import kernels_numpy as k  # an older snapshot
        except ImportError:
            return []
    two, zero, one = (2, 2), (0, 0), (1, 1)
    cases = [Case("numpy kernel max_pool2d", lambda: k.max_pool2d(x, two, two, zero, one, False), moved)]
    if hasattr(k, "avg_pool2d_quantized"):
        cases.append(Case("numpy kernel avg_pool2d_quantized",
                          lambda: k.avg_pool2d_quantized(x, two, two, zero, False, True, None), moved))
    if getattr(k, "_NATIVE", False):  # the rows above ran the compiled kernel: the numpy passes alone too
        cases += [Case(f"{case.label}, compiled kernel off", _without_native(k, case.run), moved) for case in cases]
        from poolcli.kernels import native

        out = k.empty_like_pixels(x, (x.shape[0], x.shape[1], x.shape[2] // 2, x.shape[3] // 2), np.uint8)
        for op in ("max", "avg"):
            cases.append(Case(f"compiled kernel {op}, output allocated once ({native.features()[0]})",
                              lambda op=op: native.pool(x, out, two, op, 4), moved))
    return cases


def _without_native(kernels: Any, run: Callable[[], Any]) -> Callable[[], Any]:
    """``run`` with the numpy kernels' compiled shortcut switched off."""

    def plain() -> Any:
        kernels._NATIVE = False
        try:
            return run()
        finally:
            kernels._NATIVE = True

    return plain


def _as_the_cli_process() -> str:
    """The allocator settings of poolcli's own process (``cli.startup.reuse_freed_memory``), where
    this poolcli has them: each row's fresh output then reuses the last one's memory, as in a run."""
    try:
        from poolcli.cli.startup import reuse_freed_memory
    except ImportError:
        return "default allocator settings (this poolcli has no reuse_freed_memory)"
    return "freed memory reused, as in poolcli's own process" if reuse_freed_memory() else "default allocator"


def _torch_cases(torch: Any, x: Any, moved: int, sync: Callable[[], None]) -> list[Case]:
    """What a torch user writes: max_pool2d on uint8, avg_pool2d on float then round to uint8."""
    F = torch.nn.functional

    def max_pool() -> None:
        F.max_pool2d(x, 2)
        sync()

    def avg_pool() -> None:
        F.avg_pool2d(x.float(), 2).round_().to(torch.uint8)
        sync()

    return [Case("torch F.max_pool2d (uint8)", max_pool, moved),
            Case("torch F.avg_pool2d (float32, round → uint8)", avg_pool, moved)]


# ------------------------------------------------------------------------------------ suites


def memory_table(runs: int) -> Table:
    """2x2 max and avg of a 12 MP uint8 image in memory, against a memcpy of it (CPU)."""
    import torch

    allocator = _as_the_cli_process()
    hwc = np.random.default_rng(0).integers(0, 256, PHOTO_HWC, dtype=np.uint8)
    x = hwc.transpose(2, 0, 1)[None]  # NCHW view of the HWC buffer, as a decoded image arrives
    rgbx = np.random.default_rng(0).integers(0, 256, PHOTO_HWC[:2] + (4,), dtype=np.uint8)
    decoded = rgbx.transpose(2, 0, 1)[None][:, :3]  # how Pillow decodes RGB: 4 bytes a pixel
    copy = np.empty_like(hwc)
    moved = x.nbytes + x.nbytes // 4
    cases = [Case("memcpy (np.copyto)", lambda: np.copyto(copy, hwc), 2 * x.nbytes)]
    for engine in ("numpy", "torch"):
        cases += [Case(f"poolcli {op}, {engine} engine", _poolcli(op, x, engine, "cpu"), moved) for op in ("max", "avg")]
    cores = os.cpu_count() or 1
    if cores > 1 and "threads" in _run_pipeline_options():
        cases += [Case(f"poolcli {op}, numpy engine, {cores} threads", _poolcli(op, x, "numpy", "cpu", cores), moved)
                  for op in ("max", "avg")]
    planar = np.ascontiguousarray(x)  # what images.load_image hands over when it copies to planar NCHW
    cases += [Case(f"poolcli {op}, numpy engine, planar NCHW input", _poolcli(op, planar, "numpy", "cpu"), moved)
              for op in ("max", "avg")]
    cases += [Case(f"poolcli {op}, numpy engine, RGBX as decoded", _poolcli(op, decoded, "numpy", "cpu"), moved)
              for op in ("max", "avg")]
    cases += _kernel_cases(x, moved)
    cases += _torch_cases(torch, torch.from_numpy(x), moved, lambda: None)
    notes = [
        "input: 3000×4000×3 uint8 (36 MB) seen as a 1×3×3000×4000 NCHW view, as Pillow hands a decoded JPEG over;"
        " output 1×3×1500×2000 uint8; the planar rows take a C-contiguous NCHW copy instead",
        "poolcli rows: `run_pipeline(..., bit_depth=8)` + `quantize` (the CLI's path from decoded pixels to encoder"
        " input); one thread unless the row says more (a lone input computes on `--workers` threads, the cores)",
        f"{torch.get_num_threads()} torch threads; {allocator}",
        "RGBX rows: the same 12 MP in Pillow's RGB layout (4 bytes a pixel, the 4th unused), what a decoded JPEG is",
    ]
    return bandwidth_table("memory: 2×2 pooling of a 12 MP uint8 array in memory (CPU)", cases, runs, notes)


def gpu_memory_table(runs: int, device: str = "cuda") -> Table:
    """The same on the GPU, over a batch: poolcli's stage time against torch's device copy."""
    import torch

    x = torch.randint(0, 256, GPU_BATCH, dtype=torch.uint8, device=device)
    host = x.cpu().numpy()
    copy = torch.empty_like(x)
    moved = x.numel() + x.numel() // 4
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def device_copy() -> None:
        copy.copy_(x)
        sync()

    cases = [Case("torch y.copy_(x) (device to device)", device_copy, 2 * x.numel())]
    cases += [Case(f"poolcli {op} stage (stage timer)", _poolcli_stage(op, host, device), moved, own_timer=True)
              for op in ("max", "avg")]
    cases += [Case(f"poolcli {op} incl. upload + download", _poolcli(op, host, "torch", device), moved)
              for op in ("max", "avg")]
    cases += _torch_cases(torch, x, moved, sync)
    name = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    notes = [f"input: {'×'.join(map(str, GPU_BATCH))} uint8 ({x.numel() / 1e6:.0f} MB) on {name}",
             "stage-timer rows: poolcli's own synchronised stage time (uint8 → float included for avg),"
             " without the host → device upload the pipeline does first"]
    return bandwidth_table(f"gpu: 2×2 pooling of a batch in device memory ({device})", cases, runs, notes)
