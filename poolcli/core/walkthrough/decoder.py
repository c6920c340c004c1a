"""Walkers for the enlarging stages, with their textbook loops: transposed convolution (each input
value times the kernel, added into the output at stride steps) and upsampling (each output from
its source cells and weights).

d2l's ``trans_conv`` of X = [[0, 1], [2, 3]] with K = [[0, 1], [2, 3]]::

    >>> trans_conv([[0.0, 1.0], [2.0, 3.0]], [[0.0, 1.0], [2.0, 3.0]])
    [[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]]

and 2x bilinear upsampling of [0, 1] reads, for its second output, 0.75 of cell 0 and 0.25 of cell 1::

    >>> axis_taps(2, 4, "bilinear", False, 2.0)[1]
    [(0, 0.75), (1, 0.25)]
"""

from __future__ import annotations

import math
import struct
from typing import Any, Iterator, Sequence

from ..arithmetic import source_scale
from ..textbook import REAL, Cell, fmt, operand, zeros
from .items import (
    MAX_PLANES, Canvas, Grid, Item, PlaneView, Segment, Select, Step, Text, WalkContext, element, footer, label, muted, nth,
    plane_title, planes, planes_note, result, shown, terms,
)

CUBIC_A = -0.75  # Keys' cubic convolution coefficient, as torch's bicubic


# ------------------------------------------------------------------------- transposed convolution


def landing(i: int, tap: int, stride: int, padding: int, dilation: int) -> int:
    """Where input i's value times kernel tap lands in the (cropped) output: i·s + tap·d − p."""
    return i * stride + tap * dilation - padding


def trans_conv(X: Sequence[Sequence[float]], K: Sequence[Sequence[float]], stride: Any = (1, 1), padding: Any = (0, 0),
               output_padding: Any = (0, 0), dilation: Any = (1, 1)) -> list:
    """d2l's ``trans_conv``, with torch's stride, padding, output_padding and dilation: for every
    input cell, Y[i·s + a·d − p, j·s + b·d − p] += X[i, j] · K[a, b] where that lies in Y."""
    (sh, sw), (ph, pw), (oh, ow), (dh, dw) = stride, padding, output_padding, dilation
    h, w, kh, kw = len(X), len(X[0]), len(K), len(K[0])
    ho = (h - 1) * sh - 2 * ph + dh * (kh - 1) + oh + 1
    wo = (w - 1) * sw - 2 * pw + dw * (kw - 1) + ow + 1
    Y = zeros(ho, wo)
    for i in range(h):
        for j in range(w):
            for a in range(kh):
                r = landing(i, a, sh, ph, dh)
                for b in range(kw):
                    c = landing(j, b, sw, pw, dw)
                    if 0 <= r < ho and 0 <= c < wo:
                        Y[r][c] += X[i][j] * K[a][b]
    return Y


