"""Output-size, receptive-field and cost arithmetic, with each formula rendered in numbers.

Pure Python: the planner, the report and ``poolcli shape`` use it without importing torch.
Every function returns the number *and* the formula that produced it, so the table can show
why an output has the size it has, e.g. d2l's ``nn.MaxPool2d(3, padding=1, stride=2)`` on a
4x4 input::

    >>> pool_output_size(4, 3, 2, 1, 1, False).formula
    '⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2'
"""

from __future__ import annotations

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
