"""Every stage against torch: planned shapes and torch's constraints (both ways), values through
``engine.run_pipeline`` on float32 and on uint8 (maxval=255), and the seeds' golden values."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from poolcli.execute.run import run_pipeline
from poolcli.errors import PlanError, SpecError
from poolcli.core.plan import Pipeline
from poolcli.core.spec import parse_stage
from poolcli.core.ops import OPS as STAGE_CLASSES, create_stage, known_ops

FAST = settings(max_examples=60, deadline=None)
# The golden values run on both engines. The property tests check the stages' own torch kernels
# (stage.apply) by default; POOLCLI_TEST_ENGINES=torch,numpy runs them on the numpy engine too.
ENGINES = ("torch", "numpy")
engines = st.sampled_from(tuple(os.environ.get("POOLCLI_TEST_ENGINES", "torch").split(",")))


# --------------------------------------------------------------------------- helpers


def ours(op: str, values: dict, shape, before=()):
    """Planned output shape, or None where create_stage/plan refuse (SpecError/PlanError only)."""
    try:
        stage = create_stage(op, values)
        return Pipeline([*before, stage]).plan(shape).output_shape
    except (SpecError, PlanError):
        return None


def theirs(fn):
    """torch's output shape, or None where torch refuses or makes an empty dimension."""
    try:
        out = fn()
    except (RuntimeError, ValueError):
        return None
    shape = tuple(out.shape)
    return shape if min(shape) >= 1 else None


def run(specs, array, maxval=1.0, engine="torch", seed=0):
    pipeline = Pipeline([parse_stage(s) if isinstance(s, str) else s for s in specs])
    return run_pipeline(pipeline, array, maxval=maxval, engine=engine, seed=seed)


def values(specs, array, **kw) -> np.ndarray:
    return run(specs, array, **kw).values()


def t(array) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array))


def u8(expected: torch.Tensor | np.ndarray) -> np.ndarray:
    """What values() gives for an 8-bit result: data / 255 in float32."""
    array = expected.numpy() if isinstance(expected, torch.Tensor) else expected
    return array.astype(np.float32) / np.float32(255)


def integer_data(result) -> bool:
    data = result.data
    kind = data.dtype.kind if isinstance(data, np.ndarray) else ("f" if data.is_floating_point() else "i")
    return kind in "iu"


pairs = lambda lo, hi: st.tuples(st.integers(lo, hi), st.integers(lo, hi))  # noqa: E731


@st.composite
def nchw(draw, hw=(1, 13)):
    return (draw(st.integers(1, 2)), draw(st.integers(1, 3)), draw(st.integers(*hw)), draw(st.integers(*hw)))


