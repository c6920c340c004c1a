"""poolcli.core.textbook: the window loops, checked against torch's kernels (the only test module
of explain's arithmetic that imports torch), and pure Python: core imports without numpy."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from poolcli.core import textbook as tb
from poolcli.core.ops import Grayscale, LeakyReLU, ReLU, Sigmoid, Tanh
from poolcli.core.spec import parse_stage

D2L = [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]
ARANGE16 = [[float(4 * r + c) for c in range(4)] for r in range(4)]


# --------------------------------------------------------------------------- the seeds' numbers


def test_d2l_pool2d_and_corr2d():
    assert tb.pool2d(D2L, (2, 2), (1, 1)) == [[4.0, 5.0], [7.0, 8.0]]
    assert tb.pool2d(D2L, (2, 2), (1, 1), reduction="avg") == [[2.0, 3.0], [5.0, 6.0]]
    assert tb.corr2d(D2L, [[0.0, 1.0], [2.0, 3.0]]) == [[19.0, 25.0], [37.0, 43.0]]


def test_d2l_padded_maxpool_and_divisor_override():
    assert tb.pool2d(ARANGE16, 3, 2, 1) == [[5.0, 7.0], [13.0, 15.0]]
    ones = [[1.0] * 4 for _ in range(4)]
    assert tb.pool2d(ones, 2, 2, reduction="avg", divisor_override=3) == [[4 / 3, 4 / 3], [4 / 3, 4 / 3]]


def test_windows_mark_padding_and_overhang():
    cells = next(tb.windows(D2L, 2, 1, 1)).cells
    assert [c.kind for c in cells] == [tb.PAD, tb.PAD, tb.PAD, tb.REAL]
    last = list(tb.windows(D2L, 2, 2, 0, ceil_mode=True))[-1]
    assert [c.kind for c in last.cells] == [tb.REAL, tb.OUTSIDE, tb.OUTSIDE, tb.OUTSIDE]
    assert tb.window_shape((3, 3), 2, 2, 0, 1, True) == (2, 2)


def test_fmt_and_operand():
    assert [tb.fmt(v) for v in (4.0, 4 / 3, -0.0, 0.5, -2.25, float("-inf"), float("nan"), 1e-6, np.float32(0.1), np.int64(7))] \
        == ["4", "1.3333", "0", "0.5", "-2.25", "-inf", "nan", "1e-06", "0.1", "7"]
    assert tb.operand(-3.0) == "(-3)"


def test_luma_is_pillows_mode_l_on_coffee():
    """The one luma: the textbook's fixed point equals Image.convert('L') on a real picture."""
    from PIL import Image

    path = os.path.join(os.path.dirname(__file__), "..", "..", "sample_images", "coffee.png")
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))[:40, :60]
        expected = np.asarray(Image.fromarray(rgb).convert("L"))
    ours = tb.luma(rgb[..., 0], rgb[..., 1], rgb[..., 2], integer=True)
    assert np.array_equal(np.array(ours), expected)


def test_kernels_luma_takes_grayscales_constants():
    from poolcli.kernels import luma

    assert luma.FIXED_POINT_WEIGHTS is Grayscale.fixed_point_weights
    assert luma.FLOAT_WEIGHTS is Grayscale.weights
    x = (np.arange(3 * 5 * 7) * 37 % 256).astype(np.uint8).reshape(1, 3, 5, 7)
    assert luma.luma(x)[0, 0].tolist() == tb.luma(x[0, 0], x[0, 1], x[0, 2], integer=True)


