"""Walkers for sliding windows: pools (a ``reduction`` over each window) and conv (Σ X·K).

The seeds' corr2d, with the weights given as the caller's weight source would give them::

    >>> from poolcli.core.spec import parse_stage
    >>> from poolcli.core.walkthrough import WalkContext, walk_stage
    >>> class Given:
    ...     def conv(self, stage, channels, seed):
    ...         return [[[[0.0, 1.0], [2.0, 3.0]]]], None, 1
    >>> X = [[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]]]
    >>> walk_stage(parse_stage("conv:weight=0 1; 2 3"), X, context=WalkContext(weights=Given())).output
    [[[[19.0, 25.0], [37.0, 43.0]]]]
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

from .. import textbook as tb
from ..textbook import OUTSIDE, PAD, Window, fmt, operand
from .items import (
    MAX_PLANES, MAX_TERMS, PADDED, Canvas, Grid, Item, Line, PlaneView, Segment, Select, Step, WalkContext, count_of,
    element, label, muted, nested_depth, nth, plane_end, plane_title, planes, planes_note, result, shown, terms,
)


def _pad_symbol(reduction: str) -> str:
    return "-∞" if reduction == "max" else "+∞" if reduction == "min" else "0"


def pool_expression(window: Window, reduction: str, value: float, *, count_include_pad: bool = True,
                    divisor_override: int | None = None, norm_type: float | None = None,
                    area: int = 1) -> tuple[Line, list[str]]:
    """``max(0, 1, 3, 4) = 4``, ``(0 + 1 + 3 + 4)/4 = 2``, ``(0^2 + 1^2)^(1/2) = 1``, … and notes."""
    real = window.real()
    pads = window.of_kind(PAD)
    outside = window.of_kind(OUTSIDE)
    notes: list[str] = []
    line: list[Any]
    if reduction in ("max", "min"):
        line = [Segment(f"{reduction}("), terms([Segment(fmt(c.value)) for c in real], ", "), Segment(")")]
        if pads:
            notes.append(f"{count_of(len(pads), 'padded cell')} ({_pad_symbol(reduction)}) never win{'s' * (len(pads) == 1)}")
    elif reduction == "avg":
        with_pads = count_include_pad and not divisor_override
        counted = [Segment(fmt(c.value), PADDED if c.kind == PAD else None)
                   for c in window.cells if c.kind == tb.REAL or (c.kind == PAD and with_pads)]
        divisor = tb.avg_divisor(window, count_include_pad, divisor_override)
        line = [Segment("(")] if len(counted) > 1 else []
        line.append(terms(counted, " + ") if counted else Segment("0"))
        line.append(Segment(f")/{divisor}" if len(counted) > 1 else f"/{divisor}"))
        if divisor_override:
            number = len(real) + (len(pads) if count_include_pad else 0)
            notes.append(f"divisor_override={divisor_override} replaces the count {number}")
        elif pads and count_include_pad:
            notes.append(f"{count_of(len(pads), 'padded zero')} counted (count_include_pad=true): /{divisor}")
        elif pads:
            notes.append(f"{count_of(len(pads), 'padded cell')} not counted (count_include_pad=false): /{divisor}")
    elif reduction == "lp":
        p = float(norm_type)  # type: ignore[arg-type]
        if math.isinf(p):
            line = [Segment("max("), terms([Segment(f"|{fmt(c.value)}|") for c in real], ", "), Segment(")")]
        else:
            exponent = fmt(p)
            inner = terms([Segment(f"{operand(c.value)}^{exponent}") for c in real], " + ")
            if len(real) != area:
                line = [Segment("(("), inner, Segment(f")·{area}/{len(real)})^(1/{exponent})")]
                notes.append(f"torch's lp_pool2d averages the {count_of(len(real), 'cell')} inside and scales by "
                             f"{area}: ·{area}/{len(real)}")
            else:
                line = [Segment("("), inner, Segment(f")^(1/{exponent})")]
    elif reduction == "median":
        line = [Segment("median("), terms([Segment(fmt(c.value)) for c in real], ", "), Segment(")")]
        ordered = sorted(c.value for c in real if not math.isnan(c.value))
        if len(ordered) > 1:
            which = "the middle value" if len(ordered) % 2 else "the lower of the two middle values"
            listed = " ≤ ".join(fmt(v) for v in ordered) if len(ordered) <= MAX_TERMS else f"{len(ordered)} values"
            notes.append(f"sorted {listed}: {which}")
    else:
        raise ValueError(f"unknown reduction {reduction!r}")
    line.extend(result(value))
    if outside:
        notes.append(f"{count_of(len(outside), 'cell')} beyond the padded input (ceil_mode overhang): not read")
    if window.note:
        notes.insert(0, window.note)
    return tuple(line), notes


def _winner(window: Window, reduction: str, width: int) -> Any:
    """The cell a max or min took its value from (None for other reductions, or none real)."""
    if reduction not in ("max", "min"):
        return None
    _, index = tb.extreme(window, width, negate=reduction == "min")
    return next((c for c in window.real() if c.row * width + c.col == index), None)


def _pool_geometry(stage: Any, plan: Any) -> tuple[Any, dict[str, Any]]:
    """A factory of the stage's windows on one plane, and the reduction's options."""
    kind, reduction = stage.walkthrough, stage.reduction
    ho, wo = plan.output_shape[-2:]
    if kind == "adaptive":
        return (lambda X: tb.AdaptiveWindows(X, (ho, wo))), {}
    if kind == "global":
        return tb.GlobalWindow, {}
    kernel = stage.kernel_size
    stride = getattr(stage, "stride", None) or kernel
    padding = getattr(stage, "padding", (0, 0)) or (0, 0)
    dilation = getattr(stage, "dilation", (1, 1)) or (1, 1)
    ceil_mode = bool(getattr(stage, "ceil_mode", False))
    options = {
        "count_include_pad": bool(getattr(stage, "count_include_pad", True)),
        "divisor_override": getattr(stage, "divisor_override", None),
        "norm_type": getattr(stage, "norm_type", None),
        "area": kernel[0] * kernel[1],
    }
    pad_value = tb.pad_value_for(reduction)
    return (lambda X: tb.Sliding(X, kernel, stride, padding, dilation, ceil_mode, pad_value=pad_value)), options


def walk_pool(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """Sliding (``window``), ``adaptive`` or ``global`` windows, each reduced by ``stage.reduction``."""
    reduction = stage.reduction
    N, C, H, W = plan.input_shape
    ho, wo = plan.output_shape[-2:]
    make, options = _pool_geometry(stage, plan)
    keeps_indices = reduction == "max" and stage.walkthrough == "window"
    out = [[tb.zeros(ho, wo) for _ in range(C)] for _ in range(N)]
    indices = [[[[0] * wo for _ in range(ho)] for _ in range(C)] for _ in range(N)]
    for n, c in planes(N, C):
        plane, index_plane = out[n][c], indices[n][c]
        for window in make(x[n][c]):
            i, j = window.out
            if reduction == "max":
                plane[i][j], index_plane[i][j] = tb.extreme(window, W)
            else:
                plane[i][j] = tb.reduce(window, reduction, width=W, **options)
    if keeps_indices:
        context.indices[context.index] = indices

    def body() -> Iterator[Item]:
        pad_label = _pad_symbol(reduction)
        all_planes = planes(N, C)
        for n, c in all_planes[:MAX_PLANES]:
            grid = make(x[n][c])
            canvas = Canvas(grid.plane, grid.rows(), grid.cols())
            title = plane_title((n, c), plan.input_shape)
            if title:
                yield title
            padded = any(getattr(grid, "padding", (0, 0, 0, 0)))
            yield Grid(label(f"input X ({H}×{W})" + (f", padding shown as {pad_label}" if padded else "")), canvas)
            dilation = getattr(stage, "dilation", (1, 1))
            if stage.walkthrough == "window" and dilation != (1, 1):
                dh, dw = dilation
                yield muted(f"dilation {dh}×{dw}: a window reads every {nth(dh)} row and every {nth(dw)} column")
            chosen, rest = shown(ho * wo, (H, W), select, (ho, wo))
            view = PlaneView(canvas, out[n][c], reduction=reduction)
            for k in chosen:
                window = grid.window(*divmod(k, wo))
                value = out[n][c][window.out[0]][window.out[1]]
                line, notes = pool_expression(window, reduction, value, **options)
                yield Step(window.out, value, (element(window.out), *line), tuple(notes), window.cells, canvas, view,
                           _winner(window, reduction, W))
            yield from plane_end(rest, plan, out[n][c])
        if len(all_planes) > MAX_PLANES:
            yield planes_note(len(all_planes))

    return out, body


def conv_expression(groups: Sequence[tuple[Window, list]], bias: float | None, value: float) -> tuple[Line, list[str]]:
    """``0×0 + 1×1 + 3×2 + 4×3 = 19``: input × weight per cell, one parenthesis per input channel."""
    line: list[Any] = []
    notes: list[str] = []
    several = len(groups) > 1
    for g, (window, K) in enumerate(groups):
        if g:
            line.append(Segment(" + "))
        if several:
            line.append(Segment("("))
        line.append(terms([Segment(f"{operand(c.value)}×{operand(K[c.tap[0]][c.tap[1]])}", PADDED if c.kind == PAD else None)
                           for c in window.cells], " + "))
        if several:
            line.append(Segment(")"))
    if bias is not None:
        line.append(Segment(f" + {operand(bias)}"))
        notes.append(f"+ {fmt(bias)} is the bias")
    line.extend(result(value))
    pads = [c for window, _ in groups[:1] for c in window.of_kind(PAD)]
    if pads:
        sources = [c for c in pads if c.source is not None]
        if sources:
            listed = ", ".join(f"({c.row}, {c.col})←({c.source[0]}, {c.source[1]})" for c in sources[:4])  # type: ignore[index]
            notes.append(f"padded cells copy real ones: {listed}{' …' if len(sources) > 4 else ''}")
        else:
            notes.append(f"{count_of(len(pads), 'padded cell')} hold{'s' * (len(pads) == 1)} {fmt(pads[0].value)}")
    if several:
        notes.append(f"one parenthesis per input channel ({len(groups)})")
    return tuple(line), notes


def walk_conv(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """Cross-correlation: each output channel sums its group's input channels times their kernels."""
    if context.weights is None:
        raise ValueError("a conv walkthrough needs a weight source (WalkContext.weights)")
    N, C, H, W = plan.input_shape
    seed = context.stage_seed(stage)
    weight, bias, groups = context.weights.conv(stage, C, seed)
    O, I = len(weight), len(weight[0])
    kh, kw = len(weight[0][0]), len(weight[0][0][0])
    per_group = O // groups
    padding = stage.padding_lrtb()
    left, right, top, bottom = padding
    mode = stage.padding_mode
    ho, wo = plan.output_shape[-2:]

    def sliding(X: list) -> tb.Sliding:
        return tb.Sliding(X, (kh, kw), stage.stride, padding, stage.dilation, padding_mode=mode)

    out = [[tb.zeros(ho, wo) for _ in range(O)] for _ in range(N)]
    for n, o in planes(N, O):
        g = o // per_group
        kernels = [weight[o][i] for i in range(I)]
        grids = [sliding(x[n][g * I + i]) for i in range(I)]
        b = float(bias[o]) if bias is not None else None
        for i in range(ho):
            for j in range(wo):
                total = sum(cell.value * K[cell.tap[0]][cell.tap[1]]
                            for grid, K in zip(grids, kernels) for cell in grid.window(i, j).cells)
                out[n][o][i][j] = total + (b or 0.0)

    def body() -> Iterator[Item]:
        if stage.kernel is None:
            yield muted(f"random weights (nn.Conv2d's init) from seed {seed}")
        broadcast = stage.kernel is not None and nested_depth(stage.kernel) == 2
        if broadcast:
            yield Grid(label(f"kernel K ({kh}×{kw})" + (f", on each of the {C} channels" if C > 1 else "")),
                       Canvas.of(weight[0][0]))
        all_planes = planes(N, O)
        for n, o in all_planes[:MAX_PLANES]:
            g = o // per_group
            inputs = [g * I + i for i in range(I)]
            kernels = [weight[o][i] for i in range(I)]
            b = float(bias[o]) if bias is not None else None
            title = plane_title((n, o), (N, O), "output channel")
            if title:
                yield title
            grids = [sliding(x[n][ci]) for ci in inputs]
            canvas = Canvas(grids[0].plane, (-top, H + bottom), (-left, W + right))
            name = f"input X (channel {inputs[0]}, {H}×{W})" if C > 1 else f"input X ({H}×{W})"
            if any(padding):
                name += f", {mode} padding" + (" (dim)" if mode != "zeros" else " shown as 0")
            yield Grid(label(name), canvas)
            if not broadcast:
                for i, K in enumerate(kernels[:MAX_PLANES]):
                    yield Grid(label(f"kernel W[{o}, {i}] ({kh}×{kw}) for input channel {inputs[i]}"), Canvas.of(K))
                if len(kernels) > MAX_PLANES:
                    yield planes_note(len(kernels), "kernels")
            if len(inputs) > 1:
                yield muted(f"the same window is read on input channels {', '.join(map(str, inputs))}")
            chosen, rest = shown(ho * wo, (H, W), select, (ho, wo))
            view = PlaneView(canvas, out[n][o], kernel=kernels[0])
            for k in chosen:
                i, j = divmod(k, wo)
                windows = [grid.window(i, j) for grid in grids]
                value = out[n][o][i][j]
                line, notes = conv_expression(list(zip(windows, kernels)), b, value)
                yield Step((i, j), value, (element((i, j)), *line), tuple(notes), windows[0].cells, canvas, view)
            yield from plane_end(rest, plan, out[n][o])
        if len(all_planes) > MAX_PLANES:
            yield planes_note(len(all_planes))

    return out, body