@st.composite
def window(draw, padding=True, dilation=True, valid=False):
    """Pool parameters; ``valid``: only paddings torch accepts (padding ≤ kernel_size // 2)."""
    kernel = draw(pairs(1, 5))
    params = {"kernel_size": kernel, "stride": draw(st.none() | pairs(1, 4)), "ceil_mode": draw(st.booleans())}
    if padding:
        if valid:
            params["padding"] = (draw(st.integers(0, kernel[0] // 2)), draw(st.integers(0, kernel[1] // 2)))
        else:
            params["padding"] = draw(pairs(0, 3))
    if dilation:
        params["dilation"] = draw(pairs(1, 3))
    return params


def torch_window(params):
    """(kernel, stride, padding, dilation, ceil) as torch's functional takes them."""
    k = params["kernel_size"]
    return (
        k, params["stride"] or k, params.get("padding", (0, 0)), params.get("dilation", (1, 1)), params["ceil_mode"]
    )


def random_array(shape, dtype, seed, low=0.0, high=1.0):
    rng = np.random.default_rng(seed)
    if dtype == np.uint8:
        return rng.integers(0, 256, size=shape, dtype=np.uint8)
    return rng.uniform(low, high, size=shape).astype(np.float32)


dtypes = st.sampled_from([np.float32, np.uint8])


def as_float(array):
    """The float input in the user's scale: uint8 / 255."""
    return array.astype(np.float32) / np.float32(255) if array.dtype == np.uint8 else array


# --------------------------------------------------------------------------- the catalogue


def test_every_op_has_a_class_and_the_contract_names():
    assert known_ops() == [cls.op for cls in STAGE_CLASSES]
    for op in (
        "maxpool", "avgpool", "minpool", "lppool", "medianpool", "adaptivemaxpool", "adaptiveavgpool",
        "globalmaxpool", "globalavgpool", "fractionalmaxpool", "maxunpool", "pad", "conv", "relu",
        "sigmoid", "tanh", "leakyrelu", "grayscale", "flatten", "linear",
    ):
        assert op in known_ops()


# --------------------------------------------------------------------------- max / min / avg


@FAST
@given(window(), nchw())
def test_maxpool_shape_and_constraints_match_torch(params, shape):
    k, s, p, d, ceil = torch_window(params)
    expected = theirs(lambda: F.max_pool2d(torch.zeros(shape), k, s, p, d, ceil))
    assert ours("maxpool", params, shape) == expected
    assert ours("minpool", params, shape) == expected


@pytest.mark.parametrize("k, p, d", [(3, 1, 2), (3, 2, 2), (2, 1, 3), (1, 1, 4), (4, 2, 1), (5, 3, 1), (5, 2, 3)])
def test_pool_padding_rule_ignores_dilation_as_torch(k, p, d):
    """torch: padding ≤ kernel_size // 2, whatever the dilation (not half the effective kernel)."""
    accepted = theirs(lambda: F.max_pool2d(torch.zeros(1, 1, 30, 30), k, 1, p, d)) is not None
    assert (ours("maxpool", {"kernel_size": k, "stride": 1, "padding": p, "dilation": d}, (1, 1, 30, 30)) is not None) == accepted
    assert accepted == (p <= k // 2)


def test_padding_error_message_names_the_rule():
    with pytest.raises(SpecError) as info:
        create_stage("maxpool", {"kernel_size": 3, "padding": 2, "dilation": 2})
    assert "padding=2" in str(info.value) and "kernel_size=3" in str(info.value)
    assert "kernel_size // 2" in str(info.value)


@FAST
@given(window(valid=True), nchw(hw=(4, 13)), dtypes, engines, st.integers(0, 10**6))
def test_maxpool_and_minpool_values_match_torch(params, shape, dtype, engine, seed):
    k, s, p, d, ceil = torch_window(params)
    assume(theirs(lambda: F.max_pool2d(torch.zeros(shape), k, s, p, d, ceil)) is not None)
    x = random_array(shape, dtype, seed, -1.0, 1.0)
    stage_max, stage_min = create_stage("maxpool", params), create_stage("minpool", params)
    if dtype == np.uint8:
        expected_max = u8(F.max_pool2d(t(x), k, s, p, d, ceil))
        expected_min = u8((-F.max_pool2d(-t(x).int(), k, s, p, d, ceil)).to(torch.uint8))
        for stage, expected in ((stage_max, expected_max), (stage_min, expected_min)):
            result = run([stage], x, 255, engine)
            assert integer_data(result), f"{stage.op} left the integer dtype"
            assert np.array_equal(result.values(), expected)
    else:
        assert np.array_equal(values([stage_max], x, engine=engine), F.max_pool2d(t(x), k, s, p, d, ceil).numpy())
        expected_min = (-F.max_pool2d(-t(x), k, s, p, d, ceil)).numpy()
        assert np.array_equal(values([stage_min], x, engine=engine), expected_min)


@st.composite
def avg_params(draw, valid=False):
    params = draw(window(dilation=False, valid=valid))
    params["count_include_pad"] = draw(st.booleans())
    params["divisor_override"] = draw(st.none() | st.integers(-3, 5))
    return params


@FAST
@given(avg_params(), nchw())
def test_avgpool_shape_and_constraints_match_torch(params, shape):
    k, s, p, _, ceil = torch_window(params)
    expected = theirs(
        lambda: F.avg_pool2d(
            torch.zeros(shape), k, s, p, ceil, params["count_include_pad"], params["divisor_override"]
        )
    )
    assert ours("avgpool", params, shape) == expected


@FAST
@given(avg_params(valid=True), nchw(hw=(4, 13)), dtypes, engines, st.integers(0, 10**6))
def test_avgpool_values_match_torch(params, shape, dtype, engine, seed):
    k, s, p, _, ceil = torch_window(params)
    include, divisor = params["count_include_pad"], params["divisor_override"]
    assume(theirs(lambda: F.avg_pool2d(torch.zeros(shape), k, s, p, ceil, include, divisor)) is not None)
    x = random_array(shape, dtype, seed)
    expected = F.avg_pool2d(t(x).float(), k, s, p, ceil, include, divisor).numpy()
    if dtype == np.uint8:
        expected = expected / np.float32(255)
    got = values([create_stage("avgpool", params)], x, maxval=255 if dtype == np.uint8 else 1, engine=engine)
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- lp / median


@st.composite
def lp_params(draw):
    params = draw(window(padding=False, dilation=False))
    params["norm_type"] = draw(st.sampled_from([1, 2, 3, 0.5, 1.5, 4, 20]))
    return params


@FAST
@given(lp_params(), nchw())
def test_lppool_shape_matches_torch(params, shape):
    k, s, _, _, ceil = torch_window(params)
    expected = theirs(lambda: F.lp_pool2d(torch.zeros(shape), params["norm_type"], k, s, ceil))
    assert ours("lppool", params, shape) == expected


@FAST
@given(lp_params(), nchw(), dtypes, engines, st.integers(0, 10**6))
def test_lppool_values_match_torch(params, shape, dtype, engine, seed):
    k, s, _, _, ceil = torch_window(params)
    assume(theirs(lambda: F.lp_pool2d(torch.zeros(shape), 2, k, s, ceil)) is not None)
    x = random_array(shape, dtype, seed)
    expected = F.lp_pool2d(t(as_float(x)), params["norm_type"], k, s, ceil).numpy()  # float32 as torch
    got = values([create_stage("lppool", params)], x, maxval=255 if dtype == np.uint8 else 1, engine=engine)
    assert np.all(np.isfinite(got))
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-6)


def test_lppool_high_norm_on_16_bit_does_not_overflow():
    x = np.full((1, 1, 4, 4), 65535, dtype=np.uint16)
    for engine in ENGINES:
        got = values(["lppool:8,k=2"], x, maxval=65535, engine=engine)
        assert np.allclose(got, 4 ** (1 / 8)), engine


def median_oracle(x: np.ndarray, k, s, d, ceil) -> np.ndarray:
    """The textbook loop: only real pixels count, the lower middle value for even counts."""
    n, c, h, w = x.shape
    from poolcli.core.arithmetic import pool_output_size

    ho = pool_output_size(h, k[0], s[0], 0, d[0], ceil).size
    wo = pool_output_size(w, k[1], s[1], 0, d[1], ceil).size
    out = np.zeros((n, c, ho, wo), dtype=x.dtype)
    for i in range(ho):
        rows = [i * s[0] + a * d[0] for a in range(k[0]) if i * s[0] + a * d[0] < h]
        for j in range(wo):
            cols = [j * s[1] + b * d[1] for b in range(k[1]) if j * s[1] + b * d[1] < w]
            window = x[:, :, rows][:, :, :, cols].reshape(n, c, -1)
            ordered = np.sort(window, axis=-1)
            out[:, :, i, j] = ordered[:, :, (ordered.shape[-1] - 1) // 2]
    return out


@FAST
@given(window(padding=False), nchw(), dtypes, engines, st.integers(0, 10**6))
def test_medianpool_shape_and_values(params, shape, dtype, engine, seed):
    k, s, _, d, ceil = torch_window(params)
    expected_shape = theirs(lambda: F.max_pool2d(torch.zeros(shape), k, s, 0, d, ceil))
    assert ours("medianpool", params, shape) == expected_shape
    if expected_shape is None:
        return
    x = random_array(shape, dtype, seed)
    result = run([create_stage("medianpool", params)], x, 255 if dtype == np.uint8 else 1, engine)
    expected = median_oracle(x, k, s, d, ceil)
    if dtype == np.uint8:
        assert integer_data(result)
        assert np.array_equal(result.values(), u8(expected))
    else:
        assert np.array_equal(result.values(), expected)


def test_medianpool_even_window_takes_the_lower_middle_like_torch_median():
    x = np.array([[[[1, 4], [2, 3]]]], dtype=np.float32)
    for engine in ENGINES:
        assert values(["medianpool:2"], x, engine=engine).item() == 2
    assert torch.median(t(x)).item() == 2


def test_medianpool_ceil_overhang_counts_only_real_pixels():
    # 3 wide, k=2, s=2, ceil: the last window holds one real column → median of [2, 5] is 2
    x = np.array([[[[0, 1, 2], [3, 4, 5]]]], dtype=np.float32)
    for engine in ENGINES:
        got = values(["medianpool:2,ceil=true"], x, engine=engine)
        assert got.tolist() == [[[[1, 2]]]], engine


# --------------------------------------------------------------------------- adaptive / global


@FAST
@given(
    st.sampled_from(["adaptivemaxpool", "adaptiveavgpool"]),
    st.tuples(st.none() | st.integers(1, 9), st.none() | st.integers(1, 9)),
    nchw(),
    dtypes,
    engines,
    st.integers(0, 10**6),
)
def test_adaptive_pools_match_torch(op, size, shape, dtype, engine, seed):
    fn = F.adaptive_max_pool2d if op == "adaptivemaxpool" else F.adaptive_avg_pool2d
    expected_shape = theirs(lambda: fn(torch.zeros(shape), size))
    assert ours(op, {"output_size": size}, shape) == expected_shape
    x = random_array(shape, dtype, seed)
    result = run([create_stage(op, {"output_size": size})], x, 255 if dtype == np.uint8 else 1, engine)
    if op == "adaptivemaxpool" and dtype == np.uint8:
        assert integer_data(result)
        assert np.array_equal(result.values(), u8(fn(t(x).float(), size)))
    else:
        assert np.allclose(result.values(), fn(t(as_float(x)).double(), size).numpy(), rtol=1e-5, atol=1e-6)


@FAST
@given(nchw(), dtypes, engines, st.integers(0, 10**6))
def test_global_pools(shape, dtype, engine, seed):
    n, c, _, _ = shape
    assert ours("globalmaxpool", {}, shape) == ours("globalavgpool", {}, shape) == (n, c, 1, 1)
    x = random_array(shape, dtype, seed)
    maxval = 255 if dtype == np.uint8 else 1
    got_max = values(["globalmaxpool"], x, maxval=maxval, engine=engine)
    got_avg = values(["globalavgpool"], x, maxval=maxval, engine=engine)
    assert np.array_equal(got_max, as_float(x).max(axis=(2, 3), keepdims=True))
    expected_avg = F.adaptive_avg_pool2d(t(as_float(x)).double(), 1).numpy()
    assert np.allclose(got_avg, expected_avg, rtol=1e-5)


def test_adaptive_output_larger_than_input_is_allowed_as_in_torch():
    assert ours("adaptiveavgpool", {"output_size": (5, 7)}, (1, 1, 3, 3)) == (1, 1, 5, 7)


# --------------------------------------------------------------------------- fractional


@FAST
@given(
    pairs(1, 4),
    st.one_of(
        st.tuples(st.just("output_size"), pairs(1, 12)),
        st.tuples(st.just("output_ratio"), st.tuples(st.floats(0.05, 0.95), st.floats(0.05, 0.95))),
    ),
    nchw(),
    st.integers(0, 1000),
)
def test_fractionalmaxpool_shape_constraints_and_windows(kernel, how, shape, seed):
    name, value = how
    expected = theirs(lambda: F.fractional_max_pool2d(torch.zeros(shape), kernel, **{name: value}))
    params = {"kernel_size": kernel, name: value}
    assert ours("fractionalmaxpool", params, shape) == expected
    if expected is None:
        return
    x = random_array(shape, np.float32, seed)
    first = values([create_stage("fractionalmaxpool", params)], x, seed=seed)
    again = values([create_stage("fractionalmaxpool", params)], x, seed=seed)
    assert first.shape == expected and np.array_equal(first, again)
    # every output is the maximum of some kernel-sized window of its own plane
    windows = np.lib.stride_tricks.sliding_window_view(x, kernel, axis=(2, 3)).max(axis=(-2, -1))
    for i in range(shape[0]):
        for ch in range(shape[1]):
            assert set(first[i, ch].ravel()) <= set(windows[i, ch].ravel())


def test_fractionalmaxpool_needs_exactly_one_of_size_and_ratio():
    with pytest.raises(SpecError, match="exactly one"):
        create_stage("fractionalmaxpool", {"kernel_size": 2})
    with pytest.raises(SpecError, match="exactly one"):
        create_stage("fractionalmaxpool", {"kernel_size": 2, "output_size": 3, "output_ratio": 0.5})
    with pytest.raises(SpecError, match="between 0 and 1"):
        create_stage("fractionalmaxpool", {"kernel_size": 2, "output_ratio": 1.5})


# --------------------------------------------------------------------------- maxunpool


@FAST
@given(window(valid=True), nchw(hw=(4, 13)), dtypes, engines, st.integers(0, 10**6))
def test_maxunpool_restores_the_pooled_input(params, shape, dtype, engine, seed):
    k, s, p, d, ceil = torch_window(params)
    assume(theirs(lambda: F.max_pool2d(torch.zeros(shape), k, s, p, d, ceil)) is not None)
    pool = create_stage("maxpool", params)
    plan = Pipeline([pool, parse_stage("maxunpool")]).plan(shape)
    assert plan.output_shape == shape
    assert plan.unpool_pairs == {1: 0}
    x = random_array(shape, dtype, seed)
    y, indices = F.max_pool2d(t(x).float(), k, s, p, d, ceil, return_indices=True)
    span = tuple(dd * (kk - 1) + 1 for kk, dd in zip(k, d))
    expected = F.max_unpool2d(y, indices, span, s, p, output_size=shape[-2:]).numpy()
    result = run([pool, "maxunpool"], x, 255 if dtype == np.uint8 else 1, engine)
    got = result.values()
    if dtype == np.uint8:
        assert integer_data(result)
        expected = u8(expected)
    assert got.shape == shape
    assert np.array_equal(got, expected)
    # values at the argmax positions, zeros elsewhere
    flat = as_float(x).reshape(shape[0], shape[1], -1)
    kept = got.reshape(shape[0], shape[1], -1)
    nonzero = kept != 0
    assert np.array_equal(kept[nonzero], flat[nonzero])


def test_maxunpool_seed_example_and_odd_sizes():
    x = np.arange(49, dtype=np.float32).reshape(1, 1, 7, 7)
    for engine in ENGINES:
        got = values(["nn.MaxPool2d(2, return_indices=True)", "nn.MaxUnpool2d(2)"], x, engine=engine)
        assert got.shape == (1, 1, 7, 7)
        expected = np.zeros_like(x)
        for i in (1, 3, 5):
            for j in (1, 3, 5):
                expected[0, 0, i, j] = x[0, 0, i, j]
        assert np.array_equal(got, expected), engine


@FAST
@given(st.integers(1, 4), st.integers(1, 4), st.integers(2, 12), st.integers(1, 30), st.integers(1, 30))
def test_maxunpool_explicit_output_size_bounds_match_torch(k, s, n, oh, ow):
    pool = create_stage("maxpool", {"kernel_size": k, "stride": s})
    assume(ours("maxpool", {"kernel_size": k, "stride": s}, (1, 1, n, n)) is not None)
    pooled = Pipeline([pool]).plan((1, 1, n, n)).output_shape
    idx = torch.zeros(pooled, dtype=torch.int64)
    expected = theirs(lambda: F.max_unpool2d(torch.zeros(pooled), idx, k, s, output_size=(oh, ow)))
    assert ours("maxunpool", {"output_size": (oh, ow)}, (1, 1, n, n), before=[pool]) == expected


# --------------------------------------------------------------------------- conv


@st.composite
def conv_case(draw):
    kh, kw = draw(pairs(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 10**6)))
    weight = np.round(rng.uniform(-2, 2, size=(kh, kw)), 2)
    params = {
        "weight": weight.tolist(),
        "stride": draw(pairs(1, 3)),
        "padding": draw(st.sampled_from(["same", "valid"]) | pairs(0, 4)),
        "dilation": draw(pairs(1, 3)),
        "padding_mode": draw(st.sampled_from(["zeros", "reflect", "replicate", "circular"])),
        "channels": draw(st.sampled_from(["depthwise", "sum"])),
        "bias": draw(st.sampled_from([0, 0.5])),
    }
    return params, weight


def torch_conv(params, weight, channels):
    out = channels if params["channels"] == "depthwise" else 1
    groups = channels if params["channels"] == "depthwise" else 1
    kh, kw = weight.shape
    layer = nn.Conv2d(
        channels, out, (kh, kw), params["stride"], params["padding"], params["dilation"], groups,
        bias=bool(params["bias"]), padding_mode=params["padding_mode"], dtype=torch.float64,
    )
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(weight).expand_as(layer.weight))
        if params["bias"]:
            layer.bias.fill_(params["bias"])
    return layer


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@FAST
@given(conv_case(), nchw(), dtypes, engines, st.integers(0, 10**6))
def test_conv_matches_nn_conv2d(case, shape, dtype, engine, seed):
    params, weight = case
    try:
        layer = torch_conv(params, weight, shape[1])
    except (ValueError, RuntimeError):
        layer = None
    expected_shape = theirs(lambda: layer(torch.zeros(shape, dtype=torch.float64))) if layer else None
    assert ours("conv", params, shape) == expected_shape
    if expected_shape is None:
        return
    x = random_array(shape, dtype, seed)
    with torch.no_grad():
        expected = layer(t(as_float(x)).double()).numpy()
    got = values([create_stage("conv", params)], x, maxval=255 if dtype == np.uint8 else 1, engine=engine)
    assert np.allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["sobel-x", "sobel-y", "laplacian", "edge", "box", "gaussian", "emboss"])
def test_named_filters_are_cross_correlation(name):
    from poolcli.core.filters import named_filter

    kernel = torch.tensor(named_filter(name), dtype=torch.float64)
    x = random_array((1, 2, 9, 8), np.float32, 3)
    expected = F.conv2d(t(x).double(), kernel.expand(2, 1, *kernel.shape), padding=0, groups=2).numpy()
    for engine in ENGINES:
        assert np.allclose(values([f"conv:{name}"], x, engine=engine), expected, atol=1e-5), engine


def test_nn_conv2d_random_weights_shape_params_and_seed():
    stage = parse_stage("nn.Conv2d(3, 4, kernel_size=3, padding=1)")
    plan = Pipeline([stage]).plan((2, 3, 8, 8))
    assert plan.output_shape == (2, 4, 8, 8)
    assert plan.params_count == sum(p.numel() for p in nn.Conv2d(3, 4, 3, padding=1).parameters())
    x = random_array((2, 3, 8, 8), np.float32, 1)
    a = values([stage], x, seed=5)
    assert np.array_equal(a, values([stage], x, seed=5))
    assert not np.array_equal(a, values([stage], x, seed=6))
    groups = parse_stage("nn.Conv2d(4, 6, 3, groups=2, bias=False)")
    assert Pipeline([groups]).plan((1, 4, 5, 5)).params_count == 6 * 2 * 9
    with pytest.raises(PlanError, match="in_channels"):
        Pipeline([stage]).plan((1, 1, 8, 8))
    with pytest.raises(SpecError, match="divisible by groups"):
        parse_stage("nn.Conv2d(3, 6, 3, groups=2)")


def test_conv_3d_and_4d_weights():
    x = random_array((1, 2, 6, 6), np.float32, 7)
    w3 = np.array([[[1, 0], [0, 0]], [[0, 0], [0, 2]]], dtype=np.float32)
    got = values([create_stage("conv", {"weight": w3.tolist()})], x)
    expected = F.conv2d(t(x), t(w3)[:, None], groups=2).numpy()
    assert np.allclose(got, expected)
    got = values([create_stage("conv", {"weight": w3.tolist(), "channels": "sum"})], x)
    assert np.allclose(got, F.conv2d(t(x), t(w3)[None]).numpy())
    w4 = np.ones((3, 2, 2, 2), dtype=np.float32)
    got = values([create_stage("conv", {"weight": w4.tolist()})], x)
    assert np.allclose(got, F.conv2d(t(x), t(w4)).numpy())
    with pytest.raises(PlanError, match="C=2"):
        Pipeline([create_stage("conv", {"weight": w3.tolist()})]).plan((1, 3, 6, 6))
    # a 4-D weight whose O is not divisible by the groups C/I gives: torch refuses it too
    w_bad = np.ones((3, 1, 2, 2), dtype=np.float32)
    assert theirs(lambda: F.conv2d(torch.zeros(1, 2, 6, 6), t(w_bad), groups=2)) is None
    assert ours("conv", {"weight": w_bad.tolist()}, (1, 2, 6, 6)) is None


@pytest.mark.parametrize(
    "values, token",
    [
        ({"filter": "box", "kernel_size": (3, 5)}, "kernel_size=3x5"),
        ({"filter": "box", "sigma": 2}, "sigma=2"),
        ({"filter": "sobel-x", "kernel_size": 5}, "sobel-x"),
        ({"weight": "0 1; 2 3", "kernel_size": 3}, "kernel_size=3"),
        ({"weight": "0 1; 2 3", "groups": 2}, "groups=2"),
        ({"weight": "0 1; 2 3", "filter": "edge"}, "filter, weight"),
        ({}, "exactly one"),
        ({"weight": "0 1; 2 3", "padding": "same", "stride": 2}, "stride 1"),
        ({"weight": "0 1; 2 3", "bias": True}, "bias=true"),
        ({"in_channels": 2, "out_channels": 3}, "kernel_size"),
    ],
)
def test_conv_parameter_conflicts(values, token):
    with pytest.raises(SpecError) as info:
        create_stage("conv", values)
    assert token in str(info.value)


def test_random_conv_with_a_constant_bias():
    stage = create_stage("conv", {"in_channels": 1, "out_channels": 2, "kernel_size": 1, "bias": 0.5})
    with_bias = values([stage], np.zeros((1, 1, 3, 3), np.float32))
    assert np.all(with_bias == 0.5)
    assert Pipeline([stage]).plan((1, 1, 3, 3)).params_count == 4


def test_conv_weight_file(tmp_path):
    np.save(tmp_path / "k.npy", np.array([[0, 1], [2, 3]], dtype=np.float32))
    (tmp_path / "k.csv").write_text("0,1\n2,3\n")
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    from poolcli.io.specs import read_weight_files

    for name in ("k.npy", "k.csv"):
        [stage] = read_weight_files([create_stage("conv", {"weight_file": str(tmp_path / name)})])
        assert values([stage], x).tolist() == [[[[19, 25], [37, 43]]]]
    np.save(tmp_path / "flat.npy", np.arange(3, dtype=np.float32))
    (tmp_path / "empty.npy").write_bytes(b"")
    np.save(tmp_path / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    for name in ("flat.npy", "empty.npy", "pickled.npy", "missing.npy"):
        with pytest.raises(SpecError) as info:
            read_weight_files([create_stage("conv", {"weight_file": str(tmp_path / name)})])
        assert name in str(info.value)


# --------------------------------------------------------------------------- pad


@FAST
@given(
    st.tuples(*[st.integers(0, 5)] * 4),
    st.sampled_from(["constant", "reflect", "replicate", "circular"]),
    st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.0]),
    nchw(hw=(1, 6)),
    dtypes,
    engines,
    st.integers(0, 10**6),
)
def test_pad_matches_torch(padding, mode, value, shape, dtype, engine, seed):
    extra = {"value": value} if mode == "constant" else {}
    expected_shape = theirs(lambda: F.pad(torch.zeros(shape), padding, mode=mode, **extra))
    params = {"padding": padding, "mode": mode, **extra}
    assert ours("pad", params, shape) == expected_shape
    if expected_shape is None:
        return
    x = random_array(shape, dtype, seed)
    result = run([create_stage("pad", params)], x, 255 if dtype == np.uint8 else 1, engine)
    expected = F.pad(t(as_float(x)).double(), padding, mode=mode, **extra).numpy()
    assert np.allclose(result.values(), expected, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("value", [-1.0, 2.0, 0.5])
def test_pad_values_outside_the_8_bit_range(engine, value):
    x = np.full((1, 1, 2, 2), 100, dtype=np.uint8)
    got = values([f"pad:1,value={value}"], x, maxval=255, engine=engine)
    assert got[0, 0, 0].tolist() == [value] * 4
    assert np.allclose(got[0, 0, 1:3, 1:3], 100 / 255)


def test_pad_spellings():
    assert parse_stage("nn.ZeroPad2d((1, 1, 2, 0))").padding == (1, 1, 2, 0)
    assert parse_stage("pad:2x1").padding == (1, 1, 2, 2)
    assert parse_stage("nn.ReflectionPad2d(2)").mode == "reflect"
    assert Pipeline([parse_stage("nn.ZeroPad2d((1, 1, 2, 0))")]).plan((1, 1, 4, 4)).output_shape == (1, 1, 6, 6)


# --------------------------------------------------------------------------- activations, grayscale


@FAST
@given(
    st.sampled_from(["relu", "sigmoid", "tanh", "leakyrelu", "leakyrelu:0.2"]),
    nchw(),
    dtypes,
    engines,
    st.integers(0, 10**6),
)
def test_activations_match_torch(spec, shape, dtype, engine, seed):
    fns = {
        "relu": F.relu, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
        "leakyrelu": F.leaky_relu, "leakyrelu:0.2": lambda v: F.leaky_relu(v, 0.2),
    }
    assert Pipeline([parse_stage(spec)]).plan(shape).output_shape == shape
    x = random_array(shape, dtype, seed, -2.0, 2.0)
    expected = fns[spec](t(as_float(x)).double()).numpy()
    got = values([spec], x, maxval=255 if dtype == np.uint8 else 1, engine=engine)
    assert np.allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("engine", ENGINES)
def test_grayscale_is_itu_601_luma(engine):
    """8-bit pictures get Pillow's mode L exactly (DESIGN §2): its fixed point, not float weights."""
    from PIL import Image

    x = random_array((1, 4, 3, 5), np.uint8, 0)
    got = values(["grayscale"], x, maxval=255, engine=engine)
    pillow_l = np.asarray(Image.fromarray(np.ascontiguousarray(x[0, :3].transpose(1, 2, 0))).convert("L"))
    expected = pillow_l[None, None].astype(np.float32) / 255
    assert got.shape == (1, 1, 3, 5)
    assert np.array_equal(got, expected)
    floats = random_array((1, 3, 3, 5), np.float32, 2)
    luma = 0.299 * floats[:, 0:1] + 0.587 * floats[:, 1:2] + 0.114 * floats[:, 2:3]
    assert np.allclose(values(["grayscale"], floats, engine=engine), luma, atol=1e-6)
    la = random_array((1, 2, 3, 5), np.float32, 1)
    assert np.array_equal(values(["grayscale"], la, engine=engine), la[:, :1])
    with pytest.raises(PlanError, match="C=5"):
        Pipeline([parse_stage("grayscale")]).plan((1, 5, 3, 3))


# --------------------------------------------------------------------------- flatten, linear


def test_flatten_and_linear_match_torch():
    plan = Pipeline.from_specs(["flatten", "nn.Linear(48, 10)"]).plan((2, 3, 4, 4))
    assert [s.output_shape for s in plan.stages] == [(2, 48), (2, 10)]
    assert plan.stages[1].params_count == sum(p.numel() for p in nn.Linear(48, 10).parameters())
    assert plan.stages[1].ops == 2 * 48 * 10
    assert Pipeline.from_specs(["flatten", "linear:10,bias=false"]).plan((1, 3, 4, 4)).params_count == 480
    x = random_array((2, 3, 4, 4), np.float32, 0)
    a = values(["flatten", "linear:10,seed=3"], x)
    assert a.shape == (2, 10) and np.allclose(a, values(["flatten", "linear:10,seed=3"], x, engine="numpy"), atol=1e-6)
    assert np.array_equal(a, values(["flatten", "linear:10,seed=3"], x))
    with pytest.raises(PlanError, match="expects 400 input features, got 48"):
        Pipeline.from_specs(["flatten", "nn.Linear(400, 120)"]).plan((2, 3, 4, 4))
    with pytest.raises(PlanError, match="flatten"):
        Pipeline.from_specs(["linear:10"]).plan((2, 3, 4, 4))
    with pytest.raises(PlanError, match="N×C×H×W"):
        Pipeline.from_specs(["flatten", "maxpool:2"]).plan((2, 3, 4, 4))


# --------------------------------------------------------------------------- the seeds' golden values


X9 = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
X16 = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)


