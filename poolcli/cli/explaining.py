"""``poolcli explain``'s body: read the input (``--matrix``, an array or an image, ``--crop``),
choose the elements (``--step``/``--only``), refuse what cannot be walked through before printing
anything, then print each stage's walkthrough (``core.walkthrough``, drawn by ``render.explain``).

    >>> parse_only("0,1"), parse_only("2x3")
    ((0, 1), (2, 3))
"""

from __future__ import annotations

import math
import os
from typing import Any

from ..core.arithmetic import format_shape
from ..core.textbook import fmt
from ..core.walkthrough import Select, WalkContext, refusal, walk
from ..errors import OutputError, UsageError

MAX_ELEMENTS = 65536  # values in any tensor of the walkthrough (use --crop for images)
INTEGER_DTYPES = ("uint8", "uint16", "int32")  # the kernels' luma takes Pillow's fixed point on these


class KernelWeights:
    """The weight source of the walkthrough: ``kernels.weights`` (the numbers every engine uses)
    as nested lists of floats."""

    def conv(self, stage: Any, channels: int, seed: int) -> tuple[list, list | None, int]:
        from ..kernels.weights import conv_weights

        weight, bias, groups = conv_weights(stage, channels, seed)
        return weight.astype("float64").tolist(), (None if bias is None else bias.astype("float64").tolist()), groups

    def linear(self, stage: Any, features: int, seed: int) -> tuple[list, list | None]:
        from ..kernels.weights import linear_weights

        weight, bias = linear_weights(stage, features, seed)
        return weight.astype("float64").tolist(), (None if bias is None else bias.astype("float64").tolist())


def load_file(path: str) -> tuple[Any, str]:
    """The array of a file (NCHW) and a line saying what its values are."""
    import numpy as np

    from ..io.reading import load_image

    image = load_image(path)
    if image.is_array:
        return np.asarray(image.array), "array, values as stored"
    return np.asarray(image.array), f"image, values as stored (0..{fmt(image.maxval)}, as --scale raw)"


def nchw(array: Any, what: str) -> Any:
    if array.ndim == 2:
        return array[None, None]
    if array.ndim == 3:
        return array[None]
    if array.ndim == 4:
        return array
    raise UsageError(f"{what} has {array.ndim} dimensions", "give a 2-D (H×W), 3-D (C×H×W) or 4-D (N×C×H×W) array")


def crop_array(array: Any, crop: str) -> Any:
    try:
        x, y, w, h = (int(v) for v in crop.replace(" ", "").split(","))
    except ValueError:
        raise UsageError(f"--crop {crop!r} is not X,Y,W,H", "for example --crop 10,20,8,8") from None
    H, W = array.shape[-2:]
    if min(x, y) < 0 or min(w, h) < 1 or x + w > W or y + h > H:
        raise UsageError(
            f"--crop {crop} does not fit the {W}×{H} (W×H) input",
            f"use X + W ≤ {W} and Y + H ≤ {H}, with W and H ≥ 1",
        )
    return array[..., y:y + h, x:x + w]


def parse_only(only: str) -> tuple[int, int]:
    try:
        i, j = (int(v) for v in only.replace(" ", "").replace("x", ",").split(","))
    except ValueError:
        raise UsageError(f"--only {only!r} is not i,j", "for example --only 0,1 (row, column of the output)") from None
    if min(i, j) < 0:
        raise UsageError(f"--only {only}: negative position", "rows and columns count from 0")
    return i, j


def read_stages(specs: list[str] | None, pipeline_file: str | None) -> list[Any]:
    from ..io.specs import read_stages as read

    stages = read(specs, pipeline_file)
    if not stages:
        raise UsageError("no stages to explain", "give -S SPEC (repeatable) or --pipeline FILE")
    return stages


def check_explainable(plan: Any, select: Select) -> None:
    """Refuse, before printing anything, what cannot be walked through."""
    for stage_plan in plan.stages:
        refused = refusal(stage_plan)
        if refused:
            raise UsageError(*refused)
    sizes = [plan.input_shape] + [s.output_shape for s in plan.stages]
    biggest = max(sizes, key=lambda s: math.prod(s))
    if math.prod(biggest) > MAX_ELEMENTS:
        raise UsageError(
            f"a {format_shape(biggest)} tensor is too big to explain window by window (at most {MAX_ELEMENTS} values)",
            "use --crop X,Y,W,H to explain a region, or poolcli shape for the sizes",
        )
    if select.active:
        fits = []
        for s in plan.stages:
            shape = s.output_shape
            if len(shape) == 4:
                fits.append(select.flat(tuple(shape[-2:])) != -1)  # type: ignore[arg-type]
            else:
                fits.append(select.step is not None and select.step < shape[-1])
        if not any(fits):
            last = plan.stages[-1].output_shape
            raise UsageError(
                f"{select.describe()} is outside every stage's output (the last is {format_shape(last)})",
                "output elements count from 0, row-major: --step N or --only row,col",
            )


