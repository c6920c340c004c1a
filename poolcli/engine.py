"""Runs a planned pipeline on a batch of pixels, on the CPU or a CUDA device, and times it.

The only module (with the stages' ``apply``) that imports torch, and only when called.

Values: a batch arrives in its native dtype (uint8, uint16, float32) with a ``scale`` such
that ``data / scale`` is what the user reasons about ([0, 1] for images by default). Stages
that commute with scaling (max, min, median, avg, conv without bias, unpool...) run on the
data as it is, so max pooling stays in uint8 and averages of 8-bit pixels stay exact; stages
that do not (activations, conv with a bias, linear) first divide by the scale. Images with
alpha are premultiplied around averaging stages so transparent pixels leave no dark fringes.

    >>> import numpy as np
    >>> from poolcli.pipeline import Pipeline
    >>> x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    >>> run_pipeline(Pipeline.from_specs(["maxpool:2,s=1"]), x).values().tolist()
    [[[[4.0, 5.0], [7.0, 8.0]]]]
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import DeviceError, UsageError
from .pipeline import Pipeline, Plan

NORMALIZE_MODES = ("auto", "clip", "minmax", "abs")


def cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def resolve_device(device: str = "auto") -> str:
    """'auto' → 'cuda' when torch sees a GPU, else 'cpu'; 'cuda[:N]' must exist."""
    device = (device or "auto").strip().lower()
    if device == "cpu":
        return "cpu"
    if device == "auto":
        return "cuda" if cuda_available() else "cpu"
    if device == "cuda" or device.startswith("cuda:"):
        import torch

        if not torch.cuda.is_available():
            raise DeviceError(f"--device {device}: torch sees no CUDA device", "use --device cpu or auto")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {device}: only {torch.cuda.device_count()} CUDA device(s)", "use --device cuda:0"
            )
        return device
    raise UsageError(f"--device {device!r} is not a device", "use auto, cpu, cuda or cuda:N")


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
        pool_index = self.plan.unpool_pairs[self.index]
        indices, input_size = self._indices.pop(pool_index)
        output_size = tuple(self.plan.stages[self.index].output_shape[-2:])
        return indices, output_size  # type: ignore[return-value]

    def stage_seed(self, stage: Any) -> int:
        own = getattr(stage, "seed", None)
        return own if own is not None else self.seed + self.index


@dataclass
class RunResult:
    """The pipeline's output tensor (torch, on its device) with its scale and timings."""

    data: Any
    scale: float
    value_max: float  # 1.0 for [0, 1] values, the native maximum with --scale raw
    seconds: list[float]
    device: str
    plan: Plan
    stage_outputs: list[Any] = field(default_factory=list)

    def values(self) -> np.ndarray:
        """The exact float output in the user's scale, as numpy (for .npy/.pt)."""
        return _to_numpy(_values(self.data, self.scale))


def _values(data: Any, scale: float) -> Any:
    data = data.float() if not data.is_floating_point() else data
    return data / scale if scale != 1 else data


def _to_numpy(tensor: Any) -> np.ndarray:
    return tensor.detach().to("cpu").numpy()


def run_pipeline(
    pipeline: Pipeline,
    array: np.ndarray,
    *,
    maxval: float = 1.0,
    raw_scale: bool = False,
    premultiply: bool = False,
    device: str = "cpu",
    seed: int = 0,
    plan: Plan | None = None,
    keep_stages: bool = False,
) -> RunResult:
    """Run ``pipeline`` on an N×C×H×W ``array`` in its native dtype (``maxval``: 255 for 8-bit).

    ``raw_scale`` keeps values in 0..maxval instead of [0, 1]; ``premultiply`` (images with
    alpha in the last channel) makes averaging stages work on premultiplied colour.
    """
    import torch

    plan = plan or pipeline.plan(array.shape)
    device = resolve_device(device)
    x = _upload(torch, array, device)
    scale = 1.0 if raw_scale else float(maxval)
    value_max = float(maxval) if raw_scale else 1.0
    run = Run(plan, seed, scale)
    seconds: list[float] = []
    outputs: list[Any] = []
    synchronize = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    for stage_plan in plan.stages:
        stage = stage_plan.stage
        run.index = stage_plan.index
        start = time.perf_counter()
        x, run.scale = _prepare(torch, x, run.scale, stage.dtype_policy)
        alpha = premultiply and stage.averaging and x.dim() == 4 and x.shape[1] in (2, 4)
        if alpha:
            x = _premultiply(torch, x, run.scale)
        y = stage.apply(x, run)
        if alpha and y.shape[1] == x.shape[1]:
            y = _unpremultiply(torch, y, run.scale)
        synchronize()
        seconds.append(time.perf_counter() - start)
        x = y
        if keep_stages:
            outputs.append((x, run.scale))
    return RunResult(x, run.scale, value_max, seconds, device, plan, outputs)