@pytest.mark.parametrize("engine", ENGINES)
def test_d2l_pool2d(engine):
    assert values(["maxpool:2,s=1"], X9, engine=engine).tolist() == [[[[4, 5], [7, 8]]]]
    assert values(["avgpool:2,s=1"], X9, engine=engine).tolist() == [[[[2, 3], [5, 6]]]]


@pytest.mark.parametrize("engine", ENGINES)
def test_d2l_padding_and_stride(engine):
    assert values(["nn.MaxPool2d(3)"], X16, engine=engine).tolist() == [[[[10]]]]
    assert values(["nn.MaxPool2d(3, padding=1, stride=2)"], X16, engine=engine).tolist() == [[[[5, 7], [13, 15]]]]
    spec = "nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))"
    assert values([spec], X16, engine=engine).tolist() == [[[[5, 7], [13, 15]]]]
    two = np.concatenate([X16, X16 + 1], axis=1)
    got = values(["nn.MaxPool2d(3, padding=1, stride=2)"], two, engine=engine)
    assert got.tolist() == [[[[5, 7], [13, 15]], [[6, 8], [14, 16]]]]
    as_u8 = values([spec], X16.astype(np.uint8), maxval=255, engine=engine)
    assert np.array_equal(as_u8 * 255, [[[[5, 7], [13, 15]]]])


