"""Runs a planned pipeline on a batch of pixels, whole or tile by tile, and times each stage.

Values: a batch arrives in its native dtype (uint8, uint16, float32) with a ``scale`` such
that ``data / scale`` is what the user reasons about ([0, 1] for images by default). Stages
that commute with scaling (max, min, median, avg, conv without bias, unpool...) run on the
data as it is, so max pooling stays in uint8 and averages of 8-bit pixels stay exact; stages
that do not (activations, conv with a bias, linear) first divide by the scale. Images with
alpha are premultiplied around averaging stages so transparent pixels leave no dark fringes.

    >>> import numpy as np
    >>> from poolcli.core.plan import Pipeline
    >>> x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    >>> run_pipeline(Pipeline.from_specs(["maxpool:2,s=1"]), x, engine="numpy").values().tolist()
    [[[[4.0, 5.0], [7.0, 8.0]]]]
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.plan import Pipeline, Plan
from .devices import resolve_device
from .engines import NumpyBackend, backend_for, choose_engine, values
from .quantize import Quantized, Quantizer, in_unit_range
from .tiling import tile_regions


class Run:
    """Per-run state the kernels need: maxpool indices for their maxunpool, seeds, the scale."""

    def __init__(self, plan: Plan, seed: int, scale: float):
        self.plan = plan
        self.seed = seed
        self.scale = scale
        self.index = 0
        self._wanted = set(plan.unpool_pairs.values())
        self._indices: dict[int, tuple[Any, tuple[int, int]]] = {}

    def wants_indices(self, stage: Any) -> bool:
        return self.index in self._wanted

    def store_indices(self, stage: Any, indices: Any, input_size: tuple[int, int]) -> None:
        self._indices[self.index] = (indices, input_size)

    def take_indices(self, stage: Any) -> tuple[Any, tuple[int, int]]:
        """The paired maxpool's indices and this unpool's planned output size."""
        indices, _ = self._indices.pop(self.plan.unpool_pairs[self.index])
        output_size = tuple(self.plan.stages[self.index].output_shape[-2:])
        return indices, output_size  # type: ignore[return-value]

    def stage_seed(self, stage: Any) -> int:
        return stage.seed_for(self.seed, self.index)


@dataclass
class RunResult:
    """The pipeline's output (a torch tensor or numpy array) with its scale and timings.

    ``seconds`` (one per stage) and ``quantized`` are what this run measured and made; the
    plan it ran stays as it was.
    """

    data: Any
    scale: float
    value_max: float  # 1.0 for [0, 1] values, the native maximum with --scale raw
    seconds: list[float]
    device: str
    plan: Plan
    backend: Any
    stage_outputs: list[Any] = field(default_factory=list)
    batch_size: int = 1  # how many inputs shared this run (its seconds cover all of them)
    quantized: Quantized | None = None  # an output made as image integers already (tiled, or the 8-bit average)

    @property
    def engine(self) -> str:
        return self.backend.name

    def values(self) -> np.ndarray:
        """The exact float output in the user's scale, as numpy (for .npy/.pt)."""
        return self.backend.to_numpy(values(self.backend, self.data, self.scale))

    def slice(self, index: int) -> "RunResult":
        """The result for one image of a stacked batch (views, no copies)."""
        part = slice(index, index + 1)
        return RunResult(
            None if self.data is None else self.data[part], self.scale, self.value_max, self.seconds, self.device,
            self.plan, self.backend,
            [(data[part], scale) for data, scale in self.stage_outputs], self.batch_size,
            None if self.quantized is None else Quantized(self.quantized.array[part], self.quantized.normalize),
        )


