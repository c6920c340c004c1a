"""The memory budget: how big a run is, and whether an input runs whole, tiled, or not at all.

``choose_execution`` compares a plan's estimate with ``--memory`` (default: half the RAM
available) and picks whole-image, tiled at the largest tile that fits, or a clear error that
names both; ``smaller_execution`` picks smaller tiles after an out-of-memory. Pure Python.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from ..core.plan import FLOAT_BYTES, working_elements
from ..errors import PoolcliError, UsageError
from .tiling import plan_windows, tile_region, tiling_obstacle


DEFAULT_MEMORY_FRACTION = 0.5  # of the RAM available when the run starts


FALLBACK_MEMORY = 4 << 30  # where /proc/meminfo and sysconf both say nothing


DECODE_COPIES = 3  # the decoder's own buffer and the copies io.pictures may make of it (a mode conversion, a flip)


QUANTIZE_COPIES = 3  # float output, its unit-scaled copy and the rounded copy, before uint8


_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


class MemoryBudgetError(PoolcliError):
    """An input that cannot be processed within ``--memory``, even tiled: exit 1, naming both."""


def parse_memory_size(text: Any) -> int:
    """``--memory`` as bytes: a number with an optional K, M, G or T (powers of 1024, as ``sort -S``).

    >>> parse_memory_size("512M"), parse_memory_size("1.5G"), parse_memory_size("2GiB")
    (536870912, 1610612736, 2147483648)
    """
    if isinstance(text, int) and not isinstance(text, bool):
        number, unit = float(text), ""
    else:
        match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?)(?:i?b)?\s*", str(text), re.IGNORECASE)
        if match is None:
            raise UsageError(f"--memory {text!r} is not a size", "write it like 512M, 2G or 1.5G")
        number, unit = float(match.group(1)), match.group(2).lower()
    size = int(number * _UNITS[unit])
    if size < 1 << 20:
        raise UsageError(f"--memory {text}: {format_bytes(size)} is too little to run anything", "give at least 1M")
    return size


def available_memory() -> int | None:
    """Bytes of RAM available now: MemAvailable from /proc/meminfo, else free pages from sysconf."""
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, AttributeError):
        return None


def default_memory_budget() -> int:
    """Half of the RAM available now: room for the decoder, the encoder and everything else."""
    available = available_memory()
    return int(available * DEFAULT_MEMORY_FRACTION) if available else FALLBACK_MEMORY


def format_bytes(size: float) -> str:
    """Sizes for messages, in the units ``--memory`` takes, to 3 digits: 1536 MiB → '1.5 GiB'."""
    for unit, scale in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{int(size)} B"


def _count(shape: Sequence[int]) -> int:
    total = 1
    for d in shape:
        total *= d
    return total


def tile_working_bytes(plan: Any, tile_hw: tuple[int, int]) -> int:
    """An upper bound of the float32 bytes one tile of tile_hw holds at its busiest stage.

    Measured on the first, a middle and the last tile along each axis (inner tiles carry the
    whole halo; edge tiles may be stretched for reflect padding), axes combined at their worst.
    """
    out_h, out_w = plan.output_shape[-2:]
    th, tw = min(tile_hw[0], out_h), min(tile_hw[1], out_w)
    row_starts = sorted({0, max(0, (out_h - th) // 2), max(0, out_h - th)})
    col_starts = sorted({0, max(0, (out_w - tw) // 2), max(0, out_w - tw)})
    regions = [tile_region(plan, (r, min(r + th, out_h)), (c, min(c + tw, out_w))) for r in row_starts for c in col_starts]
    worst = 0
    for index, (stage_plan, (window_h, window_w)) in enumerate(zip(plan.stages, plan_windows(plan))):
        rows = max(region.lengths[index][0] for region in regions)
        cols = max(region.lengths[index][1] for region in regions)
        n, c = stage_plan.input_shape[:2]
        in_shape = (n, c, rows, cols)
        out_shape = (n, stage_plan.output_shape[1], _tile_output(window_h, rows), _tile_output(window_w, cols))
        worst = max(worst, working_elements(stage_plan.stage, in_shape, out_shape))
    n, c = plan.output_shape[:2]
    worst = max(worst, QUANTIZE_COPIES * n * c * th * tw)
    return FLOAT_BYTES * worst


def _tile_output(window: AxisWindow, length: int) -> int:
    """How many outputs a stage makes from ``length`` inputs, one more for a ceil_mode overhang."""
    return max(1, (length + window.before + window.after - window.span) // window.stride + 2)


@dataclass
class Execution:
    """How one input shape runs: ``whole`` or ``tiled`` (with its tile size), and why.

    ``resident_bytes`` is the estimate held while it runs; the JSON record's ``execution``.
    """

    mode: str
    reason: str
    estimate_bytes: int
    budget_bytes: int
    tile: tuple[int, int] | None = None
    tiles: int = 1
    resident_bytes: int = 0
    notes: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        """The JSON record's ``execution`` object."""
        return {
            "mode": self.mode,
            "reason": self.reason,
            "tile": list(self.tile) if self.tile else None,
            "tiles": self.tiles,
            "estimate_bytes": self.estimate_bytes,
            "memory_bytes": self.budget_bytes,
        }

    def note(self) -> str:
        """The line under the table: ``tiled: 12 tiles of 512×4000 — whole image 9.1 GiB > --memory 4.0 GiB``."""
        if self.mode == "whole":
            return f"whole image: {self.reason}"
        assert self.tile is not None
        return f"tiled: {self.tiles} tiles of {self.tile[0]}×{self.tile[1]} output pixels — {self.reason}"