SEED2 = np.array(
    [[[[0, 0, 0, 0], [1, 1, 1, 1], [2, 2, 2, 2], [3, 3, 3, 3]],
      [[4, 4, 4, 4], [5, 5, 5, 5], [6, 6, 6, 6], [7, 7, 7, 7]]]],
    dtype=np.float32,
)


@pytest.mark.parametrize("engine", ENGINES)
def test_pooling_notes_two_channel_seed(engine):
    got = values(["maxpool:2"], SEED2, engine=engine)
    assert got.tolist() == [[[[1, 1], [3, 3]], [[5, 5], [7, 7]]]]
    got = values(["maxpool:2,s=1"], SEED2, engine=engine)
    assert got.tolist() == [[[[1] * 3, [2] * 3, [3] * 3], [[5] * 3, [6] * 3, [7] * 3]]]
    got = values(["avgpool:2,s=1,p=1"], SEED2, engine=engine)
    assert np.allclose(got[0, 0], [
        [0, 0, 0, 0, 0], [0.25, 0.5, 0.5, 0.5, 0.25], [0.75, 1.5, 1.5, 1.5, 0.75],
        [1.25, 2.5, 2.5, 2.5, 1.25], [0.75, 1.5, 1.5, 1.5, 0.75],
    ])
    assert np.allclose(got[0, 1], [
        [1, 2, 2, 2, 1], [2.25, 4.5, 4.5, 4.5, 2.25], [2.75, 5.5, 5.5, 5.5, 2.75],
        [3.25, 6.5, 6.5, 6.5, 3.25], [1.75, 3.5, 3.5, 3.5, 1.75],
    ])
    assert values(["avgpool:4"], SEED2, engine=engine).ravel().tolist() == [1.5, 5.5]
    assert values(["globalavgpool"], SEED2, engine=engine).ravel().tolist() == [1.5, 5.5]
    got = values(["nn.AvgPool2d((2, 2), stride=(2, 2), divisor_override=3)"], np.ones((1, 1, 4, 4), np.float32), engine=engine)
    assert np.allclose(got, 4 / 3) and got.shape == (1, 1, 2, 2)