def explain_input(matrix: str | None, path: str | None, crop: str | None) -> tuple[Any, str, bool]:
    """The input as an N×C×H×W array, the line that introduces it, and whether it holds an image's
    integers."""
    import numpy as np

    if matrix is not None:
        from ..io.reading import load_matrix

        array, source, values = load_matrix(matrix), "--matrix", "values as given"
    else:
        array, values = load_file(path)  # type: ignore[arg-type]
        source = path
    integer = str(array.dtype) in INTEGER_DTYPES
    x = nchw(np.asarray(array, dtype=np.float64), source)  # type: ignore[arg-type]
    if crop is not None:
        x = np.ascontiguousarray(crop_array(x, crop))
    crop_note = f", crop {crop}" if crop else ""
    return x, f"{source}{crop_note}: {format_shape(x.shape)} ({values})", integer


def explain_command(
    matrix: str | None, path: str | None, specs: list[str] | None, pipeline_file: str | None,
    crop: str | None, step: int | None, only: str | None, env: Any, *, animate: str | None = None,
    fps: float | None = None,
) -> int:
    """``poolcli explain``: each stage's walkthrough in turn on a matrix, an array or an image
    region, the output of one feeding the next; with ``animate`` also the moving picture of every
    window (``render.animate``). Returns the exit status (0); raises UsageError (or
    SpecError/PlanError/InputError) for what cannot be explained, before printing anything."""
    from rich.text import Text

    from ..core.plan import Pipeline
    from ..render.explain import render

    if (matrix is None) == (path is None):
        raise UsageError(
            "explain needs exactly one input: --matrix or an ARRAY/IMAGE file" + (", not both" if matrix is not None else ""),
            "for example poolcli explain --matrix '0 1 2; 3 4 5; 6 7 8' -S maxpool:2,s=1",
        )
    if step is not None and only is not None:
        raise UsageError("--step and --only both given", "use one: --step N (row-major) or --only row,col")
    if step is not None and step < 0:
        raise UsageError(f"--step {step} is negative", "output elements count from 0")
    frame_rate = check_animation(animate, fps)
    select = Select(step=step, only=parse_only(only) if only is not None else None)
    stages = read_stages(specs, pipeline_file)
    x, introduction, integer = explain_input(matrix, path, crop)
    plan = Pipeline(stages).plan(x.shape)
    check_explainable(plan, select)
    if animate is not None:
        check_animatable(plan)
    env.report(Text(introduction, style="bold"))
    values = x.tolist()
    context = WalkContext(weights=KernelWeights(), integer=integer)
    for stage_walk in walk(plan, values, context=context, select=select):
        for part in render(stage_walk):
            env.report(part)
    if animate is not None:
        from ..render.animate import animate as draw_animation

        def every_window() -> Any:
            return walk(plan, values, context=WalkContext(weights=KernelWeights(), integer=integer),
                        select=Select(every=True))

        try:
            frames = draw_animation(every_window, animate, frame_rate)
        except OSError as exc:
            raise OutputError(f"{animate}: {exc.strerror or exc}", "check that its folder is writable and has room") from None
        env.info(f"wrote {animate} ({frames} frames)")
    return 0


def check_animation(path: str | None, fps: float | None) -> float:
    """The frame rate of ``--animate``; a UsageError for --fps alone, out of (0, 50], or a file
    type that is not an animation."""
    from ..render.animate import DEFAULT_FPS, FORMATS, MAX_FPS

    if path is None:
        if fps is not None:
            raise UsageError("--fps without --animate", "add --animate FILE.gif (or .png) to draw the walkthrough")
        return DEFAULT_FPS
    if fps is not None and not 0 < fps <= MAX_FPS:
        raise UsageError(f"--fps {fmt(fps)} is outside (0, {fmt(MAX_FPS)}]", "for example --fps 2 (window frames per second)")
    extension = os.path.splitext(path)[1].lower()
    if extension not in FORMATS:
        raise UsageError(f"--animate {path}: {extension or 'no extension'} is not an animation format",
                         "use .gif, or .png for an animated PNG")
    if os.path.isdir(path):
        raise UsageError(f"--animate {path} is a folder", "name a .gif or .png file to write")
    folder = os.path.dirname(path) or "."
    if not os.path.isdir(folder):
        raise UsageError(f"--animate {path}: there is no folder {folder}", "create it first, or write the file elsewhere")
    return DEFAULT_FPS if fps is None else fps


def check_animatable(plan: Any) -> None:
    """Refuse, before any output, stages that make no readable picture: above 32×32, or without a grid."""
    from ..render.animate import MAX_SIDE

    for stage_plan in plan.stages:
        name = f"stage {stage_plan.index} {stage_plan.stage.label()}"
        shapes = (stage_plan.input_shape, stage_plan.output_shape)
        if any(len(shape) != 4 for shape in shapes):
            raise UsageError(f"--animate: {name} has no grid to draw ({format_shape(shapes[1])})",
                             "animate the stages before it; the text walkthrough explains it")
        if any(max(shape[-2:]) > MAX_SIDE for shape in shapes):
            raise UsageError(
                f"--animate: {name} is {format_shape(shapes[0])} → {format_shape(shapes[1])}, too big to animate "
                f"(at most {MAX_SIDE}×{MAX_SIDE} per stage)",
                "use --crop X,Y,W,H to animate a region",
            )