def run_pipeline(
    pipeline: Pipeline,
    array: np.ndarray,
    *,
    maxval: float = 1.0,
    raw_scale: bool = False,
    premultiply: bool = False,
    device: str = "cpu",
    engine: str = "auto",
    seed: int = 0,
    plan: Plan | None = None,
    keep_stages: bool = False,
    bit_depth: int | None = None,
    normalize: str = "auto",
    threads: int = 1,
) -> RunResult:
    """Run ``pipeline`` on an N×C×H×W ``array`` in its native dtype (``maxval``: 255 for 8-bit).

    ``raw_scale`` keeps values in 0..maxval instead of [0, 1]; ``premultiply`` (images with
    alpha in the last channel) makes averaging stages work on premultiplied colour.
    ``bit_depth`` (8 or 16: the output is an image, ``normalize`` its policy) lets the numpy
    engine write a plain 8-bit average pool's integers straight from its window sums, the same
    numbers ``quantize`` would give, with no float32 image in between. ``threads``: how many
    the numpy engine's window reductions may use (torch keeps its own).
    """
    plan = plan or pipeline.plan(array.shape)
    device = resolve_device(device)
    backend = backend_for(choose_engine(engine, device, pipeline.stages), device)
    with _kernel_threads(backend, threads):
        scale = 1.0 if raw_scale else float(maxval)
        value_max = float(maxval) if raw_scale else 1.0
        if bit_depth == 8 and maxval == 255 and backend.name == "numpy" and normalize in ("auto", "clip") \
                and len(plan.stages) == 1 and not (keep_stages or premultiply or raw_scale):
            start = time.perf_counter()
            direct = backend.kernels.quantized_average(plan.stages[0].stage, array)
            if direct is not None:
                return RunResult(
                    None, scale, value_max, [time.perf_counter() - start], device, plan, backend,
                    batch_size=len(array), quantized=Quantized(direct, "clip" if normalize == "clip" else "none"),
                )
        run = Run(plan, seed, scale)
        seconds = [0.0] * len(plan.stages)
        outputs: list[Any] | None = [] if keep_stages else None
        x = _run_stages(backend, plan, backend.upload(array), run, premultiply, seconds, outputs=outputs)
        return RunResult(x, run.scale, value_max, seconds, device, plan, backend, outputs or [], len(array))


def _kernel_threads(backend: Any, threads: int) -> Any:
    """The numpy kernels' ``threads(threads)``; nothing to set for torch."""
    if backend.name != "numpy" or threads <= 1:
        return contextlib.nullcontext()
    return backend.kernels.threads(threads)


def _run_stages(
    backend: Any, plan: Plan, x: Any, run: Run, premultiply: bool, seconds: list[float],
    crops: Any = None, outputs: list[Any] | None = None,
) -> Any:
    """Every stage in turn on ``x``, adding each one's time to ``seconds``; ``crops`` (a tile's,
    from tiling.TileRegion) keeps only the outputs the next stage's tile needs."""
    for position, stage_plan in enumerate(plan.stages):
        stage = stage_plan.stage
        run.index = stage_plan.index
        start = time.perf_counter()
        x, run.scale = _prepare(backend, x, run.scale, stage)
        alpha = premultiply and stage.averaging and x.ndim == 4 and x.shape[1] in (2, 4)
        if alpha:
            x = _premultiply(backend, x, run.scale)
        y = backend.apply(stage, x, run)
        if alpha and y.shape[1] == x.shape[1]:
            y = _unpremultiply(backend, y, run.scale)
        if crops is not None:
            (r0, r1), (c0, c1) = crops[position]
            y = y[..., r0:r1, c0:c1]
        backend.synchronize()
        seconds[position] += time.perf_counter() - start
        x = y
        if outputs is not None:
            outputs.append((x, run.scale))
    return x


def _prepare(backend: Any, x: Any, scale: float, stage: Any) -> tuple[Any, float]:
    policy = stage.dtype_policy
    if policy == "unit" and scale != 1:
        return values(backend, x, scale), 1.0
    if policy in ("float", "unit") and not backend.is_float(x) and not backend.takes_integers(stage):
        return backend.to_float(x), scale
    return x, scale


def _premultiply(backend: Any, x: Any, scale: float) -> Any:
    x = backend.to_float(x)
    alpha = x[:, -1:]
    return backend.cat([x[:, :-1] * (alpha / scale), alpha])