@pytest.mark.parametrize("engine", ENGINES)
def test_conv_seeds(engine):
    assert values(["conv:weight=0 1; 2 3"], X9, engine=engine).tolist() == [[[[19, 25], [37, 43]]]]
    x = np.ones((1, 1, 6, 8), dtype=np.float32)
    x[..., 2:6] = 0
    got = values(["conv:edge"], x, engine=engine)
    assert got.shape == (1, 1, 6, 7)
    assert np.array_equal(got[0, 0], np.tile([0, 1, 0, 0, 0, -1, 0], (6, 1)))
    two = np.concatenate([X9, X9 + 1], axis=1)
    got = values(["conv:weight=[[[0,1],[2,3]],[[1,2],[3,4]]],channels=sum"], two, engine=engine)
    assert got.tolist() == [[[[56, 72], [104, 120]]]]


# The seed's LeNet, line by line as the tutorial writes it inside nn.Sequential (trailing commas,
# comments and 16*5*5 included).
LENET = """\
nn.Conv2d(in_channels=1, out_channels=6, kernel_size=5, padding=2), #b*1*28*28 =>b*6*28*28
nn.Sigmoid(),
nn.AvgPool2d(kernel_size=2, stride=2), #b*6*28*28 =>b*6*14*14
nn.Conv2d(in_channels=6, out_channels=16, kernel_size=5), #b*6*14*14 =>b*16*10*10
nn.Sigmoid(),
nn.AvgPool2d(kernel_size=2, stride=2), #b*16*10*10 => b*16*5*5
nn.Flatten(), #b*16*5*5 => b*400
nn.Linear(in_features=16*5*5, out_features=120),
nn.Sigmoid(),
nn.Linear(120, 84),
nn.Sigmoid(),
nn.Linear(84, 10)
""".splitlines()


