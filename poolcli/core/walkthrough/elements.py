"""Walkers where each output element comes from one place: maxunpool (where a value returns),
pad (which cell a padded one copies), element-wise activations, luma, flatten, and linear.

    >>> from poolcli.core.spec import parse_stage
    >>> from poolcli.core.walkthrough import walk_stage, plain, Step
    >>> walk = walk_stage(parse_stage("relu"), [[[[-1.0, 2.0]]]])
    >>> walk.output, [plain(s.line) for s in walk.items() if isinstance(s, Step)]
    ([[[[0.0, 2.0]]]], ['Y[0, 0] = relu(-1) = max(0, -1) = 0', 'Y[0, 1] = relu(2) = max(0, 2) = 2'])
"""

from __future__ import annotations

from typing import Any, Iterator

from .. import textbook as tb
from ..textbook import PAD, REAL, Cell, fmt, operand
from .items import (
    MAX_PLANES, MUTED, VALUE, WINDOW_LIMIT, Canvas, Grid, Item, PlaneView, Segment, Select, Step, Text, Vector,
    WalkContext, element, elementwise, footer, label, muted, plane_end, plane_title, planes, planes_note, result, shown,
    terms,
)
from .items import SMALL_SIDE, SMALL_WINDOWS


def walk_unpool(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """Each value goes back to the position its maxpool took it from; zeros elsewhere."""
    from ...errors import UsageError

    N, C, H, W = plan.input_shape
    pool_index = getattr(plan, "pairs_with", None)
    if pool_index is None or pool_index not in context.indices:
        raise UsageError("maxunpool needs the indices of its maxpool", "explain the maxpool and the maxunpool in one pipeline")
    indices = context.indices.pop(pool_index)
    oh, ow = plan.output_shape[-2:]
    out = []
    for n in range(N):
        row = []
        for c in range(C):
            highest = max((v for r in indices[n][c] for v in r), default=-1)
            if highest >= oh * ow:
                raise stage.index_error(highest, (oh, ow))
            row.append(tb.unpool2d(x[n][c], indices[n][c], (oh, ow)))
        out.append(row)

    def body() -> Iterator[Item]:
        all_planes = planes(N, C)
        for n, c in all_planes[:MAX_PLANES]:
            X, flat = x[n][c], indices[n][c]
            title = plane_title((n, c), plan.input_shape)
            if title:
                yield title
            canvas = Canvas.of(X)
            yield Grid(label(f"input X ({H}×{W})"), canvas)
            yield Grid(label(f"indices from stage {pool_index} maxpool (flat positions in its input)"),
                       Canvas.of([[float(v) for v in r] for r in flat]))
            view = PlaneView(canvas, out[n][c])
            writer = {flat[i][j]: (i, j) for i in range(H) for j in range(W)}
            chosen = select.flat((oh, ow))
            if chosen is not None:
                if chosen < 0:
                    yield muted(f"({select.describe()} is outside this stage's {oh}×{ow} output)")
                else:
                    r, col = divmod(chosen, ow)
                    if chosen in writer:
                        i, j = writer[chosen]
                        line = (Segment(f"Y[{r}, {col}] = "), Segment(fmt(X[i][j]), VALUE), Segment(
                            f": X[{i}, {j}], the max of window ({i}, {j}) was at position {chosen} = ({r}, {col})"))
                        yield Step((r, col), X[i][j], line, cells=(Cell(i, j, REAL, X[i][j]),), plane=view)
                    else:
                        yield Step((r, col), 0.0, (Segment(f"Y[{r}, {col}] = "), Segment("0", VALUE),
                                                    Segment(": no window's max was here")), plane=view)
            else:
                count, rest = shown(H * W, (H, W), Select(every=select.every), (H, W))
                seen: dict[int, tuple[int, int]] = {}
                for k in count:
                    i, j = divmod(k, W)
                    index = flat[i][j]
                    r, col = divmod(index, ow)
                    line = [Segment(f"{fmt(X[i][j])} → position {index} = ({r}, {col}), the max of window ({i}, {j})")]
                    if index in seen:
                        line.append(Segment(f"  (overwrites window {seen[index]}'s value)", MUTED))
                    seen[index] = (i, j)
                    yield Step((r, col), X[i][j], tuple(line), cells=(Cell(i, j, REAL, X[i][j]),), plane=view)
                if rest:
                    yield muted(rest.replace("windows", "values"))
                yield muted(f"every other position of the {oh}×{ow} output is 0")
            placed = [divmod(v, ow) for r in flat for v in r]
            yield from footer(plan, out[n][c], placed)
        if len(all_planes) > MAX_PLANES:
            yield planes_note(len(all_planes))

    return out, body


def walk_pad(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """Explicit padding: the inner cells are X, each padded cell a constant or the cell it copies."""
    N, C, H, W = plan.input_shape
    left, right, top, bottom = stage.padding
    mode, value = stage.mode, float(stage.value)
    oh, ow = H + top + bottom, W + left + right
    out = [[tb.pad2d(x[n][c], stage.padding, mode, value) for c in range(C)] for n in range(N)]

    def body() -> Iterator[Item]:
        all_planes = planes(N, C)
        for n, c in all_planes[:MAX_PLANES]:
            X = x[n][c]
            padded = tb.Padded(X, (left, right, top, bottom), mode, value)
            title = plane_title((n, c), plan.input_shape)
            if title:
                yield title
            yield Grid(label(f"input X ({H}×{W})"), Canvas.of(X))
            canvas = Canvas(padded, (-top, H + bottom), (-left, W + right))
            view = PlaneView(Canvas.of(X), out[n][c])
            chosen = select.flat((oh, ow))
            if chosen is not None:
                listed = [chosen] if chosen >= 0 else []
                if chosen < 0:
                    yield muted(f"({select.describe()} is outside this stage's {oh}×{ow} output)")
            else:
                listed = [k for k in range(oh * ow) if padded.kind(k // ow - top, k % ow - left) == PAD]
                yield muted(f"the {H * W} inner cells are X itself; the {len(listed)} padded cells:")
            rest = None
            small = H <= SMALL_SIDE and W <= SMALL_SIDE and len(listed) <= SMALL_WINDOWS
            if chosen is None and len(listed) > WINDOW_LIMIT and not (small or select.every):
                rest = f"... {len(listed) - WINDOW_LIMIT} more padded cells (use --step N or --only i,j to see one)"
                listed = listed[:WINDOW_LIMIT]
            for k in listed:
                i, j = divmod(k, ow)
                cell = padded.cell(i - top, j - left)
                line: list[Any] = [Segment(f"Y[{i}, {j}] = ")]
                if cell.kind == REAL:
                    line += [Segment(f"X[{cell.row}, {cell.col}] = "), Segment(fmt(cell.value), VALUE)]
                    source = cell
                elif mode == "constant":
                    line += [Segment(fmt(cell.value), VALUE), Segment(f"  (constant padding, value={fmt(value)})", MUTED)]
                    source = None
                else:
                    sr, sc = cell.source  # type: ignore[misc]
                    line += [Segment(f"X[{sr}, {sc}] = "), Segment(fmt(cell.value), VALUE),
                             Segment(f"  ({mode}: row {cell.row} → {sr}, col {cell.col} → {sc})", MUTED)]
                    source = Cell(sr, sc, REAL, cell.value)
                yield Step((i, j), cell.value, tuple(line), cells=(source,) if source else (), plane=view)
            if rest:
                yield muted(rest)
            yield Grid(label(f"output Y ({oh}×{ow}), padding dim, rows and columns numbered as in X"), canvas,
                       cut_title=f"output Y ({oh}×{ow}, top-left {{limit}} shown)")
            yield from footer(plan)
        if len(all_planes) > MAX_PLANES:
            yield planes_note(len(all_planes))

    return out, body


def _definition(stage: Any, x: float, y: float) -> tuple:
    text = stage.definition(x).format(x=fmt(x), x_operand=operand(x), minus_x=operand(-x),
                                      slope=fmt(getattr(stage, "negative_slope", 0.0)))
    return (Segment(text), *result(y))


def walk_elementwise(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """``stage.element`` on every value; ``stage.definition`` says how each is computed."""
    out = elementwise(lambda v: stage.element(float(v)), x)
    shape = plan.input_shape

    def body() -> Iterator[Item]:
        if len(shape) != 4:
            yield muted(f"element by element on {shape[-1]} features")
            for k in range(min(shape[-1], WINDOW_LIMIT)):
                yield Step((k,), out[0][k], (element((k,)), *_definition(stage, x[0][k], out[0][k])))
            if shape[-1] > WINDOW_LIMIT:
                yield muted(f"... {shape[-1] - WINDOW_LIMIT} more values")
            return
        N, C, H, W = shape
        all_planes = planes(N, C)
        for n, c in all_planes[:MAX_PLANES]:
            title = plane_title((n, c), shape)
            if title:
                yield title
            canvas = Canvas.of(x[n][c])
            yield Grid(label(f"input X ({H}×{W})"), canvas)
            chosen, rest = shown(H * W, (H, W), select, (H, W), "values")
            view = PlaneView(canvas, out[n][c])
            for k in chosen:
                i, j = divmod(k, W)
                v = x[n][c][i][j]
                yield Step((i, j), out[n][c][i][j], (element((i, j)), *_definition(stage, v, out[n][c][i][j])),
                           cells=(Cell(i, j, REAL, v),), plane=view)
            yield from plane_end(rest, plan, out[n][c])
        if len(all_planes) > MAX_PLANES:
            yield planes_note(len(all_planes))

    return out, body


def walk_luma(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """C → 1: channel 0 of L and LA, ``stage.pixel`` of RGB(A) (Pillow's fixed point on integers)."""
    N, C, H, W = plan.input_shape
    integer = context.integer
    if C <= 2:
        out = [[[list(row) for row in x[n][0]]] for n in range(N)]
    else:
        out = [[tb.luma(x[n][0], x[n][1], x[n][2], integer)] for n in range(N)]

    def body() -> Iterator[Item]:
        for n in range(min(N, MAX_PLANES)):
            if N > 1:
                yield Text((Segment(f"sample {n}", "heading"),))
            if C <= 2:
                yield muted("1 or 2 channels (L, LA): Y is channel 0, alpha dropped")
            else:
                alpha = " (alpha dropped)" if C == 4 else ""
                if integer:
                    fr, fg, fb = stage.fixed_point_weights
                    half = 1 << (stage.fixed_point_shift - 1)
                    yield muted(f"ITU-R 601-2 luma in Pillow's fixed point (integer pixels): "
                                f"Y = ({fr}·R + {fg}·G + {fb}·B + {half}) >> {stage.fixed_point_shift}{alpha}")
                else:
                    wr, wg, wb = stage.weights
                    yield muted(f"ITU-R 601-2 luma, as Pillow's mode L: Y = {wr}·R + {wg}·G + {wb}·B{alpha}")
                for ch, name in enumerate("RGB"):
                    yield Grid(label(f"{name} = channel {ch} ({H}×{W})"), Canvas.of(x[n][ch]))
                chosen, rest = shown(H * W, (H, W), select, (H, W), "pixels")
                view = PlaneView(Canvas.of(x[n][0]), out[n][0], name="R = channel 0")
                for k in chosen:
                    i, j = divmod(k, W)
                    rgb = [x[n][ch][i][j] for ch in range(3)]
                    if integer:
                        products = " + ".join(f"{w}·{operand(v)}" for w, v in zip(stage.fixed_point_weights, rgb))
                        text = f"Y[{i}, {j}] = ({products} + {half}) >> {stage.fixed_point_shift} = "
                    else:
                        products = " + ".join(f"{w}·{operand(v)}" for w, v in zip(stage.weights, rgb))
                        text = f"Y[{i}, {j}] = {products} = "
                    value = out[n][0][i][j]
                    yield Step((i, j), value, (Segment(text), Segment(fmt(value), VALUE)),
                               cells=(Cell(i, j, REAL, rgb[0]),), plane=view)
                if rest:
                    yield muted(rest)
            yield from footer(plan, out[n][0])

    return out, body


def _unravel(k: int, shape: tuple[int, ...]) -> list[int]:
    where = []
    for size in reversed(shape):
        k, r = divmod(k, size)
        where.append(r)
    return where[::-1]


def _flat(x: Any) -> list[float]:
    return [v for item in x for v in _flat(item)] if isinstance(x, list) else [x]


def walk_flatten(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """N×C×H×W → N×(C·H·W), row-major, channel first."""
    out = [_flat(sample) for sample in x]
    shape = tuple(plan.input_shape[1:])
    features = len(out[0])

    def body() -> Iterator[Item]:
        yield muted("Y[k] = X[c, h, w] with k = (c·H + h)·W + w (row-major, channel first)")
        picks = [select.step] if select.step is not None else list(range(min(features, WINDOW_LIMIT)))
        for k in picks:
            if k >= features:
                yield muted(f"({select.describe()} is outside this stage's {features} features)")
                continue
            where = ", ".join(str(v) for v in _unravel(k, shape))
            yield Step((k,), out[0][k], (Segment(f"Y[{k}] = X[{where}] = "), Segment(fmt(out[0][k]), VALUE)))
        if select.step is None and features > WINDOW_LIMIT:
            yield muted(f"... {features - WINDOW_LIMIT} more features")
        yield Vector("output Y", tuple(out[0]))
        yield from footer(plan)

    return out, body


def walk_linear(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """Y[j] = Σ_i X[i]·W[j, i] + b[j], with nn.Linear's random weights from the stage seed."""
    if context.weights is None:
        raise ValueError("a linear walkthrough needs a weight source (WalkContext.weights)")
    N, F = plan.input_shape
    seed = context.stage_seed(stage)
    weight, bias = context.weights.linear(stage, F, seed)
    out = [[sum(weight[j][i] * x[n][i] for i in range(F)) + (float(bias[j]) if bias is not None else 0.0)
            for j in range(stage.out_features)] for n in range(N)]

    def body() -> Iterator[Item]:
        yield muted(f"random weights (nn.Linear's init) from seed {seed}: Y[j] = Σ_i X[i]·W[j, i] + b[j]")
        yield Vector("input X", tuple(x[0]))
        picks = [select.step] if select.step is not None else list(range(min(stage.out_features, WINDOW_LIMIT)))
        for j in picks:
            if j >= stage.out_features:
                yield muted(f"({select.describe()} is outside this stage's {stage.out_features} features)")
                continue
            line: list[Any] = [Segment(f"Y[{j}] = "),
                               terms([Segment(f"{operand(x[0][i])}×{operand(weight[j][i])}") for i in range(F)], " + ")]
            if bias is not None:
                line.append(Segment(f" + {operand(float(bias[j]))}"))
            line.extend(result(out[0][j]))
            yield Step((j,), out[0][j], tuple(line))
        if select.step is None and stage.out_features > WINDOW_LIMIT:
            yield muted(f"... {stage.out_features - WINDOW_LIMIT} more features")
        yield Vector("output Y", tuple(out[0]))
        yield from footer(plan)

    return out, body