def _upload(torch: Any, array: np.ndarray, device: str) -> Any:
    """numpy → torch on ``device``; 16-bit goes to int32 (torch has no uint16 pooling kernels)."""
    if array.dtype == np.uint16:
        array = array.astype(np.int32)
    elif array.dtype not in (np.uint8, np.int32, np.float32):
        array = array.astype(np.float32)
    tensor = torch.from_numpy(array)
    if device.startswith("cuda"):
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def _prepare(torch: Any, x: Any, scale: float, policy: str) -> tuple[Any, float]:
    if policy == "unit" and scale != 1:
        return _values(x, scale), 1.0
    if policy in ("float", "unit") and not x.is_floating_point():
        return x.float(), scale
    return x, scale


def _premultiply(torch: Any, x: Any, scale: float) -> Any:
    x = x if x.is_floating_point() else x.float()
    alpha = x[:, -1:]
    return torch.cat([x[:, :-1] * (alpha / scale), alpha], dim=1)


def _unpremultiply(torch: Any, y: Any, scale: float) -> Any:
    alpha = y[:, -1:]
    safe = torch.where(alpha > 0, alpha / scale, torch.ones_like(alpha))
    colour = torch.where(alpha > 0, y[:, :-1] / safe, torch.zeros_like(y[:, :-1]))
    return torch.cat([colour, alpha], dim=1)


@dataclass
class Quantized:
    """An image-ready integer array and how its values were brought into range."""

    array: np.ndarray
    normalize: str  # e.g. "none", "clip", "minmax", "auto → minmax"


def quantize(data: Any, scale: float, value_max: float, bit_depth: int, normalize: str = "auto") -> Quantized:
    """Bring a stage output into the image's range and round it to ``bit_depth`` integers.

    ``auto`` keeps values already in range and stretches others min–max per image; ``clip``
    clips; ``minmax`` always stretches; ``abs`` takes magnitudes then clips (edge maps).
    Integer outputs of range-preserving stages (max pooling of uint8) are written as they are.
    Rounding is half to even, as torch.round and numpy.rint.
    """
    import torch

    if normalize not in NORMALIZE_MODES:
        raise UsageError(f"--normalize {normalize!r}", f"use one of {', '.join(NORMALIZE_MODES)}")
    out_max = 255 if bit_depth <= 8 else 65535
    dtype = np.uint8 if bit_depth <= 8 else np.uint16
    if not data.is_floating_point() and scale * value_max == out_max and normalize in ("auto", "clip"):
        return Quantized(_to_numpy(data.clamp(0, out_max)).astype(dtype, copy=False), "none")
    unit = _values(data, scale) / value_max
    applied = normalize
    if normalize == "auto":
        low, high = float(unit.min()), float(unit.max())
        applied = "none" if low >= 0 and high <= 1 else "auto → minmax"
        if applied != "none":
            unit = _minmax(torch, unit)
    elif normalize == "minmax":
        unit = _minmax(torch, unit)
    elif normalize == "abs":
        unit = unit.abs()
    result = torch.round(unit.clamp(0, 1) * out_max)
    return Quantized(_to_numpy(result).astype(dtype), applied)


def _minmax(torch: Any, unit: Any) -> Any:
    """Per image (each N), stretch to [0, 1]; a constant image becomes 0."""
    flat = unit.reshape(unit.shape[0], -1)
    low = flat.min(dim=1).values.view(-1, *([1] * (unit.dim() - 1)))
    high = flat.max(dim=1).values.view(-1, *([1] * (unit.dim() - 1)))
    span = torch.where(high > low, high - low, torch.ones_like(high))
    return (unit - low) / span