def test_lenet_shape_trace_and_params():
    b = 4
    plan = Pipeline.from_specs(LENET).plan((b, 1, 28, 28))
    assert [s.output_shape for s in plan.stages] == [
        (b, 6, 28, 28), (b, 6, 28, 28), (b, 6, 14, 14), (b, 16, 10, 10), (b, 16, 10, 10), (b, 16, 5, 5),
        (b, 400), (b, 120), (b, 120), (b, 84), (b, 84), (b, 10),
    ]
    assert [s.params_count for s in plan.stages] == [156, 0, 0, 2416, 0, 0, 0, 48120, 0, 10164, 0, 850]
    torch_net = nn.Sequential(
        nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.Sigmoid(), nn.AvgPool2d(2, 2),
        nn.Conv2d(6, 16, kernel_size=5), nn.Sigmoid(), nn.AvgPool2d(2, 2), nn.Flatten(),
        nn.Linear(400, 120), nn.Sigmoid(), nn.Linear(120, 84), nn.Sigmoid(), nn.Linear(84, 10),
    )
    assert plan.params_count == sum(p.numel() for p in torch_net.parameters())
    assert [s.receptive_field for s in plan.stages][:6] == [(5, 5), (5, 5), (6, 6), (14, 14), (14, 14), (16, 16)]
    assert [s.jump for s in plan.stages][:6] == [(1, 1), (1, 1), (2, 2), (2, 2), (2, 2), (4, 4)]
    x = random_array((b, 1, 28, 28), np.float32, 0)
    out = values(LENET, x)
    assert out.shape == (b, 10) and np.all(np.isfinite(out))