def _sources(r: int, n: int, k: int, s: int, p: int, d: int) -> list[tuple[int, int]]:
    """The (input, tap) pairs along one axis whose products land on output r."""
    pairs = [(i, a) for a in range(k) for i in [(r + p - a * d) // s] if (r + p - a * d) % s == 0 and 0 <= i < n]
    return sorted(pairs)


def walk_conv_transpose(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """Each input value times the kernel, scattered into the output at stride steps; then each
    output cell as the sum of what landed on it; then the same as zeros inserted and a conv."""
    if context.weights is None:
        raise ValueError("a transposed conv walkthrough needs a weight source (WalkContext.weights)")
    N, C, H, W = plan.input_shape
    seed = context.stage_seed(stage)
    weight, bias, groups = context.weights.conv(stage, C, seed)  # I × O/groups × kh × kw
    per_group_in, per_group_out = C // groups, len(weight[0])
    O = per_group_out * groups
    kh, kw = len(weight[0][0]), len(weight[0][0][0])
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stage.stride, stage.padding, stage.output_padding, stage.dilation
    ho, wo = plan.output_shape[-2:]

    def inputs_of(o: int) -> list[int]:
        g = o // per_group_out
        return [g * per_group_in + c for c in range(per_group_in)]

    def kernel(c: int, o: int) -> list:
        return weight[c][o % per_group_out]

    out = [[zeros(ho, wo) for _ in range(O)] for _ in range(N)]
    for n, o in planes(N, O):
        for c in inputs_of(o):
            contribution = trans_conv(x[n][c], kernel(c, o), stage.stride, stage.padding, stage.output_padding,
                                      stage.dilation)
            for r in range(ho):
                for q in range(wo):
                    out[n][o][r][q] += contribution[r][q]
        if bias is not None:
            out[n][o] = [[v + float(bias[o]) for v in row] for row in out[n][o]]

    def body() -> Iterator[Item]:
        if stage.kernel is None:
            yield muted(f"random weights (nn.ConvTranspose2d's init) from seed {seed}")
        crop = f", then padding {ph}×{pw} cropped from each side" if ph or pw else ""
        extra = f" (output_padding {oph}×{opw}: that many more rows×columns at the far end)" if oph or opw else ""
        yield Text((Segment(f"each input value times the kernel, added into the output at stride steps ({sh}×{sw})"
                            f"{crop}{extra}"),))
        all_planes = planes(N, O)
        for n, o in all_planes[:MAX_PLANES]:
            title = plane_title((n, o), (N, O), "output channel")
            if title:
                yield title
            sources = inputs_of(o)
            for c in sources[:MAX_PLANES]:
                yield Grid(label(f"input X (channel {c}, {H}×{W})" if C > 1 else f"input X ({H}×{W})"),
                           Canvas.of(x[n][c]))
                yield Grid(label(f"kernel K ({kh}×{kw})" if C == 1 else f"kernel W[{c}, {o % per_group_out}] ({kh}×{kw})"),
                           Canvas.of(kernel(c, o)))
                yield from _scatter(x[n][c], kernel(c, o), stage, out[n][o], select,
                                    0.0 if bias is None else float(bias[o]), f"input X, channel {c}" if C > 1 else None)
            if len(sources) > MAX_PLANES:
                yield planes_note(len(sources), "input channels")
            yield from _sums(x[n], sources, [kernel(c, o) for c in sources], stage, (ho, wo), out[n][o],
                             None if bias is None else float(bias[o]), select)
            yield from _zeros_inserted(x[n][sources[0]], kernel(sources[0], o), stage)
            yield from footer(plan, out[n][o])
        if len(all_planes) > MAX_PLANES:
            yield planes_note(len(all_planes))

    return out, body


def _scatter(X: list, K: list, stage: Any, Y: list, select: Select, bias: float = 0.0,
             name: str | None = None) -> Iterator[Item]:
    """One grid per input cell: its value times K, where it lands in the output Y. Each grid
    carries its step for pictures: the input cell, the kernel, the output cells the copy lands
    on with their running sums (the bias plus this input channel's copies so far; Y, the whole
    sum, is the plane's output), and the cells the crop cuts. ``name`` names X when it is one
    input channel of several.

    d2l's third copy, 2·K, lands on Y[1:3, 0:2]; Y[1, 1] then holds 0·3 + 1·2 + 2·1 = 4::

        >>> from poolcli.core.spec import parse_stage
        >>> grids = list(_scatter([[0.0, 1.0], [2.0, 3.0]], [[0.0, 1.0], [2.0, 3.0]],
        ...                       parse_stage("convtranspose:weight=0 1; 2 3"), [[0.0] * 3] * 3, Select()))
        >>> step = grids[2].step
        >>> step.targets, step.sums
        (((1, 0), (1, 1), (2, 0), (2, 1)), (0.0, 4.0, 4.0, 6.0))
    """
    h, w = len(X), len(X[0])
    kh, kw = len(K), len(K[0])
    (sh, sw), (ph, pw), (dh, dw) = stage.stride, stage.padding, stage.dilation
    ho, wo = len(Y), len(Y[0])
    chosen, rest = shown(h * w, (h, w), Select(every=select.every), (h, w), "input cells")
    canvas = Canvas.of(X)
    view = PlaneView(canvas, Y, kernel=K, name=name, unit="input cell")
    running = [[bias] * wo for _ in range(ho)]
    for k in chosen:
        i, j = divmod(k, w)
        plane = zeros(ho, wo)
        marked, cut = [], []
        for a in range(kh):
            r = landing(i, a, sh, ph, dh)
            for b in range(kw):
                q = landing(j, b, sw, pw, dw)
                product = X[i][j] * K[a][b]
                if 0 <= r < ho and 0 <= q < wo:
                    plane[r][q] = product
                    running[r][q] += product
                    marked.append((r, q))
                else:
                    cut.append((r, q, product))
        top, left = landing(i, 0, sh, ph, dh), landing(j, 0, sw, pw, dw)
        where = f"from Y[{top}, {left}]" + (" (all in the cropped padding)" if not marked else
                                             " (partly in the cropped padding)" if cut else "")
        line = (Segment(f"X[{i}, {j}]·K = {operand(X[i][j])}·K, added {where}"),)
        step = Step((top, left), X[i][j], line, cells=(Cell(i, j, REAL, X[i][j]),), canvas=canvas, plane=view,
                    targets=tuple(marked), sums=tuple(running[r][q] for r, q in marked), cut=tuple(cut))
        yield Grid(line, Canvas.of(plane), tuple(marked), step=step)
    if rest:
        yield muted(rest)


def _sums(planes_in: list, sources: list[int], kernels: list, stage: Any, size: tuple[int, int], Y: list,
          bias: float | None, select: Select) -> Iterator[Item]:
    """Each output cell as the sum of the products that landed on it."""
    (sh, sw), (ph, pw), (dh, dw) = stage.stride, stage.padding, stage.dilation
    ho, wo = size
    h, w = len(planes_in[0]), len(planes_in[0][0])
    kh, kw = len(kernels[0]), len(kernels[0][0])
    yield Text((Segment("each output cell sums what landed on it:", "label"),))
    chosen, rest = shown(ho * wo, (h, w), select, (ho, wo), "output cells")
    canvas = Canvas.of(planes_in[sources[0]])
    view = PlaneView(canvas, Y)  # for pictures: the input cells behind each output cell
    for k in chosen:
        r, q = divmod(k, wo)
        rows, cols = _sources(r, h, kh, sh, ph, dh), _sources(q, w, kw, sw, pw, dw)
        products = [Segment(f"{operand(planes_in[c][i][j])}×{operand(K[a][b])}")
                    for c, K in zip(sources, kernels) for i, a in rows for j, b in cols]
        line: list[Any] = [element((r, q)), terms(products, " + ") if products else Segment("0")]
        if bias is not None:
            line.append(Segment(f" + {operand(bias)}"))
        line.extend(result(Y[r][q]))
        cells = tuple(Cell(i, j, REAL, planes_in[sources[0]][i][j]) for i, _ in rows for j, _ in cols)
        notes = () if products else ("no input lands here (output_padding or dilation gaps): only the bias",)
        yield Step((r, q), Y[r][q], tuple(line), notes, cells, canvas, view)
    if rest:
        yield muted(rest)


def _zeros_inserted(X: list, K: list, stage: Any) -> Iterator[Item]:
    """The equivalent view: s − 1 zeros between inputs, d·(k − 1) − p zeros around (output_padding
    more at the far end), and an ordinary conv with the kernel flipped."""
    (sh, sw), (ph, pw), (oph, opw), (dh, dw) = stage.stride, stage.padding, stage.output_padding, stage.dilation
    h, w, kh, kw = len(X), len(X[0]), len(K), len(K[0])
    top, left = dh * (kh - 1) - ph, dw * (kw - 1) - pw
    if top < 0 or left < 0:
        yield muted("(the zeros-inserted view needs padding ≤ d·(k − 1); here the crop is larger)")
        return
    stretched = zeros((h - 1) * sh + 1 + 2 * top + oph, (w - 1) * sw + 1 + 2 * left + opw)
    for i in range(h):
        for j in range(w):
            stretched[top + i * sh][left + j * sw] = X[i][j]
    flipped = [list(reversed(row)) for row in reversed(K)]
    gaps = f"{sh - 1}×{sw - 1} zero(s) between inputs" if (sh, sw) != (1, 1) else "no zeros between inputs (stride 1)"
    yield Text((Segment("the same, as an ordinary conv: ", "label"),
                Segment(f"{gaps}, {top}×{left} zero(s) of padding around"
                        + (f" ({oph}×{opw} more at the far end)" if oph or opw else "")
                        + (f", the flipped kernel read every {nth(dh)} row and {nth(dw)} column" if (dh, dw) != (1, 1)
                           else ", then the flipped kernel slides with stride 1")),))
    yield Grid(label(f"zeros inserted and padded ({len(stretched)}×{len(stretched[0])})"), Canvas.of(stretched))
    yield Grid(label(f"kernel flipped ({kh}×{kw})"), Canvas.of(flipped))


# ---------------------------------------------------------------------------------- upsampling


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0]


def axis_taps(n_in: int, n_out: int, mode: str, align_corners: bool, scale_factor: float | None) -> list:
    """For every output along one axis, its source cells and weights, by torch's rules: nearest
    ⌊o·scale⌋ (in float32; o itself for equal sizes, o // 2 for twice the size), bilinear the two
    cells around (o + ½)·scale − ½ (clamped at 0) with weights 1 − λ and λ, bicubic four cells with
    Keys' weights (A = −0.75); cells beyond the edge read the edge."""
    scale = source_scale(n_in, n_out, align_corners and mode != "nearest", scale_factor)
    result = []
    for o in range(n_out):
        if mode == "nearest":
            if n_out == n_in:
                source = o
            elif n_out == 2 * n_in:
                source = o // 2
            else:
                source = min(math.floor(_float32(_float32(float(o)) * _float32(scale))), n_in - 1)
            result.append([(source, 1.0)])
            continue
        position = scale * o if align_corners else scale * (o + 0.5) - 0.5
        if mode == "bilinear":
            position = max(position, 0.0)
            first = min(math.floor(position), n_in - 1)
            lam = 0.0 if first == n_in - 1 else position - first
            result.append([(first, 1 - lam), (min(first + 1, n_in - 1), lam)])
            continue
        first = math.floor(position)
        t = position - first
        weights = [_far(t + 1), _near(t), _near(1 - t), _far(2 - t)]
        result.append([(min(max(first - 1 + k, 0), n_in - 1), weights[k]) for k in range(4)])
    return result


def _near(v: float) -> float:
    return ((CUBIC_A + 2) * v - (CUBIC_A + 3)) * v * v + 1


def _far(v: float) -> float:
    return ((CUBIC_A * v - 5 * CUBIC_A) * v + 8 * CUBIC_A) * v - 4 * CUBIC_A


def interpolate(X: Sequence[Sequence[float]], size: tuple[int, int], mode: str, align_corners: bool = False,
                scale_factor: tuple[float, float] | None = None) -> list:
    """``F.interpolate`` on one plane: Y[i, j] = Σ wᵢ·wⱼ·X[rᵢ, cⱼ] over the two axes' taps."""
    factors = scale_factor or (None, None)
    rows = axis_taps(len(X), size[0], mode, align_corners, factors[0])
    cols = axis_taps(len(X[0]), size[1], mode, align_corners, factors[1])
    return [[sum(wr * wc * X[r][c] for r, wr in row for c, wc in col) for col in cols] for row in rows]


def walk_upsample(stage: Any, x: list, plan: Any, context: WalkContext, select: Select) -> tuple[list, Any]:
    """Each output cell from its source cells and their weights (a row weight times a column weight)."""
    N, C, H, W = plan.input_shape
    ho, wo = plan.output_shape[-2:]
    factors = None if stage.recompute_scale_factor else stage.scale_factor
    align = bool(stage.align_corners)
    rows = axis_taps(H, ho, stage.mode, align, factors[0] if factors else None)
    cols = axis_taps(W, wo, stage.mode, align, factors[1] if factors else None)
    out = [[interpolate(x[n][c], (ho, wo), stage.mode, align, factors) for c in range(C)] for n in range(N)]

    def body() -> Iterator[Item]:
        yield Text((Segment(_rule(stage, H, W, ho, wo, factors)),))
        all_planes = planes(N, C)
        for n, c in all_planes[:MAX_PLANES]:
            title = plane_title((n, c), plan.input_shape)
            if title:
                yield title
            X = x[n][c]
            canvas = Canvas.of(X)
            yield Grid(label(f"input X ({H}×{W})"), canvas)
            chosen, rest = shown(ho * wo, (H, W), select, (ho, wo), "output cells")
            view = PlaneView(canvas, out[n][c])
            for k in chosen:
                i, j = divmod(k, wo)
                value = out[n][c][i][j]
                pairs = [(r, q, wr * wq) for r, wr in rows[i] for q, wq in cols[j] if wr * wq != 0]
                if stage.mode == "nearest":
                    r, q, _ = pairs[0]
                    line = (element((i, j)), Segment(f"X[{r}, {q}]"), *result(value))
                else:
                    products = [Segment(f"{operand(w)}×{operand(X[r][q])}") for r, q, w in pairs]
                    line = (element((i, j)), terms(products, " + "), *result(value))
                notes = (f"rows: {_weights(rows[i])}; columns: {_weights(cols[j])}",) if stage.mode != "nearest" else ()
                cells = tuple(dict.fromkeys(Cell(r, q, REAL, X[r][q]) for r, q, _ in pairs))
                yield Step((i, j), value, line, notes, cells, canvas, view)
            if rest:
                yield muted(rest)
            yield from footer(plan, out[n][c])
        if len(all_planes) > MAX_PLANES:
            yield planes_note(len(all_planes))

    return out, body


def _weights(taps: list) -> str:
    """One axis's weights as ``0.75·[0] + 0.25·[1]`` (cell numbers in brackets; zero weights left out)."""
    return " + ".join(f"{operand(w)}·[{i}]" for i, w in taps if w != 0)


def _rule(stage: Any, H: int, W: int, ho: int, wo: int, factors: Any) -> str:
    """How the source position of an output is found, in words."""
    if stage.mode == "nearest":
        return f"nearest: output (i, j) copies X[⌊i·{fmt(H / ho)}⌋, ⌊j·{fmt(W / wo)}⌋] (torch's float32 index)"
    if stage.align_corners:
        where = "source position o·(in − 1)/(out − 1): the corners meet the corners"
    else:
        where = "source position (o + ½)·scale − ½, scale = " + (
            f"1/{fmt(factors[0])} × 1/{fmt(factors[1])}" if factors else f"{H}/{ho} × {W}/{wo}")
    how = "the two cells around it, weighted 1 − λ and λ" if stage.mode == "bilinear" else \
        "four cells around it, with Keys' cubic weights (A = −0.75)"
    return f"{stage.mode}: {where}; {how}; a weight for the row times one for the column"