def _unpremultiply(backend: Any, y: Any, scale: float) -> Any:
    alpha = y[:, -1:]
    opaque = alpha > 0
    safe = backend.where(opaque, alpha / scale, alpha * 0 + 1)
    colour = backend.where(opaque, y[:, :-1] / safe, y[:, :-1] * 0)
    return backend.cat([colour, alpha])


def run_tiled(
    pipeline: Pipeline,
    array: np.ndarray,
    tile: tuple[int, int],
    *,
    bit_depth: int | None,
    normalize: str = "auto",
    maxval: float = 1.0,
    raw_scale: bool = False,
    premultiply: bool = False,
    device: str = "cpu",
    engine: str = "auto",
    seed: int = 0,
    plan: Plan | None = None,
    threads: int = 1,
    keeps_range: bool = False,
) -> RunResult:
    """Run ``pipeline`` tile by tile (output tiles of at most ``tile``), each from the input
    region it needs (tiling.tile_region), converted to float per tile and written into one
    uint8/uint16 output (``bit_depth`` 8/16) or, for arrays (``bit_depth`` None), float32.

    Same numbers as ``run_pipeline`` then ``quantize``. ``auto`` is optimistic: tiles are
    written as in range while their minimum and maximum are gathered; only an output that
    left [0, 1] is computed a second time, stretched by the extremes of the whole image.
    ``minmax`` always takes the two passes; ``clip``, ``abs`` and integer outputs one, and so does
    ``auto`` where ``keeps_range`` (see ``quantize``).
    """
    plan = plan or pipeline.plan(array.shape)
    device = resolve_device(device)
    backend = backend_for(choose_engine(engine, device, pipeline.stages), device)
    scale = 1.0 if raw_scale else float(maxval)
    value_max = float(maxval) if raw_scale else 1.0
    regions = tile_regions(plan, tile)
    seconds = [0.0] * len(plan.stages)

    def tiles():
        for region in regions:
            (r0, r1), (c0, c1) = region.input_rows, region.input_cols
            run = Run(plan, seed, scale)
            x = backend.upload(array[..., r0:r1, c0:c1])
            with _kernel_threads(backend, threads):
                y = _run_stages(backend, plan, x, run, premultiply, seconds, crops=region.crops)
            yield region, y, run.scale

    def place(out: np.ndarray, region: Any, tile_values: np.ndarray) -> None:
        (r0, r1), (c0, c1) = region.output_rows, region.output_cols
        out[..., r0:r1, c0:c1] = tile_values

    shape = plan.output_shape
    if bit_depth is None:
        out = np.empty(shape, np.float32)
        for region, y, y_scale in tiles():
            place(out, region, backend.to_numpy(values(backend, y, y_scale)))
        return RunResult(out, 1.0, value_max, seconds, device, plan, NumpyBackend(), [], len(array))

    quantizer = Quantizer(backend, bit_depth, normalize, value_max)
    out = np.empty(shape, quantizer.dtype)
    low = high = None
    applied = {"auto": "none", "clip": "clip", "abs": "abs", "minmax": "minmax"}[normalize]
    for region, y, y_scale in tiles():
        if quantizer.passes_through(y, y_scale):
            place(out, region, quantizer.integers(y))
            applied = "none"
            continue
        unit = quantizer.unit(y, y_scale)
        if normalize in ("auto", "minmax"):
            tile_low, tile_high = backend.extremes(unit)
            low = tile_low if low is None else np.minimum(low, tile_low)
            high = tile_high if high is None else np.maximum(high, tile_high)
        if normalize != "minmax":
            place(out, region, quantizer.convert(unit, applied))
    stretch = normalize == "minmax" or (
        normalize == "auto" and not keeps_range and low is not None and not in_unit_range(float(low.min()), float(high.max()))
    )
    if stretch:
        applied = "minmax" if normalize == "minmax" else "auto → minmax"
        for region, y, y_scale in tiles():
            place(out, region, quantizer.convert(quantizer.unit(y, y_scale), applied, (low, high)))
    return RunResult(out, 1.0, value_max, seconds, device, plan, NumpyBackend(), [], len(array),
                     quantized=Quantized(out, applied))