# --------------------------------------------------------------------------- ops and labels


def test_ops_count_window_elements_and_multiply_adds():
    plan = Pipeline.from_specs(["maxpool:2", "conv:weight=0 1; 2 3", "relu"]).plan((1, 3, 512, 512))
    assert plan.stages[0].ops == 3 * 256 * 256 * 4
    assert plan.stages[1].ops == 3 * 255 * 255 * 4
    assert plan.stages[2].ops == 3 * 255 * 255


@pytest.mark.parametrize(
    "spec",
    [
        "maxpool:k=2x3,s=1,p=1,d=2,ceil=true", "avgpool:3,p=1,count_include_pad=false,divisor_override=2",
        "minpool:3,s=2", "lppool:2,k=3,s=2", "medianpool:3,s=1,d=2", "adaptiveavgpool:7x5",
        "adaptivemaxpool:3", "globalmaxpool", "globalavgpool", "fractionalmaxpool:k=2,output_ratio=0.5",
        "maxunpool:2", "pad:1,mode=reflect", "conv:filter=sobel-x,p=1", "conv:weight=0 1; 2 3,s=2",
        "conv:filter=gaussian,k=5,sigma=2", "relu", "leakyrelu:0.2", "grayscale", "flatten", "linear:10,seed=2",
    ],
)
def test_label_recreates_the_stage(spec):
    stage = parse_stage(spec)
    assert parse_stage(stage.label()) == stage
    assert stage.params() == parse_stage(stage.label()).params()


