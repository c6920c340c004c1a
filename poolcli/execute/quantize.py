"""The quantizer's policy: a run's float output → image integers, by ``--normalize``.

``auto`` keeps values already in range and stretches others min–max per image; ``clip``
clips; ``minmax`` always stretches; ``abs`` takes magnitudes then clips (edge maps). Integer
outputs of range-preserving stages (max pooling of uint8) are written as they are. The rounding
itself is the one quantizer's arithmetic, per engine (``poolcli.kernels.quantize``), half to even.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import UsageError

if TYPE_CHECKING:
    import numpy as np

NORMALIZE_MODES = ("auto", "clip", "minmax", "abs")


@dataclass(frozen=True)
class Quantized:
    """An image-ready integer array and how its values were brought into range."""

    array: np.ndarray
    normalize: str  # "none", "clip", "minmax", "abs" or "auto → minmax"


class Quantizer:
    """Float outputs → image integers for a whole output or tile by tile.

    A tiled run calls ``convert`` per tile with the extremes gathered over all of them, so tiles
    and the whole image give the same integers.
    """

    def __init__(self, backend: Any, bit_depth: int, normalize: str, value_max: float):
        if normalize not in NORMALIZE_MODES:
            raise UsageError(f"--normalize {normalize!r}", f"use one of {', '.join(NORMALIZE_MODES)}")
        self.backend = backend
        self.normalize = normalize
        self.value_max = value_max
        self.out_max = 255 if bit_depth <= 8 else 65535
        import numpy as np  # here, not at import: the CLI reads NORMALIZE_MODES before numpy is needed

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
        if array.dtype == self.dtype:
            return array
        import numpy as np

        return np.clip(array, 0, self.out_max).astype(self.dtype)

    def convert(self, unit: Any, applied: str, extremes: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """``unit`` values as integers, the way ``applied`` says ("none", "clip", "abs" or a stretch)."""
        backend = self.backend
        if applied in ("minmax", "auto → minmax"):
            unit = backend.stretch(unit, extremes)
        elif applied == "abs":
            unit = abs(unit)
        scaled = backend.levels(unit, self.out_max)
        import numpy as np

        with np.errstate(invalid="ignore"):  # NaN has no integer: it casts to 0 without a warning
            return backend.to_numpy(scaled).astype(self.dtype)


# Float round-off is not "out of range" (DESIGN §1): a bilinear weighing of 8-bit 255s gives
# 255.00002, 1.0000001 in unit scale. Values this close to [0, 1] round to the same integers as
# their clipped selves; ``auto`` keeps them, where a stretch would move every other pixel.
ROUND_OFF = 2.0**-20


def in_unit_range(low: float, high: float) -> bool:
    """``auto`` keeps an output whose values all lie in [0, 1], give or take float round-off
    (``ROUND_OFF``); NaN anywhere: stretch.

    >>> in_unit_range(0.0, 1.0000001), in_unit_range(-1e-7, 0.5), in_unit_range(0.0, 1.001)
    (True, True, False)
    """
    return bool(low >= -ROUND_OFF and high <= 1 + ROUND_OFF)


def quantize(result: Any, bit_depth: int, normalize: str = "auto", stage: tuple[Any, float] | None = None,
             keeps_range: bool = False) -> Quantized:
    """Bring a run's output (or a ``stage`` output, (data, scale)) into the image's range and round
    it to ``bit_depth`` integers; see ``Quantizer`` for the modes. A tiled run's output arrives
    quantized already. ``keeps_range``: an image through stages that keep [0, 1] (pools, unpool,
    pad): ``auto`` leaves it as it is, a premultiplied average's 1.0000001 is round-off, not a
    reason to stretch.
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
        applied = "none" if keeps_range or in_unit_range(float(unit.min()), float(unit.max())) else "auto → minmax"
    return Quantized(quantizer.convert(unit, applied), applied)
