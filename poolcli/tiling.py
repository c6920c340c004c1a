"""Tiled execution planning: which input region each output tile needs, and when to tile at all.

A pipeline of local stages (windowed pools, conv, pad, activations, grayscale) computes any block
of its output from a bounded block of its input: the receptive field, walked back stage by stage.
``tile_region`` does that walk for one output tile; ``choose_execution`` compares the plan's
memory estimate with ``--memory`` and picks whole-image, tiled, or a clear error. Pure Python:
no pixels, no numpy, no torch; ``engine.run_tiled`` executes what is planned here.

How borders come out identical: a stage runs on its tile with its own parameters (padding
included) and the outputs whose window touched the tile's *inner* edges, where the tile's
padding stands in for real pixels, are cropped away. A tile that starts at the image's edge sees
the real padding there; every inner tile starts at a multiple of the stage's stride, so its
windows, divisors and ceil_mode overhangs line up with the whole-image run's. ``maxpool:2`` to
an output row block [10, 20) reads input rows [20, 40)::

    >>> from poolcli.pipeline import Pipeline
    >>> plan = Pipeline.from_specs(["maxpool:2"]).plan((1, 1, 64, 64))
    >>> tile_region(plan, (10, 20), (0, 32)).input_rows
    (20, 40)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from .errors import PoolcliError, UsageError

DEFAULT_MEMORY_FRACTION = 0.5  # of the RAM available when the run starts
FALLBACK_MEMORY = 4 << 30  # where /proc/meminfo and sysconf both say nothing
DECODE_COPIES = 3  # the decoder's own buffer, numpy's view of it and the NCHW copy (images.py)
QUANTIZE_COPIES = 3  # float output, its unit-scaled copy and the rounded copy, before uint8
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
_FIELD_OPS = {"relu", "sigmoid", "tanh", "leakyrelu", "grayscale"}


class MemoryBudgetError(PoolcliError):
    """An input that cannot be processed within ``--memory``, even tiled: exit 1, naming both."""


# --------------------------------------------------------------------------- the budget


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


# --------------------------------------------------------------------------- stage geometry


@dataclass(frozen=True)
class AxisWindow:
    """One stage along one axis: output o reads input [o·stride − before, o·stride − before + span).

    ``min_length``: the shortest tile the stage can run on and still pad as the whole image does
    (reflect padding p reads p + 1 real pixels).
    """

    span: int
    stride: int
    before: int
    after: int
    min_length: int = 1


POINTWISE = AxisWindow(1, 1, 0, 0)


def stage_windows(stage: Any) -> tuple[AxisWindow, AxisWindow] | str:
    """The stage's (H, W) windows, or why it cannot run on tiles (it needs the whole plane).

    >>> from poolcli.spec import parse_stage
    >>> stage_windows(parse_stage("maxpool:3,s=2,p=1"))[0]
    AxisWindow(span=3, stride=2, before=1, after=1, min_length=1)
    >>> stage_windows(parse_stage("adaptiveavgpool:7"))
    'adaptiveavgpool needs the whole plane'
    """
    op = stage.op
    if op in _FIELD_OPS:
        return POINTWISE, POINTWISE
    if op in ("maxpool", "minpool", "avgpool", "lppool", "medianpool"):
        dilation = getattr(stage, "dilation", (1, 1))
        padding = getattr(stage, "padding", (0, 0))
        return tuple(  # type: ignore[return-value]
            AxisWindow(dilation[i] * (stage.kernel_size[i] - 1) + 1, stage.stride[i], padding[i], padding[i])
            for i in (0, 1)
        )
    if op == "conv":
        if stage.padding_mode == "circular":
            return "conv with padding_mode=circular wraps the far edge around"
        left, right, top, bottom = stage.padding_lrtb()
        kh, kw = stage._kernel_hw()
        reflect = stage.padding_mode == "reflect"
        return (
            AxisWindow(stage.dilation[0] * (kh - 1) + 1, stage.stride[0], top, bottom, max(top, bottom) + 1 if reflect else 1),
            AxisWindow(stage.dilation[1] * (kw - 1) + 1, stage.stride[1], left, right, max(left, right) + 1 if reflect else 1),
        )
    if op == "pad":
        if stage.mode == "circular":
            return "pad with mode=circular wraps the far edge around"
        left, right, top, bottom = stage.padding
        reflect = stage.mode == "reflect"
        return (
            AxisWindow(1, 1, top, bottom, max(top, bottom) + 1 if reflect else 1),
            AxisWindow(1, 1, left, right, max(left, right) + 1 if reflect else 1),
        )
    return f"{op} needs the whole plane"


def tiling_obstacle(plan: Any) -> str | None:
    """Why this plan must run whole-image (the first stage that needs the whole plane), or None."""
    for stage_plan in plan.stages:
        windows = stage_windows(stage_plan.stage)
        if isinstance(windows, str):
            return f"stage {stage_plan.index} {windows}"
    if not plan.stages or len(plan.output_shape) != 4:
        return "the pipeline has no spatial stages"
    return None


# --------------------------------------------------------------------------- tile regions


def axis_input_range(window: AxisWindow, length: int, start: int, stop: int) -> tuple[int, int]:
    """The input range [lo, hi) a stage needs for its outputs [start, stop) along one axis.

    ``lo`` is 0 or a multiple of the stride, so the tile's windows line up with the whole
    image's; a tile reaching an edge of the input takes the edge's padding as it is.

    >>> axis_input_range(AxisWindow(3, 2, 1, 1), 9, 1, 3)
    (0, 6)
    >>> axis_input_range(AxisWindow(3, 2, 1, 1), 9, 3, 5)
    (4, 9)
    """
    first = start * window.stride - window.before
    end = (stop - 1) * window.stride - window.before + window.span
    lo = max(0, (first // window.stride) * window.stride)
    hi = min(length, end)
    need = min(window.min_length, length)
    if hi - lo < need:
        hi = min(length, lo + need)
    if hi - lo < need:
        lo = max(0, ((hi - need) // window.stride) * window.stride)
    return lo, hi


@dataclass(frozen=True)
class TileRegion:
    """One output tile: the pipeline-input block it reads and, per stage, which outputs to keep.

    ``crops[i]`` is ((row0, row1), (col0, col1)) in the coordinates of stage i's output on this
    tile; ``lengths[i]`` the (rows, cols) of stage i's input tile.
    """

    output_rows: tuple[int, int]
    output_cols: tuple[int, int]
    input_rows: tuple[int, int]
    input_cols: tuple[int, int]
    crops: tuple[tuple[tuple[int, int], tuple[int, int]], ...]
    lengths: tuple[tuple[int, int], ...]


def _axis_walk(windows: Sequence[AxisWindow], lengths: Sequence[int], start: int, stop: int):
    """Walk one axis back from outputs [start, stop): the input range and every stage's crop."""
    crops: list[tuple[int, int]] = []
    spans: list[int] = []
    for window, length in zip(reversed(windows), reversed(lengths)):
        lo, hi = axis_input_range(window, length, start, stop)
        offset = lo // window.stride
        crops.append((start - offset, stop - offset))
        spans.append(hi - lo)
        start, stop = lo, hi
    return (start, stop), crops[::-1], spans[::-1]