def test_integer_max_pooling_falls_back_to_float_off_the_cpu():
    """CUDA's max_pool2d is floating-point only: integers go through float32 (exact) there."""
    from poolcli.kernels.torch import pool_source as _pool_source

    cpu = torch.zeros(1, 1, 2, 2, dtype=torch.uint8)
    assert _pool_source(cpu) is cpu
    meta = torch.zeros(1, 1, 2, 2, dtype=torch.int32, device="meta")
    assert _pool_source(meta).dtype == torch.float32
    floats = torch.zeros(1, 1, 2, 2, device="meta")
    assert _pool_source(floats) is floats
    assert float(torch.tensor(65535, dtype=torch.int32).float()) == 65535.0


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("spec", ["nn.LPPool2d(-1, 2)", "nn.LPPool2d(float('inf'), 2)", "nn.LPPool2d(-2.5, 3, 2, True)"])
def test_lppool_takes_the_norm_types_torch_takes(spec, engine):
    """torch accepts negative p and ``float('inf')``; only p = 0 it cannot take (its 1/p-th root)."""
    x = random_array((1, 2, 6, 6), np.float32, 3, low=0.1)
    stage = parse_stage(spec)
    expected = torch.nn.LPPool2d(stage.norm_type, stage.kernel_size, stage.stride, stage.ceil_mode)(t(x)).numpy()
    np.testing.assert_allclose(values([stage], x, engine=engine), expected, rtol=1e-5)
    with pytest.raises(SpecError, match="norm_type=0"):
        parse_stage("nn.LPPool2d(0, 2)")