def whole_image_bytes(plan: Any, input_itemsize: int, output_itemsize: int, stacked: int = 1, keep_stages: bool = False) -> int:
    """The estimate for one whole-image run: decoded input(s), the busiest stage, the output.

    ``stacked`` inputs are concatenated into one batch (a second copy of their pixels);
    ``keep_stages`` (--save-stages, --montage) holds every stage's output until the pictures are written.
    """
    input_bytes = _count(plan.input_shape) * input_itemsize
    held = input_bytes * (2 if stacked > 1 else 1)
    out_elements = _count(plan.output_shape)
    finish = QUANTIZE_COPIES * FLOAT_BYTES * out_elements + out_elements * output_itemsize
    total = held + max(plan.working_bytes(), finish)
    if keep_stages:
        total += FLOAT_BYTES * sum(_count(s.output_shape) for s in plan.stages)
    return max(total, DECODE_COPIES * input_bytes // stacked)


def tiled_floor_bytes(plan: Any, input_itemsize: int, output_itemsize: int) -> int:
    """What any tiled run holds at least: the decoded input and the whole output."""
    return _count(plan.input_shape) * input_itemsize + _count(plan.output_shape) * output_itemsize


def decode_bytes(plan: Any, input_itemsize: int) -> int:
    """The decoder's peak for one input: its own buffer and the copies ``io.pictures`` may make of it."""
    return DECODE_COPIES * _count(plan.input_shape) * input_itemsize


def choose_execution(
    plan: Any,
    *,
    budget: int,
    input_itemsize: int,
    output_itemsize: int,
    keep_stages: bool = False,
    tile: tuple[int, int] | None = None,
    name: str = "the input",
) -> Execution:
    """Whole-image when the estimate fits ``budget``; tiled when not; MemoryBudgetError when even
    tiled it cannot fit. ``tile`` forces tiled execution at that output tile size (tests).
    """
    whole = whole_image_bytes(plan, input_itemsize, output_itemsize, keep_stages=keep_stages)
    obstacle = tiling_obstacle(plan)
    shape = "×".join(map(str, plan.input_shape))
    if tile is not None and obstacle is None and not keep_stages:
        return _tiled(plan, tuple(tile), input_itemsize, output_itemsize, whole, budget, "tile size given")
    if whole <= budget:
        return Execution("whole", f"estimate {format_bytes(whole)} fits --memory {format_bytes(budget)}", whole, budget, resident_bytes=whole)
    over = f"{name}: {shape} needs about {format_bytes(whole)} whole-image, over --memory {format_bytes(budget)}"
    if keep_stages:
        raise MemoryBudgetError(over + ", and --save-stages/--montage keep every stage in memory", "raise --memory or drop those options")
    if obstacle is not None:
        raise MemoryBudgetError(over + f", and {obstacle} so it cannot be tiled", "raise --memory (e.g. --memory " + _suggest(whole) + ")")
    floor = tiled_floor_bytes(plan, input_itemsize, output_itemsize)
    decoding = decode_bytes(plan, input_itemsize)
    if floor >= budget or decoding > budget:
        least = max(floor, decoding)
        raise MemoryBudgetError(
            over + f"; even tiled it needs {format_bytes(least)} to decode the input and hold the output",
            "raise --memory (e.g. --memory " + _suggest(least * 1.25) + ")",
        )
    found = _fitting_tile(plan, budget - floor)
    if found is None:
        raise MemoryBudgetError(over + "; even its smallest tile does not fit beside the input and output", "raise --memory")
    reason = f"whole image {format_bytes(whole)} > --memory {format_bytes(budget)}"
    return _tiled(plan, found, input_itemsize, output_itemsize, whole, budget, reason)


def smaller_execution(plan: Any, previous: Execution | None, input_itemsize: int, output_itemsize: int) -> Execution:
    """After an out-of-memory (a GPU smaller than the host, or RAM taken meanwhile): tiles whose
    working set is a quarter of what ran out, whatever ``--memory`` allowed."""
    if previous is not None and previous.mode == "tiled":
        room = tile_working_bytes(plan, previous.tile) // 4  # type: ignore[arg-type]
    else:
        room = plan.working_bytes() // 4
    tile = _fitting_tile(plan, room) or (1, 1)
    whole = previous.estimate_bytes if previous is not None else whole_image_bytes(plan, input_itemsize, output_itemsize)
    budget = previous.budget_bytes if previous is not None else 0
    return _tiled(plan, tile, input_itemsize, output_itemsize, whole, budget, "retried in tiles after running out of memory")


def _tiled(plan, tile, input_itemsize, output_itemsize, whole, budget, reason) -> Execution:
    out_h, out_w = plan.output_shape[-2:]
    tile = (max(1, min(tile[0], out_h)), max(1, min(tile[1], out_w)))
    count = -(-out_h // tile[0]) * -(-out_w // tile[1])
    resident = max(
        tiled_floor_bytes(plan, input_itemsize, output_itemsize) + tile_working_bytes(plan, tile),
        decode_bytes(plan, input_itemsize),
    )
    return Execution("tiled", reason, whole, budget, tile, count, resident)


def _fitting_tile(plan: Any, room: int) -> tuple[int, int] | None:
    """The largest tile (halving the side whose input extent is longer) whose working set fits ``room``."""
    jump_h, jump_w = plan.stages[-1].jump
    th, tw = plan.output_shape[-2:]
    while tile_working_bytes(plan, (th, tw)) > room:
        if th == 1 and tw == 1:
            return None
        if tw == 1 or (th > 1 and th * float(jump_h) >= tw * float(jump_w)):
            th = -(-th // 2)
        else:
            tw = -(-tw // 2)
    return th, tw


def _suggest(size: float) -> str:
    """A --memory value a bit over ``size``, in whole units: 2.3 GiB → '3G'."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20)):
        if size >= scale:
            return f"{int(size // scale) + 1}{unit}"
    return "1M"


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