def plan_windows(plan: Any) -> list[tuple[AxisWindow, AxisWindow]]:
    """Every stage's windows; the plan must have no tiling obstacle."""
    result = []
    for stage_plan in plan.stages:
        windows = stage_windows(stage_plan.stage)
        if isinstance(windows, str):
            raise ValueError(f"stage {stage_plan.index}: {windows}")
        result.append(windows)
    return result


def tile_region(plan: Any, rows: tuple[int, int], cols: tuple[int, int]) -> TileRegion:
    """The region of the pipeline's input, and the per-stage crops, for one output tile."""
    windows = plan_windows(plan)
    heights = [s.input_shape[2] for s in plan.stages]
    widths = [s.input_shape[3] for s in plan.stages]
    input_rows, row_crops, row_spans = _axis_walk([w[0] for w in windows], heights, *rows)
    input_cols, col_crops, col_spans = _axis_walk([w[1] for w in windows], widths, *cols)
    return TileRegion(
        tuple(rows), tuple(cols), input_rows, input_cols,  # type: ignore[arg-type]
        tuple(zip(row_crops, col_crops)), tuple(zip(row_spans, col_spans)),
    )


def tile_grid(output_hw: tuple[int, int], tile_hw: tuple[int, int]) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """Output tiles of at most tile_hw, row by row: (rows, cols) ranges covering the output.

    >>> tile_grid((5, 4), (2, 4))
    [((0, 2), (0, 4)), ((2, 4), (0, 4)), ((4, 5), (0, 4))]
    """
    (height, width), (th, tw) = output_hw, tile_hw
    th, tw = max(1, min(th, height)), max(1, min(tw, width))
    return [
        ((r, min(r + th, height)), (c, min(c + tw, width)))
        for r in range(0, height, th)
        for c in range(0, width, tw)
    ]


def tile_regions(plan: Any, tile_hw: tuple[int, int]) -> list[TileRegion]:
    """Every tile of the output at tile_hw, with its input region."""
    output_hw = tuple(plan.output_shape[-2:])
    return [tile_region(plan, rows, cols) for rows, cols in tile_grid(output_hw, tile_hw)]  # type: ignore[arg-type]


# --------------------------------------------------------------------------- memory and the choice


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
    from .pipeline import FLOAT_BYTES, working_elements

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
    from .pipeline import FLOAT_BYTES

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
    """The decoder's peak for one input: its own buffer and the copies images.py makes of it."""
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
