"""arithmetic.py against torch: output sizes, unpool sizes, adaptive windows, 'same' padding,
the rendered formulas and the receptive-field/jump recurrence (DESIGN.md §4, §8)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli.core import arithmetic as ar

FAST = settings(max_examples=80, deadline=None)


def _torch_len(fn):
    """The output length torch gives, or None where torch refuses (or gives an empty dim)."""
    try:
        out = fn()
    except (RuntimeError, ValueError):
        return None
    size = out.shape[2]
    return size if size >= 1 else None


# --------------------------------------------------------------------------- pooling sizes


@st.composite
def pool_args(draw):
    k = draw(st.integers(1, 7))
    return (
        draw(st.integers(1, 40)),  # n
        k,
        draw(st.integers(1, 6)),  # stride
        draw(st.integers(0, k // 2)),  # torch's padding rule
        draw(st.integers(1, 4)),  # dilation
        draw(st.booleans()),  # ceil_mode
    )


@FAST
@given(pool_args())
def test_pool_output_size_matches_torch(args):
    n, k, s, p, d, ceil = args
    expected = _torch_len(
        lambda: F.max_pool2d(torch.zeros(1, 1, n, 1), (k, 1), (s, 1), (p, 0), (d, 1), ceil)
    )
    result = ar.pool_output_size(n, k, s, p, d, ceil)
    if expected is None:
        assert result.size < 1
    else:
        assert result.size == expected
    assert result.formula.endswith(f"= {result.size}")
    assert ("⌈" in result.formula) == ceil and ("⌊" in result.formula) != ceil


@FAST
@given(pool_args())
def test_avg_pool_output_size_matches_torch(args):
    n, k, s, p, _, ceil = args
    expected = _torch_len(lambda: F.avg_pool2d(torch.zeros(1, 1, n, 1), (k, 1), (s, 1), (p, 0), ceil))
    result = ar.pool_output_size(n, k, s, p, 1, ceil)
    assert (result.size if result.size >= 1 else None) == expected


@FAST
@given(pool_args())
def test_ceil_mode_naive_size_is_the_plain_ceiling(args):
    n, k, s, p, d, _ = args
    result = ar.pool_output_size(n, k, s, p, d, True)
    numerator = n + 2 * p - d * (k - 1) - 1
    naive = -((-numerator) // s) + 1
    if naive == result.size:
        assert result.naive_size is None
    else:
        assert result.naive_size == naive == result.size + 1
        assert "padding" in result.formula and f"= {naive}" in result.formula
    assert result.formula.endswith(f"= {result.size}")
    floor = ar.pool_output_size(n, k, s, p, d, False)
    assert floor.naive_size is None
    assert floor.size <= result.size <= floor.size + 1


def test_ceil_mode_drops_the_window_that_starts_in_the_padding():
    # torch issue tracker's classic: naive ⌈(5 + 2 − 2 − 1)/3⌉ + 1 = 3, torch gives 2
    result = ar.pool_output_size(5, 3, 3, 1, 1, True)
    assert (result.size, result.naive_size) == (2, 3)
    assert F.max_pool2d(torch.zeros(1, 1, 5, 5), 3, 3, 1, ceil_mode=True).shape[-1] == 2
    assert result.formula.startswith("⌈(5 + 2·1 − 1·(3−1) − 1)/3⌉ + 1 = 3")
    assert "padding" in result.formula
    assert result.formula.endswith("= 2")


@pytest.mark.parametrize(
    "n, k, s, p, size",
    [
        (4, 3, 2, 1, 3),
        (6, 2, 2, 1, 4),
        (2, 2, 2, 1, 2),
        (1, 2, 2, 1, 1),
        (5, 3, 3, 1, 2),
        (10, 4, 3, 2, 4),
    ],
)
def test_ceil_mode_small_cases_match_torch(n, k, s, p, size):
    expected = F.max_pool2d(torch.zeros(1, 1, n, n), k, s, p, ceil_mode=True).shape[-1]
    assert expected == size
    assert ar.pool_output_size(n, k, s, p, 1, True).size == size


def test_formula_golden_strings():
    assert ar.pool_output_size(512, 2, 2).formula == "⌊(512 + 2·0 − 1·(2−1) − 1)/2⌋ + 1 = 256"
    assert ar.pool_output_size(4, 3, 2, 1).formula == "⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2"
    assert ar.pool_output_size(4, 3, 3).formula == "⌊(4 + 2·0 − 1·(3−1) − 1)/3⌋ + 1 = 1"
    assert ar.pool_output_size(7, 2, 2, 0, 1, True).formula == "⌈(7 + 2·0 − 1·(2−1) − 1)/2⌉ + 1 = 4"
    assert ar.pool_output_size(9, 3, 1, 0, 2).formula == "⌊(9 + 2·0 − 2·(3−1) − 1)/1⌋ + 1 = 5"
    assert ar.conv_output_size(3, 2, 1, 0, 0).formula == "⌊(3 + 2·0 − 1·(2−1) − 1)/1⌋ + 1 = 2"
    assert ar.conv_output_size(5, 4, 1, 1, 2).formula == "⌊(5 + 1 + 2 − 1·(4−1) − 1)/1⌋ + 1 = 5"
    assert ar.unpool_output_size(2, 2, 2, 0).formula == "(2 − 1)·2 − 2·0 + 2 = 4"
    assert ar.pad_output_size(4, 1, 2).formula == "4 + 1 + 2 = 7"
    assert ar.global_output_size(13).formula.endswith("= 1")
    assert ar.adaptive_output_size(13, 7).formula.endswith("= 7")
    assert ar.fractional_output_size(10, 2, None, 0.5).formula == "⌊10·0.5⌋ = 5"
    assert ar.fractional_output_size(10, 2, 4, None).formula.endswith("= 4")


def test_negative_sizes_keep_the_formula():
    result = ar.pool_output_size(1, 3, 1)
    assert result.size == -1
    assert result.formula == "⌊(1 + 2·0 − 1·(3−1) − 1)/1⌋ + 1 = -1"


# --------------------------------------------------------------------------- conv sizes


@FAST
@given(
    n=st.integers(1, 30),
    k=st.integers(1, 6),
    s=st.integers(1, 5),
    before=st.integers(0, 4),
    after=st.integers(0, 4),
    d=st.integers(1, 3),
)
def test_conv_output_size_matches_torch(n, k, s, before, after, d):
    def run():
        x = F.pad(torch.zeros(1, 1, n, 1), (0, 0, before, after))
        return F.conv2d(x, torch.zeros(1, 1, k, 1), stride=(s, 1), dilation=(d, 1))

    result = ar.conv_output_size(n, k, s, before, after, d)
    assert (result.size if result.size >= 1 else None) == _torch_len(run)
    assert result.formula.endswith(f"= {result.size}")


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@FAST
@given(n=st.integers(1, 20), k=st.integers(1, 6), d=st.integers(1, 3))
def test_same_padding_splits_as_torch(n, k, d):
    before, after = ar.same_padding(k, d)
    assert before + after == d * (k - 1)
    assert 0 <= after - before <= 1
    generator = torch.Generator().manual_seed(n * 100 + k * 10 + d)
    x = torch.rand(1, 1, n, 1, generator=generator, dtype=torch.float64)
    w = torch.rand(1, 1, k, 1, generator=generator, dtype=torch.float64)
    expected = F.conv2d(x, w, padding="same", dilation=(d, 1))
    ours = F.conv2d(F.pad(x, (0, 0, before, after)), w, dilation=(d, 1))
    assert ours.shape == expected.shape
    assert torch.allclose(ours, expected)
    assert ar.conv_output_size(n, k, 1, before, after, d).size == n


# --------------------------------------------------------------------------- unpool sizes


@FAST
@given(n=st.integers(1, 20), k=st.integers(1, 6), s=st.integers(1, 5), p=st.integers(0, 3))
def test_unpool_output_size_matches_torch(n, k, s, p):
    def run():
        x = torch.zeros(1, 1, n, 1)
        indices = torch.zeros(1, 1, n, 1, dtype=torch.int64)
        return F.max_unpool2d(x, indices, (k, 1), (s, 1), (p, 0))

    result = ar.unpool_output_size(n, k, s, p)
    assert (result.size if result.size >= 1 else None) == _torch_len(run)
    assert result.formula.endswith(f"= {result.size}")


@FAST
@given(n=st.integers(1, 10), k=st.integers(1, 5), s=st.integers(1, 4), size=st.integers(1, 40))
def test_unpool_bounds_match_torch(n, k, s, size):
    default = ar.unpool_output_size(n, k, s, 0).size
    low, high = ar.unpool_bounds(default, s)
    x = torch.zeros(1, 1, n, 1)
    indices = torch.zeros(1, 1, n, 1, dtype=torch.int64)
    try:
        F.max_unpool2d(x, indices, (k, 1), (s, 1), 0, output_size=(size, 1))
        accepted = True
    except (ValueError, RuntimeError):
        accepted = False
    assert accepted == (low < size < high)


@FAST
@given(pool_args())
def test_unpool_default_brackets_the_pooled_input(args):
    """The pool's input size always lies inside torch's unpool bounds (so it can be restored)."""
    n, k, s, p, d, ceil = args
    out = ar.pool_output_size(n, k, s, p, d, ceil).size
    if out < 1:
        return
    default = ar.unpool_output_size(out, ar.effective_kernel(k, d), s, p).size
    low, high = ar.unpool_bounds(default, s)
    assert low < n < high


# --------------------------------------------------------------------------- adaptive windows


@FAST
@given(n=st.integers(1, 40), out=st.integers(1, 40))
def test_adaptive_windows_match_torch(n, out):
    windows = ar.adaptive_windows(n, out)
    assert len(windows) == out
    ramp = torch.arange(n, dtype=torch.float64).view(1, 1, n, 1)
    ends = F.adaptive_max_pool2d(ramp, (out, 1)).flatten().tolist()
    starts = (-F.adaptive_max_pool2d(-ramp, (out, 1))).flatten().tolist()
    assert [(int(a), int(b) + 1) for a, b in zip(starts, ends)] == windows
    rng = np.random.default_rng(n * 1000 + out)
    values = rng.random(n)
    means = F.adaptive_avg_pool2d(torch.from_numpy(values).view(1, 1, n, 1), (out, 1)).flatten().numpy()
    assert np.allclose(means, [values[a:b].mean() for a, b in windows])
    assert ar.adaptive_output_size(n, out).size == out


def test_adaptive_windows_docstring_example():
    assert ar.adaptive_windows(5, 3) == [(0, 2), (1, 4), (3, 5)]
    assert ar.adaptive_windows(3, 5) == [(0, 1), (0, 2), (1, 2), (1, 3), (2, 3)]


# --------------------------------------------------------------------------- fields and helpers


def test_lenet_receptive_field_and_jump():
    # conv 5 (p=2), avgpool 2/2, conv 5, avgpool 2/2: r 1 → 5 → 6 → 14 → 16; j 1 → 1 → 2 → 2 → 4
    field = ar.Field()
    trace = []
    for k, s in ((5, 1), (2, 2), (5, 1), (2, 2)):
        field = field.through(k, s)
        trace.append((int(field.size), int(field.jump)))
    assert trace == [(5, 1), (6, 2), (14, 2), (16, 4)]


def test_field_uses_effective_kernel_and_fractions():
    span = ar.effective_kernel(3, 2)
    assert span == 5
    field = ar.Field().through(span, 2).through(3, 2)
    assert (field.size, field.jump) == (5 + 2 * 2, 4)
    field = field.through(1, Fraction(1, 2))  # an unpool halves the jump, leaves the field
    assert (field.size, field.jump) == (9, 2)
    assert ar.number(Fraction(7, 2)) == 3.5 and ar.number(Fraction(4, 1)) == 4
    assert isinstance(ar.number(Fraction(4, 1)), int)


def test_small_helpers():
    assert ar.pair(2) == (2, 2) and ar.pair((2, 3)) == (2, 3) and ar.pair([4, 5]) == (4, 5)
    for bad in (True, (1, 2, 3), (1.5, 2), "ab", (True, 1)):
        with pytest.raises(TypeError):
            ar.pair(bad)
    assert ar.effective_kernel(2, 1) == 2
    assert ar.human_count(786432) == "786.4K" and ar.human_count(12) == "12"
    assert ar.human_count(2_500_000) == "2.5M" and ar.human_count(3 * 10**9) == "3.0G"
    assert ar.format_shape((1, 3, 512, 512)) == "1×3×512×512"
    assert ar.ceil_div(7, 2) == 4 and ar.ceil_div(-7, 2) == -3 and ar.ceil_div(6, 3) == 2
    assert ar.pad_output_size(3, 0, 0).size == 3
