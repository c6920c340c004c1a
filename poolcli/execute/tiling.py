"""Tiled execution's geometry: which input region each output tile needs.

A pipeline of local stages (windowed pools, conv, convtranspose, upsample by 2ᵏ, pad, activations,
grayscale) computes any block
of its output from a bounded block of its input: the receptive field, walked back stage by stage
through each op's ``windows()``. ``tile_region`` does that walk for one output tile. Pure Python:
no pixels, no numpy, no torch; ``run.run_tiled`` executes what is planned here, and
``memory.choose_execution`` decides when to tile at all.

How borders come out identical: a stage runs on its tile with its own parameters (padding
included) and the outputs whose window touched the tile's *inner* edges, where the tile's
padding stands in for real pixels, are cropped away. A tile that starts at the image's edge sees
the real padding there; every inner tile starts at a multiple of the stage's stride, so its
windows, divisors and ceil_mode overhangs line up with the whole-image run's. ``maxpool:2`` to
an output row block [10, 20) reads input rows [20, 40)::

    >>> from poolcli.core.plan import Pipeline
    >>> plan = Pipeline.from_specs(["maxpool:2"]).plan((1, 1, 64, 64))
    >>> tile_region(plan, (10, 20), (0, 32)).input_rows
    (20, 40)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from ..core.ops import AxisWindow


def tiling_obstacle(plan: Any) -> str | None:
    """Why this plan must run whole-image (the first stage that needs the whole plane), or None."""
    for stage_plan in plan.stages:
        windows = stage_plan.stage.windows()
        if isinstance(windows, str):
            return f"stage {stage_plan.index} {windows}"
    if not plan.stages or len(plan.output_shape) != 4:
        return "the pipeline has no spatial stages"
    return None


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
    if window.enlarging:
        return _enlarging_input_range(window, length, start, first, end)
    lo = max(0, (first // window.stride) * window.stride)
    hi = min(length, end)
    need = min(window.min_length, length)
    if hi - lo < need:
        hi = min(length, lo + need)
    if hi - lo < need:
        lo = max(0, ((hi - need) // window.stride) * window.stride)
    return lo, hi


def _enlarging_input_range(window: AxisWindow, length: int, start: int, first: int, end: int) -> tuple[int, int]:
    """An enlarging stage (up = u): the inputs i with i·u in [first, end), and ``lo`` no later than
    ⌊start/u⌋, so that the tile's own output (which starts at lo·u) holds output ``start``.

    A 2x nearest upsample (output o reads input ⌊o/2⌋) to outputs [5, 9) reads inputs [2, 5)::

        >>> axis_input_range(AxisWindow(2, 1, 1, 0, up=2, enlarging=True), 10, 5, 9)
        (2, 5)
    """
    up = window.up
    lo = min(max(0, min(-(-first // up), start // up)), length - 1)  # output padding reads no input
    hi = min(length, -(-end // up))
    return lo, max(hi, min(length, lo + window.min_length))


def output_offset(window: AxisWindow, lo: int) -> int:
    """Where a stage's output on a tile that starts at input ``lo`` lies in its whole output:
    lo / stride for a shrinking stage (lo is a multiple of the stride), lo·u for an enlarging one.

    >>> output_offset(AxisWindow(2, 2, 0, 0), 6), output_offset(AxisWindow(3, 1, 1, 0, up=2, enlarging=True), 6)
    (3, 12)
    """
    return lo * window.up // window.stride


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
        offset = output_offset(window, lo)
        crops.append((start - offset, stop - offset))
        spans.append(hi - lo)
        start, stop = lo, hi
    return (start, stop), crops[::-1], spans[::-1]


def plan_windows(plan: Any) -> list[tuple[AxisWindow, AxisWindow]]:
    """Every stage's windows; the plan must have no tiling obstacle."""
    result = []
    for stage_plan in plan.stages:
        windows = stage_plan.stage.windows()
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
