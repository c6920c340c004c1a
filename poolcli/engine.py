"""Runs a planned pipeline on a batch of pixels, with the numpy or the torch engine, and times it.

Engines: ``numpy`` (CPU, no torch import: a single ``poolcli pool photo.jpg`` starts as fast as
a Pillow script) and ``torch`` (CPU or CUDA, and the semantic reference). ``choose_engine`` is
the one place that decides; both give the same numbers (tests/test_engines.py).

Values: a batch arrives in its native dtype (uint8, uint16, float32) with a ``scale`` such
that ``data / scale`` is what the user reasons about ([0, 1] for images by default). Stages
that commute with scaling (max, min, median, avg, conv without bias, unpool...) run on the
data as it is, so max pooling stays in uint8 and averages of 8-bit pixels stay exact; stages
that do not (activations, conv with a bias, linear) first divide by the scale. Images with
alpha are premultiplied around averaging stages so transparent pixels leave no dark fringes.

    >>> import numpy as np
    >>> from poolcli.pipeline import Pipeline
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

from .devices import resolve_device
from .errors import UsageError
from .pipeline import Pipeline, Plan

NORMALIZE_MODES = ("auto", "clip", "minmax", "abs")
ENGINES = ("auto", "numpy", "torch")


# --------------------------------------------------------------------------- engine


def choose_engine(engine: str, device: str, pipeline: Pipeline) -> str:
    """``auto``: numpy on the CPU when every stage has a numpy kernel, torch otherwise."""
    from .numpy_engine import missing_kernels

    engine = (engine or "auto").lower()
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r}", f"use one of {', '.join(ENGINES)}")
    missing = missing_kernels(pipeline.stages)
    if engine == "numpy":
        if device != "cpu":
            raise UsageError(f"--engine numpy runs on the CPU, not {device}", "use --engine torch or --device cpu")
        if missing:
            raise UsageError(f"--engine numpy has no kernel for {', '.join(missing)}", "use --engine torch or auto")
        return "numpy"
    if engine == "torch" or device != "cpu" or missing:
        return "torch"
    return "numpy"


def import_engine(engine: str, device: str, pipeline: Pipeline) -> str:
    """Import what running ``pipeline`` will take (the numpy kernels, or torch) and say which engine.

    ``batch.import_engine_in_background`` calls it on a thread while the first input decodes, so
    the imports (numpy's kernels about 0.1 s, torch about 1 s) overlap the decode instead of following it.
    """
    chosen = choose_engine(engine, resolve_device(device), pipeline)
    if chosen == "torch":
        import torch  # noqa: F401
    else:
        from . import kernels_numpy  # noqa: F401
    return chosen


# --------------------------------------------------------------------------- backends


class TorchBackend:
    """Array operations on torch tensors (CPU or CUDA)."""

    name = "torch"

    def __init__(self, device: str):
        import torch

        self.torch = torch
        self.device = device
        if device.startswith("cuda"):  # float32 means float32 on the GPU too, as on the CPU (no TF32 convs)
            torch.backends.cudnn.allow_tf32 = False
            torch.backends.cuda.matmul.allow_tf32 = False

    def upload(self, array: np.ndarray) -> Any:
        """numpy → torch; 16-bit goes to int32 (torch has no uint16 pooling kernels)."""
        if array.dtype == np.uint16:
            array = array.astype(np.int32)
        elif array.dtype not in (np.uint8, np.int32, np.float32):
            array = array.astype(np.float32)
        if not (array.flags.c_contiguous and array.flags.writeable):
            # Decoded images are NCHW views of Pillow's read-only NHWC buffer (flipped for EXIF, a tile
            # a window of it); torch wants its own planar block: its channels-last uint8 max_pool2d
            # fails outright on the CPU, and pinned memory for CUDA is one block.
            array = np.array(array, order="C")
        tensor = self.torch.from_numpy(array)
        if self.device.startswith("cuda"):
            tensor = tensor.pin_memory().to(self.device, non_blocking=True)
        return tensor

    def apply(self, stage: Any, x: Any, run: "Run") -> Any:
        return stage.apply(x, run)

    def is_float(self, x: Any) -> bool:
        return x.is_floating_point()

    def to_float(self, x: Any) -> Any:
        return x if x.is_floating_point() else x.float()

    def takes_integers(self, stage: Any) -> bool:
        return False  # torch's avg_pool2d and conv2d have no integer kernels

    def unit(self, data: Any, scale: float, value_max: float) -> Any:
        """Values in [0, 1] of the input's range: ``data / scale / value_max`` in float32."""
        return _values(self, data, scale) / value_max

    def levels(self, unit: Any, out_max: int) -> Any:
        """[0, 1] → rounded 0..out_max (half to even), still float."""
        return self.torch.round(unit.clip(0, 1) * out_max)

    def cat(self, parts: list[Any]) -> Any:
        return self.torch.cat(parts, dim=1)

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return self.torch.where(condition, a, b)

    def round(self, x: Any) -> Any:
        return self.torch.round(x)

    def to_numpy(self, x: Any) -> np.ndarray:
        return x.detach().to("cpu").numpy()

    def extremes(self, unit: Any) -> tuple[np.ndarray, np.ndarray]:
        """Per image (each N): the minimum and maximum, as float32 numpy arrays of shape (N, 1, 1, 1)."""
        flat = unit.reshape(unit.shape[0], -1)
        shape = (-1,) + (1,) * (unit.dim() - 1)
        return self.to_numpy(flat.amin(1).view(shape)), self.to_numpy(flat.amax(1).view(shape))

    def stretch(self, unit: Any, extremes: tuple[np.ndarray, np.ndarray] | None = None) -> Any:
        """Min–max per image (each N) to [0, 1]; a constant image becomes 0. ``extremes`` (from
        ``extremes``, maybe gathered over tiles) replaces the image's own."""
        low, high = (self.torch.from_numpy(np.ascontiguousarray(e)).to(unit.device) for e in (extremes or self.extremes(unit)))
        return (unit - low) / self.torch.where(high > low, high - low, self.torch.ones_like(high))

    def synchronize(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()


class NumpyBackend:
    """The same operations on numpy arrays; stages run through numpy_engine's kernels."""

    name = "numpy"
    device = "cpu"

    def upload(self, array: np.ndarray) -> np.ndarray:
        if array.dtype not in (np.uint8, np.uint16, np.int32, np.float32):
            array = array.astype(np.float32)
        return array

    def apply(self, stage: Any, x: np.ndarray, run: "Run") -> np.ndarray:
        from .numpy_engine import apply

        return apply(stage, x, run)

    def is_float(self, x: np.ndarray) -> bool:
        return x.dtype.kind == "f"

    def to_float(self, x: np.ndarray) -> np.ndarray:
        return x if x.dtype == np.float32 else x.astype(np.float32)

    def takes_integers(self, stage: Any) -> bool:
        """avg, adaptive/global avg and conv kernels sum uint8/uint16 exactly: no float32 copy first."""
        from .numpy_engine import takes_integers

        return takes_integers(stage)

    def unit(self, data: np.ndarray, scale: float, value_max: float) -> np.ndarray:
        """The torch backend's float32 divisions in the same order, into one new array."""
        unit = np.divide(data, np.float32(scale), dtype=np.float32) if scale != 1 else np.array(data, np.float32)
        if value_max != 1:
            np.divide(unit, np.float32(value_max), out=unit)
        return unit

    def levels(self, unit: np.ndarray, out_max: int) -> np.ndarray:
        """Clip, scale and round (half to even, as torch.round) in one new buffer."""
        scaled = np.clip(unit, 0, 1)
        np.multiply(scaled, np.float32(out_max), out=scaled)
        return np.rint(scaled, out=scaled)

    def cat(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts, axis=1)

    def where(self, condition: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(condition, a, b).astype(np.float32, copy=False)

    def round(self, x: np.ndarray) -> np.ndarray:
        return np.rint(x)

    def to_numpy(self, x: np.ndarray) -> np.ndarray:
        return x

    def extremes(self, unit: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per image (each N): the minimum and maximum, shape (N, 1, 1, 1)."""
        axes = tuple(range(1, unit.ndim))
        return unit.min(axis=axes, keepdims=True), unit.max(axis=axes, keepdims=True)

    def stretch(self, unit: np.ndarray, extremes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """Min–max per image (each N) to [0, 1]; a constant image becomes 0. ``extremes`` (from
        ``extremes``, maybe gathered over tiles) replaces the image's own."""
        low, high = extremes or self.extremes(unit)
        with np.errstate(invalid="ignore", over="ignore"):  # NaN/inf inputs: NaN out, quietly
            return ((unit - low) / np.where(high > low, high - low, 1)).astype(np.float32)

    def synchronize(self) -> None:
        pass


def backend_for(engine: str, device: str) -> Any:
    return NumpyBackend() if engine == "numpy" else TorchBackend(device)


# --------------------------------------------------------------------------- running


class Run:
    """Per-run state the stages need: maxpool indices for their maxunpool, seeds, the scale."""

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
        own = getattr(stage, "seed", None)
        return own if own is not None else self.seed + self.index


@dataclass
class RunResult:
    """The pipeline's output (a torch tensor or numpy array) with its scale and timings."""

    data: Any
    scale: float
    value_max: float  # 1.0 for [0, 1] values, the native maximum with --scale raw
    seconds: list[float]
    device: str
    plan: Plan
    backend: Any
    stage_outputs: list[Any] = field(default_factory=list)
    batch_size: int = 1  # how many inputs shared this run (its seconds cover all of them)
    quantized: "Quantized | None" = None  # set by a tiled run, which quantizes tile by tile

    @property
    def engine(self) -> str:
        return self.backend.name

    def values(self) -> np.ndarray:
        """The exact float output in the user's scale, as numpy (for .npy/.pt)."""
        return self.backend.to_numpy(_values(self.backend, self.data, self.scale))

    def slice(self, index: int) -> "RunResult":
        """The result for one image of a stacked batch (views, no copies)."""
        part = slice(index, index + 1)
        return RunResult(
            None if self.data is None else self.data[part], self.scale, self.value_max, self.seconds, self.device,
            self.plan, self.backend,
            [(data[part], scale) for data, scale in self.stage_outputs], self.batch_size,
            None if self.quantized is None else Quantized(self.quantized.array[part], self.quantized.normalize),
        )


def _values(backend: Any, data: Any, scale: float) -> Any:
    data = backend.to_float(data)
    return data / scale if scale != 1 else data


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
    backend = backend_for(choose_engine(engine, device, pipeline), device)
    with _kernel_threads(backend, threads):
        scale = 1.0 if raw_scale else float(maxval)
        value_max = float(maxval) if raw_scale else 1.0
        if bit_depth == 8 and maxval == 255 and backend.name == "numpy" and normalize in ("auto", "clip") \
                and len(plan.stages) == 1 and not (keep_stages or premultiply or raw_scale):
            from .numpy_engine import quantized_average

            start = time.perf_counter()
            direct = quantized_average(plan.stages[0].stage, array)
            if direct is not None:
                return RunResult(
                    None, scale, value_max, [time.perf_counter() - start], device, plan, backend,
                    batch_size=len(array), quantized=Quantized(direct, "clip" if normalize == "clip" else "none"),
                )
        run = Run(plan, seed, scale)
        seconds = [0.0] * len(plan.stages)
        outputs: list[Any] = [] if keep_stages else None  # type: ignore[assignment]
        x = _run_stages(backend, plan, backend.upload(array), run, premultiply, seconds, outputs=outputs)
        return RunResult(x, run.scale, value_max, seconds, device, plan, backend, outputs or [], len(array))


def _kernel_threads(backend: Any, threads: int) -> Any:
    """``kernels_numpy.threads(threads)`` for the numpy engine; nothing to set for torch."""
    if backend.name != "numpy" or threads <= 1:
        return contextlib.nullcontext()
    from .kernels_numpy import threads as kernel_threads

    return kernel_threads(threads)


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
        return _values(backend, x, scale), 1.0
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


# --------------------------------------------------------------------------- quantizing


@dataclass
class Quantized:
    """An image-ready integer array and how its values were brought into range."""

    array: np.ndarray
    normalize: str  # "none", "clip", "minmax", "abs" or "auto → minmax"


class Quantizer:
    """Float outputs → image integers, by ``--normalize``, for a whole output or tile by tile.

    ``auto`` keeps values already in range and stretches others min–max per image; ``clip``
    clips; ``minmax`` always stretches; ``abs`` takes magnitudes then clips (edge maps).
    Integer outputs of range-preserving stages (max pooling of uint8) are written as they are.
    Rounding is half to even, as torch.round and numpy.rint, so both engines agree. A tiled run
    calls ``convert`` per tile with the extremes gathered over all of them, so tiles and the
    whole image give the same integers.
    """

    def __init__(self, backend: Any, bit_depth: int, normalize: str, value_max: float):
        if normalize not in NORMALIZE_MODES:
            raise UsageError(f"--normalize {normalize!r}", f"use one of {', '.join(NORMALIZE_MODES)}")
        self.backend = backend
        self.normalize = normalize
        self.value_max = value_max
        self.out_max = 255 if bit_depth <= 8 else 65535
        self.dtype = np.uint8 if bit_depth <= 8 else np.uint16

    def passes_through(self, data: Any, scale: float) -> bool:
        """Integer data already in the output's range: written as it is, nothing to normalize."""
        return (
            not self.backend.is_float(data) and scale * self.value_max == self.out_max
            and self.normalize in ("auto", "clip")
        )

    def unit(self, data: Any, scale: float) -> Any:
        return self.backend.unit(data, scale, self.value_max)

    def integers(self, data: Any) -> np.ndarray:
        array = self.backend.to_numpy(data)
        return array if array.dtype == self.dtype else np.clip(array, 0, self.out_max).astype(self.dtype)

    def convert(self, unit: Any, applied: str, extremes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """``unit`` values as integers, the way ``applied`` says ("none", "clip", "abs" or a stretch)."""
        backend = self.backend
        if applied in ("minmax", "auto → minmax"):
            unit = backend.stretch(unit, extremes)
        elif applied == "abs":
            unit = abs(unit)
        scaled = backend.levels(unit, self.out_max)
        with np.errstate(invalid="ignore"):  # NaN has no integer: it casts to 0 without a warning
            return backend.to_numpy(scaled).astype(self.dtype)


def in_unit_range(low: float, high: float) -> bool:
    """``auto`` keeps an output whose values all lie in [0, 1] (NaN anywhere: stretch)."""
    return bool(low >= 0 and high <= 1)


def quantize(
    result: RunResult, bit_depth: int, normalize: str = "auto", stage: tuple[Any, float] | None = None
) -> Quantized:
    """Bring the output (or a ``stage`` output, (data, scale)) into the image's range and round
    it to ``bit_depth`` integers; see ``Quantizer`` for the modes. A tiled run's output arrives
    quantized already.
    """
    quantizer = Quantizer(result.backend, bit_depth, normalize, result.value_max)
    if stage is None and result.quantized is not None:
        return result.quantized
    data, scale = stage if stage is not None else (result.data, result.scale)
    if quantizer.passes_through(data, scale):
        return Quantized(quantizer.integers(data), "none")
    unit = quantizer.unit(data, scale)
    applied = normalize
    if normalize == "auto":
        applied = "none" if in_unit_range(float(unit.min()), float(unit.max())) else "auto → minmax"
    return Quantized(quantizer.convert(unit, applied), applied)


# --------------------------------------------------------------------------- tiled runs


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
) -> RunResult:
    """Run ``pipeline`` tile by tile (output tiles of at most ``tile``), each from the input
    region it needs (tiling.tile_region), converted to float per tile and written into one
    uint8/uint16 output (``bit_depth`` 8/16) or, for arrays (``bit_depth`` None), float32.

    Same numbers as ``run_pipeline`` then ``quantize``. ``auto`` is optimistic: tiles are
    written as in range while their minimum and maximum are gathered; only an output that
    left [0, 1] is computed a second time, stretched by the extremes of the whole image.
    ``minmax`` always takes the two passes; ``clip``, ``abs`` and integer outputs one.
    """
    from .tiling import tile_regions

    plan = plan or pipeline.plan(array.shape)
    device = resolve_device(device)
    backend = backend_for(choose_engine(engine, device, pipeline), device)
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

    def place(out: np.ndarray, region: Any, values: np.ndarray) -> None:
        (r0, r1), (c0, c1) = region.output_rows, region.output_cols
        out[..., r0:r1, c0:c1] = values

    shape = plan.output_shape
    if bit_depth is None:
        out = np.empty(shape, np.float32)
        for region, y, y_scale in tiles():
            place(out, region, backend.to_numpy(_values(backend, y, y_scale)))
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
        normalize == "auto" and low is not None and not in_unit_range(float(low.min()), float(high.max()))
    )
    if stretch:
        applied = "minmax" if normalize == "minmax" else "auto → minmax"
        for region, y, y_scale in tiles():
            place(out, region, quantizer.convert(quantizer.unit(y, y_scale), applied, (low, high)))
    result = RunResult(out, 1.0, value_max, seconds, device, plan, NumpyBackend(), [], len(array))
    result.quantized = Quantized(out, applied)
    return result


# --------------------------------------------------------------------------- out of memory


def is_out_of_memory(exc: BaseException) -> bool:
    """CUDA's out-of-memory (torch.cuda.OutOfMemoryError) or the host's (MemoryError, numpy's
    _ArrayMemoryError); torch is looked at only when something already imported it."""
    if isinstance(exc, MemoryError):
        return True
    import sys

    torch = sys.modules.get("torch")
    error = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return isinstance(error, type) and isinstance(exc, error)


def release_device_memory(device: str) -> None:
    """Hand cached CUDA blocks back after an out-of-memory, so a smaller retry can use them."""
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda"):
        try:
            torch.cuda.empty_cache()
        except Exception:  # noqa: BLE001 — best effort: the retry reports any real failure
            pass
