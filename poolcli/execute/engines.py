"""Which engine runs a pipeline, and the array operations each engine gives ``run``.

Engines: ``numpy`` (CPU, no torch import: a single ``poolcli pool photo.jpg`` starts as fast as
a Pillow script) and ``torch`` (CPU or CUDA, and the semantic reference). ``choose_engine`` is
the one place that decides; both give the same numbers (tests/kernels). A backend wraps an
engine's kernels with the few array operations the runner needs around them (upload, float
conversion, premultiplying, the quantizer's arithmetic), so ``run`` is written once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError
from .devices import resolve_device

ENGINES = ("auto", "numpy", "torch")


def choose_engine(engine: str, device: str, stages: Any) -> str:
    """``auto``: numpy on the CPU when every stage has a numpy kernel, torch otherwise."""
    from ..kernels.numpy import missing_kernels

    engine = (engine or "auto").lower()
    if engine not in ENGINES:
        raise UsageError(f"--engine {engine!r}", f"use one of {', '.join(ENGINES)}")
    missing = missing_kernels(stages)
    if engine == "numpy":
        if device != "cpu":
            raise UsageError(f"--engine numpy runs on the CPU, not {device}", "use --engine torch or --device cpu")
        if missing:
            raise UsageError(f"--engine numpy has no kernel for {', '.join(missing)}", "use --engine torch or auto")
        return "numpy"
    if engine == "torch" or device != "cpu" or missing:
        return "torch"
    return "numpy"


def import_engine(engine: str, device: str, stages: Any) -> str:
    """Import what running ``stages`` will take (the numpy kernels, or torch) and say which engine.

    ``batch`` calls it on a thread while the first input decodes, so the imports (numpy's kernels,
    or torch's, which take far longer) overlap the decode instead of following it.
    """
    chosen = choose_engine(engine, resolve_device(device), stages)
    if chosen == "torch":
        from ..kernels import torch as torch_kernels  # noqa: F401
    return chosen


class TorchBackend:
    """Array operations on torch tensors (CPU or CUDA)."""

    name = "torch"

    def __init__(self, device: str):
        import torch

        from ..kernels import torch as kernels

        self.torch = torch
        self.kernels = kernels
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

    def apply(self, stage: Any, x: Any, run: Any) -> Any:
        return self.kernels.apply(stage, x, run)

    def is_float(self, x: Any) -> bool:
        return x.is_floating_point()

    def to_float(self, x: Any) -> Any:
        return x if x.is_floating_point() else x.float()

    def takes_integers(self, stage: Any) -> bool:
        return False  # torch's avg_pool2d and conv2d have no integer kernels

    def unit(self, data: Any, scale: float, value_max: float) -> Any:
        """Values in [0, 1] of the input's range: ``data / scale / value_max`` in float32."""
        return values(self, data, scale) / value_max

    def levels(self, unit: Any, out_max: int) -> Any:
        return self.kernels.levels(unit, out_max)

    def cat(self, parts: list[Any]) -> Any:
        return self.torch.cat(parts, dim=1)

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        return self.torch.where(condition, a, b)

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
    """The same operations on numpy arrays; stages run through ``poolcli.kernels.numpy``."""

    name = "numpy"
    device = "cpu"

    def __init__(self) -> None:
        from ..kernels import numpy as kernels

        self.kernels = kernels

    def upload(self, array: np.ndarray) -> np.ndarray:
        if array.dtype not in (np.uint8, np.uint16, np.int32, np.float32):
            array = array.astype(np.float32)
        return array

    def apply(self, stage: Any, x: np.ndarray, run: Any) -> np.ndarray:
        return self.kernels.apply(stage, x, run)

    def is_float(self, x: np.ndarray) -> bool:
        return x.dtype.kind == "f"

    def to_float(self, x: np.ndarray) -> np.ndarray:
        return x if x.dtype == np.float32 else x.astype(np.float32)

    def takes_integers(self, stage: Any) -> bool:
        """avg, adaptive/global avg and conv kernels sum uint8/uint16 exactly: no float32 copy first."""
        return self.kernels.takes_integers(stage)

    def unit(self, data: np.ndarray, scale: float, value_max: float) -> np.ndarray:
        """The torch backend's float32 divisions in the same order, into one new array."""
        unit = np.divide(data, np.float32(scale), dtype=np.float32) if scale != 1 else np.array(data, np.float32)
        if value_max != 1:
            np.divide(unit, np.float32(value_max), out=unit)
        return unit

    def levels(self, unit: np.ndarray, out_max: int) -> np.ndarray:
        from ..kernels.quantize import levels

        return levels(unit, out_max)

    def cat(self, parts: list[np.ndarray]) -> np.ndarray:
        return np.concatenate(parts, axis=1)

    def where(self, condition: Any, a: Any, b: Any) -> np.ndarray:
        return np.where(condition, a, b).astype(np.float32, copy=False)

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


def values(backend: Any, data: Any, scale: float) -> Any:
    """``data / scale`` as floats: the values the user reasons about."""
    data = backend.to_float(data)
    return data / scale if scale != 1 else data