def test_core_imports_without_numpy():
    """core is pure planning: every module of it loads with numpy, Pillow and torch unimportable."""
    code = textwrap.dedent(
        """
        import importlib, pkgutil, sys
        for name in ("numpy", "PIL", "torch"):
            sys.modules[name] = None
        import poolcli.core
        for module in pkgutil.walk_packages(poolcli.core.__path__, "poolcli.core."):
            importlib.import_module(module.name)
        from poolcli.core.textbook import pool2d
        from poolcli.core.walkthrough import walk_stage
        from poolcli.core.spec import parse_stage
        assert pool2d([[0.0, 1.0], [2.0, 3.0]], 2) == [[3.0]]
        assert walk_stage(parse_stage("medianpool:2"), [[[[0.0, 1.0], [2.0, 3.0]]]]).output == [[[[1.0]]]]
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


# --------------------------------------------------------------------------- the loops vs torch

torch = pytest.importorskip("torch")
F = torch.nn.functional

# EXPLAIN_EXAMPLES=2000 runs the properties harder (they passed 1500 when written)
SETTINGS = settings(max_examples=int(os.environ.get("EXPLAIN_EXAMPLES", "60")), deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


def _t(X) -> "torch.Tensor":
    return torch.from_numpy(np.ascontiguousarray(X, dtype=np.float64))[None, None]


def _np(t) -> np.ndarray:
    return t[0, 0].numpy()


@st.composite
def pool_cases(draw, padding: bool = True, dilation: bool = True, positive: bool = False):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    sh, sw = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    ph = draw(st.integers(0, kh // 2)) if padding else 0
    pw = draw(st.integers(0, kw // 2)) if padding else 0
    dh = draw(st.integers(1, 3)) if dilation else 1
    dw = draw(st.integers(1, 3)) if dilation else 1
    ceil = draw(st.booleans())
    H, W = draw(st.integers(1, 9)), draw(st.integers(1, 9))
    ho, wo = tb.window_shape((H, W), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil)
    assume(ho >= 1 and wo >= 1)
    low = 0 if positive else -6
    X = draw(arrays(np.float64, (H, W), elements=st.integers(low, 6).map(float)))
    return X, dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), ceil_mode=ceil)


@SETTINGS
@given(pool_cases())
def test_maxpool_and_indices_equal_torch(case):
    X, p = case
    ours, indices = tb.pool2d(X, reduction="max", return_indices=True, **p)
    ours, indices = np.array(ours), np.array(indices)
    theirs, their_indices = F.max_pool2d(_t(X), p["kernel_size"], p["stride"], p["padding"], p["dilation"],
                                         p["ceil_mode"], return_indices=True)
    assert np.array_equal(ours, _np(theirs))
    real = np.isfinite(ours)  # a dilated window can miss every real cell: -inf, index not compared
    assert np.array_equal(indices[real], _np(their_indices)[real])


@SETTINGS
@given(pool_cases())
def test_minpool_equals_negated_torch_maxpool_and_the_stage(case):
    from poolcli.kernels import torch as torch_kernels

    X, p = case
    ours = np.array(tb.pool2d(X, reduction="min", **p))
    theirs = -F.max_pool2d(-_t(X), p["kernel_size"], p["stride"], p["padding"], p["dilation"], p["ceil_mode"])
    assert np.array_equal(ours, _np(theirs))
    stage = parse_stage(
        f"minpool:k={p['kernel_size'][0]}x{p['kernel_size'][1]},s={p['stride'][0]}x{p['stride'][1]},"
        f"p={p['padding'][0]}x{p['padding'][1]},d={p['dilation'][0]}x{p['dilation'][1]},ceil={str(p['ceil_mode']).lower()}"
    )
    assert np.array_equal(ours, _np(torch_kernels.apply(stage, _t(X), None)))


@SETTINGS
@given(pool_cases(dilation=False), st.booleans(), st.one_of(st.none(), st.integers(1, 7)))
def test_avgpool_equals_torch(case, count_include_pad, divisor_override):
    X, p = case
    ours = tb.pool2d(X, p["kernel_size"], p["stride"], p["padding"], ceil_mode=p["ceil_mode"], reduction="avg",
                     count_include_pad=count_include_pad, divisor_override=divisor_override)
    theirs = F.avg_pool2d(_t(X), p["kernel_size"], p["stride"], p["padding"], p["ceil_mode"], count_include_pad,
                          divisor_override)
    np.testing.assert_allclose(np.array(ours), _np(theirs), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_cases(padding=False, dilation=False, positive=True), st.sampled_from([1.0, 2.0, 3.0, 1.5]))
def test_lppool_equals_torch(case, norm_type):
    X, p = case
    ours = tb.pool2d(X, p["kernel_size"], p["stride"], ceil_mode=p["ceil_mode"], reduction="lp", norm_type=norm_type)
    theirs = F.lp_pool2d(_t(X), norm_type, p["kernel_size"], p["stride"], p["ceil_mode"])
    np.testing.assert_allclose(np.array(ours), _np(theirs), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(pool_cases(padding=False))
def test_medianpool_equals_torch_median_and_the_stage(case):
    from poolcli.kernels import torch as torch_kernels

    X, p = case
    ours = np.array(tb.pool2d(X, p["kernel_size"], p["stride"], dilation=p["dilation"], ceil_mode=p["ceil_mode"],
                              reduction="median"))
    # torch.median of each window's real cells (lower middle for even counts)
    expected = np.zeros_like(ours)
    for window in tb.windows(X, p["kernel_size"], p["stride"], (0, 0), p["dilation"], p["ceil_mode"]):
        cells = torch.tensor([c.value for c in window.cells if c.kind == tb.REAL], dtype=torch.float64)
        expected[window.out] = torch.median(cells).item()
    assert np.array_equal(ours, expected)
    (kh, kw), (sh, sw), (dh, dw) = p["kernel_size"], p["stride"], p["dilation"]
    stage = parse_stage(f"medianpool:k={kh}x{kw},s={sh}x{sw},d={dh}x{dw},ceil={str(p['ceil_mode']).lower()}")
    assert np.array_equal(ours, _np(torch_kernels.apply(stage, _t(X), None)))


@st.composite
def conv_cases(draw):
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    stride = (draw(st.integers(1, 3)), draw(st.integers(1, 3)))
    dilation = (draw(st.integers(1, 2)), draw(st.integers(1, 2)))
    H, W = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"]))
    limit_h = {"zeros": 3, "reflect": H - 1, "replicate": 3, "circular": H}[mode]
    limit_w = {"zeros": 3, "reflect": W - 1, "replicate": 3, "circular": W}[mode]
    lrtb = tuple(draw(st.integers(0, max(0, min(3, limit)))) for limit in (limit_w, limit_w, limit_h, limit_h))
    ho, wo = tb.window_shape((H, W), (kh, kw), stride, lrtb, dilation)
    assume(ho >= 1 and wo >= 1)
    X = draw(arrays(np.float64, (H, W), elements=st.integers(-5, 5).map(float)))
    K = draw(arrays(np.float64, (kh, kw), elements=st.integers(-3, 3).map(float)))
    return X, K, stride, lrtb, dilation, mode


@SETTINGS
@given(conv_cases())
def test_corr2d_equals_torch_conv2d(case):
    X, K, stride, lrtb, dilation, mode = case
    ours = tb.corr2d(X, K, stride, lrtb, dilation, mode)
    padded = F.pad(_t(X), lrtb, mode="constant" if mode == "zeros" else mode)
    theirs = F.conv2d(padded, torch.from_numpy(K)[None, None], None, stride, 0, dilation)
    np.testing.assert_allclose(np.array(ours), _np(theirs), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(conv_cases())
def test_pad2d_equals_torch_pad(case):
    X, _, _, lrtb, _, mode = case
    torch_mode = "constant" if mode == "zeros" else mode
    ours = tb.pad2d(X, lrtb, torch_mode, value=2.5)
    theirs = F.pad(_t(X), lrtb, mode=torch_mode, **({"value": 2.5} if torch_mode == "constant" else {}))
    assert np.array_equal(np.array(ours), _np(theirs))


@SETTINGS
@given(pool_cases(dilation=False))
def test_unpool2d_equals_torch_max_unpool2d(case):
    X, p = case
    pooled, indices = F.max_pool2d(_t(X), p["kernel_size"], p["stride"], p["padding"], 1, p["ceil_mode"], True)
    assume(bool(torch.isfinite(pooled).all()))
    size = X.shape
    for n, k, st_, pd in zip(size, p["kernel_size"], p["stride"], p["padding"]):
        default = (tb.output_length(n, k, st_, pd, pd, 1, p["ceil_mode"]) - 1) * st_ - 2 * pd + k
        assume(default - st_ < n < default + st_)  # torch's bounds on an explicit output_size
    ours = tb.unpool2d(_np(pooled), _np(indices), size)
    theirs = F.max_unpool2d(pooled, indices, p["kernel_size"], p["stride"], p["padding"], output_size=size)
    assert np.array_equal(np.array(ours), _np(theirs))


@SETTINGS
@given(arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(-9, 9).map(float)),
       st.integers(1, 5), st.integers(1, 5))
def test_adaptive_pools_equal_torch(X, oh, ow):
    np.testing.assert_array_equal(tb.adaptive_pool2d(X, (oh, ow), "max"), _np(F.adaptive_max_pool2d(_t(X), (oh, ow))))
    np.testing.assert_allclose(tb.adaptive_pool2d(X, (oh, ow), "avg"), _np(F.adaptive_avg_pool2d(_t(X), (oh, ow))),
                               rtol=1e-12, atol=1e-12)


@SETTINGS
@given(st.floats(-30, 30, allow_nan=False), st.floats(0.001, 1))
def test_activations_equal_torch(x, slope):
    """The ops' ``element()``: what explain computes for each value."""
    t = torch.tensor([x], dtype=torch.float64)
    assert ReLU().element(x) == F.relu(t).item()
    assert LeakyReLU(slope).element(x) == pytest.approx(F.leaky_relu(t, slope).item(), rel=1e-12, abs=1e-300)
    assert Sigmoid().element(x) == pytest.approx(torch.sigmoid(t).item(), rel=1e-12)
    assert Tanh().element(x) == pytest.approx(torch.tanh(t).item(), rel=1e-12, abs=1e-15)


def test_activations_keep_nan():
    for op in (ReLU(), LeakyReLU(0.2), Sigmoid(), Tanh()):
        assert math.isnan(op.element(math.nan))
