"""Output-size, receptive-field and cost arithmetic, with each formula rendered in numbers.

Pure Python: the planner, the report and ``poolcli shape`` use it without importing torch.
Every function returns the number *and* the formula that produced it, so the table can show
why an output has the size it has, e.g. d2l's ``nn.MaxPool2d(3, padding=1, stride=2)`` on a
4x4 input::

    >>> pool_output_size(4, 3, 2, 1, 1, False).formula
    '⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2'
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Iterable

Pair = tuple[int, int]


def pair(value: int | Iterable[int], name: str = "value") -> Pair:
    """An int or a 2-sequence as an (h, w) pair, as torch's ``_pair`` does.

    >>> pair(2), pair((2, 3))
    ((2, 2), (2, 3))
    """
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an int or a pair of ints, not a boolean")
    if isinstance(value, int):
        return (value, value)
    items = tuple(value)
    if len(items) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise TypeError(f"{name} must be an int or a pair of ints, got {value!r}")
    return items  # type: ignore[return-value]


@dataclass(frozen=True)
class SizeResult:
    """One output dimension: its ``size`` and the ``formula`` with its numbers, ending ``= size``."""

    size: int
    formula: str
    naive_size: int | None = None  # the plain ceiling when ceil_mode dropped a last window


def effective_kernel(kernel: int, dilation: int) -> int:
    """The span of a dilated kernel, d·(k−1)+1: a 3-wide kernel with dilation 2 spans 5 pixels."""
    return dilation * (kernel - 1) + 1


def pool_output_size(
    n: int, kernel: int, stride: int, padding: int = 0, dilation: int = 1, ceil_mode: bool = False
) -> SizeResult:
    """Output length of a sliding window, exactly as torch's ``pooling_output_shape``.

    ⌊(n + 2p − d·(k−1) − 1)/s⌋ + 1, or with ``ceil_mode`` the ceiling, minus the last window
    when it would start in the right padding (torch drops it; the naive ceiling does not):

    >>> pool_output_size(512, 2, 2).formula
    '⌊(512 + 2·0 − 1·(2−1) − 1)/2⌋ + 1 = 256'
    >>> r = pool_output_size(5, 3, 3, 1, 1, True)
    >>> r.size, r.naive_size
    (2, 3)
    """
    numerator = n + 2 * padding - dilation * (kernel - 1) - 1
    body = f"({n} + 2·{padding} − {dilation}·({kernel}−1) − 1)/{stride}"
    if not ceil_mode:
        size = numerator // stride
        return SizeResult(size + 1, f"⌊{body}⌋ + 1 = {size + 1}")
    naive = -((-numerator) // stride) + 1
    size = naive
    if (size - 1) * stride >= n + padding:
        size -= 1
    formula = f"⌈{body}⌉ + 1 = {naive}"
    if size == naive:
        return SizeResult(size, formula)
    formula += (
        f", but window {naive} would start in the padding"
        f" (({naive}−1)·{stride} ≥ {n} + {padding}), so = {size}"
    )
    return SizeResult(size, formula, naive_size=naive)


def conv_output_size(
    n: int, kernel: int, stride: int, pad_before: int, pad_after: int, dilation: int = 1
) -> SizeResult:
    """Output length of a cross-correlation, ⌊(n + p₁ + p₂ − d·(k−1) − 1)/s⌋ + 1.

    The seeds' corr2d example, a 2x2 kernel on a 3x3 input::

        >>> conv_output_size(3, 2, 1, 0, 0).formula
        '⌊(3 + 2·0 − 1·(2−1) − 1)/1⌋ + 1 = 2'
    """
    if pad_before == pad_after:
        return pool_output_size(n, kernel, stride, pad_before, dilation, False)
    numerator = n + pad_before + pad_after - dilation * (kernel - 1) - 1
    size = numerator // stride + 1
    body = f"({n} + {pad_before} + {pad_after} − {dilation}·({kernel}−1) − 1)/{stride}"
    return SizeResult(size, f"⌊{body}⌋ + 1 = {size}")


def same_padding(kernel: int, dilation: int) -> tuple[int, int]:
    """Per-side padding for ``padding='same'`` (stride 1), as torch splits it: the extra on the end.

    >>> same_padding(3, 1), same_padding(4, 1)
    ((1, 1), (1, 2))
    """
    total = dilation * (kernel - 1)
    return total // 2, total - total // 2


def pad_output_size(n: int, before: int, after: int) -> SizeResult:
    """Length after explicit padding: n + before + after."""
    size = n + before + after
    return SizeResult(size, f"{n} + {before} + {after} = {size}")


def adaptive_windows(n: int, out: int) -> list[tuple[int, int]]:
    """torch's adaptive-pool windows [⌊i·n/out⌋, ⌈(i+1)·n/out⌉) for i < out.

    >>> adaptive_windows(5, 3)
    [(0, 2), (1, 4), (3, 5)]
    """
    return [((i * n) // out, -((-(i + 1) * n) // out)) for i in range(out)]


def adaptive_output_size(n: int, out: int) -> SizeResult:
    """Adaptive pooling: the output length is asked for; the formula shows the window rule."""
    return SizeResult(out, f"windows [⌊i·{n}/{out}⌋, ⌈(i+1)·{n}/{out}⌉) = {out}")


def global_output_size(n: int) -> SizeResult:
    """Global pooling: one window over the whole length."""
    return SizeResult(1, f"one window over all {n} = 1")


def unpool_output_size(n: int, kernel: int, stride: int, padding: int) -> SizeResult:
    """MaxUnpool2d's default length, (n − 1)·s − 2p + k, the inverse of a pool's formula.

    >>> unpool_output_size(2, 2, 2, 0).formula
    '(2 − 1)·2 − 2·0 + 2 = 4'
    """
    size = (n - 1) * stride - 2 * padding + kernel
    return SizeResult(size, f"({n} − 1)·{stride} − 2·{padding} + {kernel} = {size}")


def unpool_bounds(default: int, stride: int) -> tuple[int, int]:
    """The exclusive bounds torch puts on an explicit MaxUnpool2d output_size: default ± stride."""
    return default - stride, default + stride


def fractional_output_size(n: int, kernel: int, out: int | None, ratio: float | None) -> SizeResult:
    """FractionalMaxPool2d: output_size given, or ⌊n·ratio⌋ (torch's rule)."""
    if out is not None:
        return SizeResult(out, f"output_size = {out}")
    assert ratio is not None
    size = int(n * ratio)
    return SizeResult(size, f"⌊{n}·{ratio:g}⌋ = {size}")


@dataclass(frozen=True)
class Field:
    """Receptive field and jump along one axis, in pixels of the pipeline's input.

    ``size`` grows by (k_eff − 1)·jump per windowed stage; ``jump`` multiplies by its stride.
    """

    size: Fraction = Fraction(1)
    jump: Fraction = Fraction(1)

    def through(self, kernel_span: int | Fraction, stride: int | Fraction) -> "Field":
        """The field after a window of span ``kernel_span`` moved by ``stride``.

        LeNet's first conv (k=5) then 2x2 pool: 1 → 5 → 6, jump 1 → 1 → 2::

            >>> f = Field().through(5, 1).through(2, 2)
            >>> int(f.size), int(f.jump)
            (6, 2)
        """
        size = self.size + (Fraction(kernel_span) - 1) * self.jump
        return Field(size, self.jump * Fraction(stride))


def number(value: Fraction | int | float) -> int | float:
    """A Fraction as an int when whole, else a float: for the JSON and the table."""
    value = Fraction(value)
    return int(value) if value.denominator == 1 else round(float(value), 4)


def human_count(value: int) -> str:
    """Large counts for the table: 786432 → '786.4K'; small ones as they are."""
    for unit, size in (("G", 10**9), ("M", 10**6), ("K", 10**3)):
        if abs(value) >= size:
            return f"{value / size:.1f}{unit}"
    return str(value)


def format_shape(shape: Iterable[int]) -> str:
    """(1, 3, 512, 512) → '1×3×512×512'."""
    return "×".join(str(d) for d in shape)


def ceil_div(a: int, b: int) -> int:
    """⌈a/b⌉ for ints."""
    return -((-a) // b)


def conv_transpose_output_size(
    n: int, kernel: int, stride: int, padding: int, output_padding: int = 0, dilation: int = 1
) -> SizeResult:
    """Output length of a transposed convolution, exactly as torch's ``conv_transpose2d``:
    (n − 1)·s − 2p + d·(k − 1) + output_padding + 1.

    The conv-arithmetic paper's relationship 14: a 3-wide conv with s=2, p=1 takes i=6 to 3; its
    transpose takes 3 back to 6 with output_padding a = (6 + 2·1 − 3) mod 2 = 1::

        >>> conv_transpose_output_size(3, 3, 2, 1, 1).formula
        '(3 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1 = 6'

    d2l's X = [[0, 1], [2, 3]] with a 2x2 kernel at stride 1 gives 3x3::

        >>> conv_transpose_output_size(2, 2, 1, 0).size
        3
    """
    size = (n - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1
    return SizeResult(size, f"({n} − 1)·{stride} − 2·{padding} + {dilation}·({kernel} − 1) + {output_padding} + 1 = {size}")


def output_padding_for(n: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    """The output_padding that takes a conv's output back to its input length n (relationship 14's
    a = (n + 2p − d·(k − 1) − 1) mod s): a 3-wide conv with s=2, p=1 on 6 needs 1, on 5 needs 0.

    >>> output_padding_for(6, 3, 2, 1), output_padding_for(5, 3, 2, 1)
    (1, 0)
    """
    return (n + 2 * padding - dilation * (kernel - 1) - 1) % stride


def source_scale(n_in: int, n_out: int, align_corners: bool, scale_factor: float | None) -> float:
    """Input steps per output step as torch's upsampling kernels take it (``area_pixel_compute_scale``):
    shared by the numpy kernel and explain's walkthrough.

    >>> source_scale(4, 8, False, 2.0), source_scale(4, 8, True, None), source_scale(3, 7, False, None)
    (0.5, 0.42857142857142855, 0.42857142857142855)
    """
    if align_corners:
        return (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
    if scale_factor is not None and scale_factor > 0:
        return 1.0 / scale_factor
    return n_in / n_out


def upsample_output_size(n: int, scale: float | None, size: int | None) -> SizeResult:
    """Output length of ``F.interpolate``: the given size, or ⌊n · scale⌋ as torch computes it
    (``floor(float(n * scale))``).

    >>> upsample_output_size(28, 2.0, None).formula
    '⌊28·2⌋ = 56'
    >>> upsample_output_size(5, 1.5, None).size, upsample_output_size(5, None, 9).formula
    (7, 'size = 9')
    """
    if size is not None:
        return SizeResult(size, f"size = {size}")
    assert scale is not None
    result = math.floor(float(n * scale))
    return SizeResult(result, f"⌊{n}·{scale:g}⌋ = {result}")


def fraction_text(value: Fraction | int | float) -> str:
    """A jump as the table writes it: whole numbers as they are, fractions as ``1/2``.

    >>> fraction_text(Fraction(1, 2)), fraction_text(Fraction(4)), fraction_text(Fraction(5, 3))
    ('1/2', '4', '5/3')
    """
    value = Fraction(value)
    return str(value.numerator) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


class Ratio(Fraction):
    """A stage's input steps per output step where its windows do not repeat every output (an
    upsample by 7/5, or with align_corners): ``field_back`` then bounds n outputs' inputs by
    ⌈(n − 1)·ratio⌉ + span."""


def field_back(count: int, span: int | Fraction, stride: int | Fraction) -> tuple[int, bool]:
    """How many consecutive inputs of one stage ``count`` consecutive outputs read at most, and
    whether that many is reached wherever the outputs lie (not only at the best alignment).

    A shrinking stage (stride ≥ 1) reads (count − 1)·s + span. An enlarging one (stride 1/u, span in
    output steps: output o reads the inputs i with i·u in a window of ``span`` positions) reads the
    multiples of u in count − 1 + span consecutive positions: ⌈(count − 1 + span)/u⌉ at the best
    alignment, one fewer at others unless u divides that length. A 2x bilinear upsample (span 4):

        >>> field_back(1, 4, Fraction(1, 2)), field_back(2, 4, Fraction(1, 2)), field_back(3, 2, 2)
        ((2, True), (3, False), (6, True))
    """
    if isinstance(stride, Ratio):
        return math.ceil((count - 1) * stride) + int(span), False
    stride = Fraction(stride)
    if stride >= 1:
        return math.ceil((count - 1) * stride) + int(span), stride.denominator == 1
    up = stride.denominator
    length = count - 1 + int(span)
    return -(-length // up), length % up == 0


def receptive_field(steps: Iterable[tuple[int | Fraction, int | Fraction]]) -> tuple[int, bool]:
    """The receptive field of one output of the last of ``steps`` ((span, stride) per stage, first
    stage first), in pixels of the first stage's input, walked back stage by stage; and whether it
    is exact (False: an upper bound, the table writes ``≤``).

    For shrinking stages it equals DESIGN §2's r + (k_eff − 1)·j; through enlarging ones that
    chain rule can fall short (a stride-2 2x2 convtranspose then a 2x bilinear upsample reaches 2
    input pixels, where r + (n − 1)·j gives 1.5), so the n − 1 steps between an output's first and
    last input are carried back through every stage, rounding up at each::

        >>> receptive_field([(2, Fraction(1, 2)), (4, Fraction(1, 2))])
        (2, True)
        >>> receptive_field([(5, 1), (2, 2), (5, 1), (2, 2)])
        (16, True)

    Exactness: the walk starts from one output, which can lie anywhere, so the best alignment of
    every enlarging stage is reachable until a stride > 1 fixes the alignment; past that an
    enlarging stage whose count depends on the alignment makes the result a bound.
    """
    count, exact, free = 1, True, True
    for span, stride in reversed(list(steps)):
        count, aligned = field_back(count, span, stride)
        if isinstance(stride, Ratio):
            exact, free = False, False
        elif stride < 1:
            exact = exact and (free or aligned)
        elif stride != 1:
            exact = exact and aligned
            free = False
    return count, exact
