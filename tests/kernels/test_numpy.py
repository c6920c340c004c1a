"""The numpy engine against torch.nn.functional: property tests over shapes, dtypes, layouts and
every parameter combination torch accepts, plus the textbook's golden values.

Exact ops (max, min, indices, median, unpool, pad, and the averages, whose sums follow torch's
order) must be equal bit for bit; conv, lp-pool and activations within float32 rounding.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from poolcli.kernels import luma, quantize
from poolcli.kernels.numpy import adaptive, conv, planes, pointwise, pools, windows
from poolcli.core.arithmetic import pool_output_size

LONG = settings(max_examples=60, deadline=None)


# ------------------------------------------------------------------------------------ strategies


@st.composite
def images(draw, dtypes=("uint8", "float32"), special=True, max_side=20):
    """An (N, C, H, W) array: NCHW-contiguous or a transposed NHWC buffer, with ties, NaN or ±inf."""
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 4)), draw(st.integers(1, max_side)),
             draw(st.integers(1, max_side)))
    dtype = np.dtype(draw(st.sampled_from(dtypes)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    few_values = draw(st.booleans())  # many ties
    if dtype.kind == "u":
        top = 3 if few_values else np.iinfo(dtype).max
        x = rng.integers(0, top, size=shape, endpoint=True).astype(dtype)
    else:
        x = (rng.integers(0, 3, size=shape) / 2 if few_values else rng.standard_normal(shape)).astype(dtype)
        if special and draw(st.booleans()):
            x[rng.random(shape) < 0.1] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if draw(st.booleans()):
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    return x


pairs = st.tuples(st.integers(1, 4), st.integers(1, 4))


@st.composite
def window(draw, padding=True, dilation=True):
    """kernel, stride, padding (≤ kernel // 2, torch's rule) and dilation pairs, and ceil_mode."""
    kernel = draw(pairs)
    stride = draw(pairs)
    pad = tuple(draw(st.integers(0, k // 2)) for k in kernel) if padding else (0, 0)
    dil = draw(st.tuples(st.integers(1, 3), st.integers(1, 3))) if dilation else (1, 1)
    return kernel, stride, pad, dil, draw(st.booleans())


def fits(x, kernel, stride, padding, dilation, ceil_mode) -> bool:
    """Whether the window leaves an output of at least 1x1 (torch rejects the rest)."""
    return all(pool_output_size(n, k, s, p, d, ceil_mode).size >= 1
               for n, k, s, p, d in zip(x.shape[2:], kernel, stride, padding, dilation))


def torch_or_skip(function, *args, **kwargs):
    """Call torch; a combination torch rejects is not a test case."""
    try:
        return function(*args, **kwargs)
    except RuntimeError:
        assume(False)


def exact(x: np.ndarray, reference) -> None:
    """Our result equals torch's bit for bit (NaN where torch has NaN) with the same shape."""
    reference = reference.numpy() if isinstance(reference, torch.Tensor) else reference
    assert x.shape == reference.shape
    np.testing.assert_array_equal(x, reference)


def widened(x: np.ndarray) -> torch.Tensor:
    """The tensor torch pools: uint16 as int32 (torch has no uint16 max-pool kernel)."""
    return torch.from_numpy(x.astype(np.int32) if x.dtype == np.uint16 else x)


def same_layout(out: np.ndarray, x: np.ndarray) -> bool:
    """An NCHW-contiguous input gives an NCHW-contiguous output, a transposed NHWC buffer an NHWC one."""
    def layouts(a):
        return {name for name, ok in (("nchw", a.flags.c_contiguous),
                                      ("nhwc", a.transpose(0, 2, 3, 1).flags.c_contiguous)) if ok}
    return not layouts(x) or bool(layouts(x) & layouts(out))


# ------------------------------------------------------------------------------------- max / min


@LONG
@given(images(("uint8", "uint16", "float32")), window(), st.booleans())
def test_max_pool_equals_torch(x, params, with_indices):
    assume(fits(x, *params))
    values, indices = torch_or_skip(F.max_pool2d, widened(x), *params, return_indices=True)
    if x.dtype == np.uint16:  # a window of padding only gives the dtype's minimum: 0, not int32's
        values = values.clamp(min=0)
    result = pools.max_pool2d(x, *params, return_indices=with_indices)
    ours = result[0] if with_indices else result
    assert ours.dtype == x.dtype
    exact(ours.astype(np.int32) if x.dtype == np.uint16 else ours, values)
    if with_indices:
        exact(result[1], indices)


@LONG
@given(images(("uint8", "uint16", "float32")), window(), st.booleans())
def test_min_pool_equals_negated_torch_max_pool(x, params, with_indices):
    assume(fits(x, *params))
    wide = x if x.dtype.kind == "f" else x.astype(np.float64)
    values, indices = torch_or_skip(F.max_pool2d, -torch.from_numpy(wide), *params, return_indices=True)
    expected = (-values).numpy()
    if x.dtype.kind == "u":  # a window of padding only gives the dtype's maximum, not +inf
        expected[np.isinf(expected)] = np.iinfo(x.dtype).max
    result = pools.min_pool2d(x, *params, return_indices=with_indices)
    ours = result[0] if with_indices else result
    assert ours.dtype == x.dtype
    exact(ours.astype(expected.dtype), expected)
    if with_indices:
        exact(result[1], indices)


def test_max_pool_nan_takes_the_last_nan_index_like_torch():
    x = np.array([[[[1, np.nan, 3], [np.nan, 2, 0], [5, 6, 7]]]], np.float32)
    values, indices = pools.max_pool2d(x, (2, 2), (1, 1), (0, 0), (1, 1), False, return_indices=True)
    assert np.isnan(values[0, 0, 0]).all() and indices[0, 0].tolist() == [[3, 1], [3, 8]]


def test_a_window_of_padding_only_gives_torchs_identity_and_index():
    """Dilation 3 and padding 1 on a row of 2 read pixels −1 and 2: torch allows it, answering 0 at index 2."""
    x = np.array([[[[217, 163]]]], np.uint8)
    params = ((1, 2), (1, 1), (0, 1), (1, 3), False)
    values, indices = pools.max_pool2d(x, *params, return_indices=True)
    reference = F.max_pool2d(torch.from_numpy(x), *params, return_indices=True)
    assert values.tolist() == reference[0].tolist() == [[[[0]]]]
    assert indices.tolist() == reference[1].tolist() == [[[[2]]]]


def test_all_padding_ties_pick_the_first_real_pixel():
    x = np.zeros((1, 1, 3, 3), np.uint8)
    _, indices = pools.max_pool2d(x, (3, 3), (1, 1), (1, 1), (1, 1), False, return_indices=True)
    assert indices[0, 0].tolist() == [[0, 0, 1], [0, 0, 1], [3, 3, 4]]


@LONG
@given(images(("uint8", "uint16", "float32")), window())
def test_outputs_keep_the_input_memory_order(x, params):
    assume(fits(x, *params))
    kernel, stride, padding, dilation, ceil_mode = params
    assert same_layout(pools.max_pool2d(x, *params), x)
    assert same_layout(pools.min_pool2d(x, *params, return_indices=True)[0], x)
    assert same_layout(pools.avg_pool2d(x, kernel, stride, padding, ceil_mode, True, None), x)
    if fits(x, kernel, stride, (0, 0), dilation, ceil_mode):
        assert same_layout(pools.median_pool2d(x, kernel, stride, dilation, ceil_mode), x)
    assert same_layout(adaptive.adaptive_avg_pool2d(x, (2, 3)), x)


def test_torch_rejects_padding_over_half_the_kernel_even_with_dilation():
    with pytest.raises(RuntimeError, match="half of kernel size"):
        F.max_pool2d(torch.zeros(1, 1, 9, 9), 3, 1, 2, 2)


# ------------------------------------------------------------------------------------- averages


@LONG
@given(images(("uint8", "uint16", "float32"), special=False), window(dilation=False), st.booleans(),
       st.none() | st.integers(1, 10))
def test_avg_pool_equals_torch_bitwise(x, params, count_include_pad, divisor_override):
    kernel, stride, padding, _, ceil_mode = params
    assume(fits(x, *params))
    reference = torch_or_skip(F.avg_pool2d, torch.from_numpy(x.astype(np.float32)), kernel, stride, padding,
                              ceil_mode, count_include_pad, divisor_override)
    ours = pools.avg_pool2d(x, kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    assert ours.dtype == np.float32
    exact(ours, reference)


@LONG
@given(images(("uint8",)), window(dilation=False), st.booleans(), st.none() | st.integers(1, 10))
def test_quantized_avg_pool_equals_quantized_float_avg_pool(x, params, count_include_pad, divisor_override):
    kernel, stride, padding, _, ceil_mode = params
    assume(fits(x, *params))
    args = (kernel, stride, padding, ceil_mode, count_include_pad, divisor_override)
    expected = quantize.to_integers(pools.avg_pool2d(x, *args) / np.float32(255), 255, np.uint8)
    exact(pools.avg_pool2d_quantized(x, *args), expected)


@pytest.mark.parametrize("kernel", [(1, 1), (1, 2), (2, 2), (1, 3), (2, 3), (3, 3), (2, 4), (4, 4)])
@pytest.mark.parametrize("divisor_override", [None, 1, 2, 3, 8])
def test_quantized_avg_pool_rounds_every_window_sum_as_the_float_path(kernel, divisor_override):
    """Every uint8 window sum a 2x2 (or 4x4) kernel can form, through the power-of-two shifts and the
    general division: half to even as quantize(avg_pool2d / 255), clipped where an override makes it exceed 255."""
    count = kernel[0] * kernel[1]
    sums = np.arange(255 * count + 1)
    windows = np.stack([np.minimum(np.maximum(sums - 255 * i, 0), 255) for i in range(count)], axis=-1)
    # window w of a 1 × (kh, len·kw) row of windows holds windows[w], so its sum is sums[w]
    x = np.ascontiguousarray(windows.reshape(len(sums), *kernel).transpose(1, 0, 2).astype(np.uint8))
    x = x.reshape(1, 1, kernel[0], len(sums) * kernel[1])
    assert pools.avg_pool2d(x, kernel, kernel, (0, 0), False, True, 1).ravel().tolist() == sums.tolist()
    args = (kernel, kernel, (0, 0), False, True, divisor_override)
    expected = quantize.to_integers(pools.avg_pool2d(x, *args) / np.float32(255), 255, np.uint8)
    exact(pools.avg_pool2d_quantized(x, *args), expected)


@LONG
@given(images(special=False), window(padding=False, dilation=False),
       st.sampled_from([1, 2, 3, 1.5, float("inf"), float("-inf")]))
def test_lp_pool_equals_torch(x, params, norm_type):
    kernel, stride, _, _, ceil_mode = params
    assume(fits(x, *params))
    unit = x.astype(np.float32) / (255 if x.dtype == np.uint8 else 1)
    reference = torch_or_skip(F.lp_pool2d, torch.from_numpy(unit), norm_type, kernel, stride, ceil_mode)
    ours = pools.lp_pool2d(unit, norm_type, kernel, stride, ceil_mode)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-5, atol=1e-6, equal_nan=True)


def median_reference(x: np.ndarray, kernel, stride, dilation, ceil_mode) -> np.ndarray:
    """torch.median (the lower middle value, NaN if any) of each window's real pixels, one by one."""
    t = widened(x)
    n, c, h, w = t.shape
    ho, wo = (pool_output_size(m, k, s, 0, d, ceil_mode).size for m, k, s, d in zip((h, w), kernel, stride, dilation))
    out = torch.empty((n, c, ho, wo), dtype=t.dtype)
    for i in range(ho):
        for j in range(wo):
            patch = t[:, :, i * stride[0] : i * stride[0] + (kernel[0] - 1) * dilation[0] + 1 : dilation[0],
                      j * stride[1] : j * stride[1] + (kernel[1] - 1) * dilation[1] + 1 : dilation[1]]
            out[:, :, i, j] = patch.reshape(n, c, -1).median(dim=-1).values
    return out.numpy()


@LONG
@given(images(("uint8", "uint16", "float32"), max_side=12), window(padding=False))
def test_median_pool_equals_torch_median_of_real_pixels(x, params):
    kernel, stride, _, dilation, ceil_mode = params
    assume(fits(x, *params))
    ours = pools.median_pool2d(x, kernel, stride, dilation, ceil_mode)
    assert ours.dtype == x.dtype
    expected = median_reference(x, kernel, stride, dilation, ceil_mode)
    exact(ours.astype(np.int32) if x.dtype == np.uint16 else ours, expected)


# ------------------------------------------------------------------------------------- adaptive


@LONG
@given(images(special=False), st.integers(1, 25), st.integers(1, 25))
def test_adaptive_avg_pool_equals_torch_bitwise(x, oh, ow):
    reference = F.adaptive_avg_pool2d(torch.from_numpy(x.astype(np.float32)), (oh, ow))
    ours = adaptive.adaptive_avg_pool2d(x, (oh, ow))
    if (oh, ow) == (1, 1):  # torch takes mean() here, with its own summation order
        np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-6, atol=1e-7)
    else:
        exact(ours, reference)


@LONG
@given(images(), st.integers(1, 25), st.integers(1, 25), st.booleans())
def test_adaptive_max_pool_equals_torch(x, oh, ow, with_indices):
    values, indices = F.adaptive_max_pool2d(torch.from_numpy(x.astype(np.float32)), (oh, ow), return_indices=True)
    result = adaptive.adaptive_max_pool2d(x, (oh, ow), return_indices=with_indices)
    exact((result[0] if with_indices else result).astype(np.float32), values)
    if with_indices:
        exact(result[1], indices)


# ------------------------------------------------------------------------------------ unpool, pad


@LONG
@given(images(("float32",)), window(dilation=False))
def test_max_unpool_equals_torch(x, params):
    kernel, stride, padding, _, ceil_mode = params
    assume(fits(x, *params))
    t = torch.from_numpy(x)
    values, indices = torch_or_skip(F.max_pool2d, t, kernel, stride, padding, 1, ceil_mode, True)
    size = tuple(x.shape[2:])
    reference = torch_or_skip(F.max_unpool2d, values, indices, kernel, stride, padding, output_size=size)
    exact(planes.max_unpool2d(values.numpy(), indices.numpy(), size), reference)


@LONG
@given(images(), st.tuples(*[st.integers(0, 5)] * 4), st.sampled_from(["constant", "reflect", "replicate", "circular"]),
       st.integers(0, 255))
def test_pad_equals_torch(x, lrtb, mode, value):
    reference = torch_or_skip(F.pad, torch.from_numpy(x), lrtb, mode=mode, value=value if mode == "constant" else None)
    ours = planes.pad2d(x, lrtb, mode, value)
    assert ours.dtype == x.dtype and same_layout(ours, x)
    exact(ours, reference)


@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("value", [-255.0, 510.0, 127.5, 65536.0, -1.0])
def test_pad_widens_integers_to_float32_for_a_fill_they_cannot_hold(dtype, value):
    """uint8 padded with −1, 2 or 0.5 (in [0, 1] units: −255, 510, 127.5) becomes float32, as the torch
    engine widens ``x.float()`` before ``F.pad``; no wrap-around, no OverflowError."""
    x = np.random.default_rng(0).integers(0, 256, (1, 3, 4, 5)).astype(dtype)
    x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    holds = float(value).is_integer() and 0 <= value <= np.iinfo(dtype).max
    reference = F.pad(torch.from_numpy(x.astype(np.int32 if holds else np.float32)), (1, 2, 0, 1), value=value)
    ours = planes.pad2d(x, (1, 2, 0, 1), "constant", value)
    assert ours.dtype == (np.dtype(dtype) if holds else np.float32) and same_layout(ours, x)
    exact(ours.astype(reference.numpy().dtype), reference)


# ------------------------------------------------------------------------------------------ conv


@st.composite
def convolutions(draw):
    """Input, weight, bias and nn.Conv2d's parameters, groups dividing the channels."""
    x = draw(images(special=False))
    c = x.shape[1]
    groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    out_channels = groups * draw(st.integers(1, 3))
    kernel = draw(pairs)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    weight = rng.standard_normal((out_channels, c // groups, *kernel)).astype(np.float32)
    bias = rng.standard_normal(out_channels).astype(np.float32) if draw(st.booleans()) else None
    lrtb = draw(st.tuples(*[st.integers(0, 3)] * 4))
    return x, weight, bias, draw(pairs), lrtb, draw(st.tuples(st.integers(1, 2), st.integers(1, 2))), groups


@LONG
@given(convolutions(), st.sampled_from(["zeros", "reflect", "replicate", "circular"]), st.booleans())
def test_conv2d_equals_torch(case, padding_mode, symmetric):
    x, weight, bias, stride, lrtb, dilation, groups = case
    if symmetric:
        lrtb = (lrtb[0], lrtb[0], lrtb[2], lrtb[2])
    unit = x.astype(np.float32) / (255 if x.dtype == np.uint8 else 1)
    mode = "constant" if padding_mode == "zeros" else padding_mode
    padded = torch_or_skip(F.pad, torch.from_numpy(unit), lrtb, mode=mode)
    torch_bias = None if bias is None else torch.from_numpy(bias)
    reference = torch_or_skip(F.conv2d, padded, torch.from_numpy(weight), torch_bias, stride, 0, dilation, groups)
    if symmetric:
        ours = conv.conv2d(unit, weight, bias, stride, (lrtb[2], lrtb[0]), dilation, padding_mode, groups)
    else:
        ours = conv.conv2d(unit, weight, bias, stride, (0, 0), dilation, padding_mode, groups, padding_lrtb=lrtb)
    assert ours.dtype == np.float32 and ours.shape == reference.shape and same_layout(ours, x)
    np.testing.assert_allclose(ours, reference.numpy(), rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- activations, values


@LONG
@given(images(("float32",)), st.floats(0, 1))
def test_activations_equal_torch(x, slope):
    x = x * np.float32(10)
    t = torch.from_numpy(x)
    close = dict(rtol=1e-6, atol=1e-6, equal_nan=True)
    np.testing.assert_allclose(pointwise.relu(x), torch.relu(t).numpy(), **close)
    np.testing.assert_allclose(pointwise.sigmoid(x), torch.sigmoid(t).numpy(), **close)
    np.testing.assert_allclose(pointwise.tanh(x), torch.tanh(t).numpy(), **close)
    np.testing.assert_allclose(pointwise.leaky_relu(x, slope), F.leaky_relu(t, slope).numpy(), **close)


@LONG
@given(images(("uint8",)).filter(lambda x: x.shape[1] >= 3))
def test_grayscale_uint8_equals_pillow(x):
    from PIL import Image

    mode = "RGB" if x.shape[1] == 3 else "RGBA"
    hwc = x[0].transpose(1, 2, 0)
    expected = np.asarray(Image.fromarray(np.ascontiguousarray(hwc), mode).convert("L"))
    ours = luma.luma(x)
    assert ours.dtype == np.uint8 and ours.shape == (x.shape[0], 1, *x.shape[2:])
    exact(ours[0, 0], expected)


@LONG
@given(images(("float32",), special=False).filter(lambda x: x.shape[1] >= 3))
def test_grayscale_float_equals_the_torch_formula(x):
    t = torch.from_numpy(x)
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    expected = (t[:, :3] * weights).sum(dim=1, keepdim=True).numpy()
    np.testing.assert_allclose(luma.luma(x), expected, rtol=1e-6, atol=1e-6)


def test_quantize_rounds_half_to_even_like_torch_round():
    unit = np.array([(k + 0.5) / 255 for k in range(255)] + [-1, 2, 0.5 / 255, np.nan], np.float32)
    ours = quantize.to_integers(unit, 255, np.uint8)
    reference = (torch.from_numpy(unit).nan_to_num(0).clamp(0, 1) * 255).round().to(torch.uint8)
    exact(ours, reference)
    assert quantize.to_integers(np.array([2.5, 3.5], np.float32) / 255, 255, np.uint8).tolist() == [2, 4]


# ---------------------------------------------------------------------------------------- golden


D2L_X = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
ARANGE16 = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)


def test_d2l_2x2_max_and_avg():
    assert pools.max_pool2d(D2L_X, (2, 2), (1, 1), (0, 0), (1, 1), False)[0, 0].tolist() == [[4, 5], [7, 8]]
    assert pools.avg_pool2d(D2L_X, (2, 2), (1, 1), (0, 0), False, True, None)[0, 0].tolist() == [[2, 3], [5, 6]]


@pytest.mark.parametrize("kernel, stride, padding, expected", [
    ((3, 3), (3, 3), (0, 0), [[10]]),
    ((3, 3), (2, 2), (1, 1), [[5, 7], [13, 15]]),
    ((2, 3), (2, 3), (0, 1), [[5, 7], [13, 15]]),
])
def test_d2l_maxpool_on_arange16(kernel, stride, padding, expected):
    assert pools.max_pool2d(ARANGE16, kernel, stride, padding, (1, 1), False)[0, 0].tolist() == expected


def test_d2l_corr2d():
    weight = np.array([[[[0, 1], [2, 3]]]], np.float32)
    assert conv.conv2d(D2L_X, weight, None, (1, 1), (0, 0), (1, 1), "zeros", 1)[0, 0].tolist() == [[19, 25], [37, 43]]


def test_unpool_puts_values_back_at_their_indices():
    values, indices = pools.max_pool2d(ARANGE16, (2, 2), (2, 2), (0, 0), (1, 1), False, return_indices=True)
    restored = planes.max_unpool2d(values, indices, (4, 4))[0, 0]
    assert restored[1].tolist() == [0, 5, 0, 7] and restored[0].tolist() == [0, 0, 0, 0]


def test_importing_the_engine_does_not_import_torch():
    code = "import sys, poolcli.kernels.numpy; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------------------ integer input


@pytest.mark.parametrize("spec", [
    "avgpool:2", "avgpool:3,s=2,p=1,count_include_pad=false,ceil=true", "avgpool:2,divisor_override=3",
    "adaptiveavgpool:3x5", "adaptiveavgpool:1x1", "globalavgpool", "conv:filter=box", "conv:filter=sobel-x,p=1",
    "conv:weight=0 1; 2 3,channels=sum,padding_mode=reflect,p=1",
])
@pytest.mark.parametrize("dtype", ["uint8", "uint16"])
@pytest.mark.parametrize("channels_last", [False, True])
def test_stages_that_take_integers_give_what_float_input_gives(spec, dtype, channels_last):
    """numpy_engine.takes_integers: the engine may hand these stages uint8/uint16 pixels instead of
    converting to float32 first; the result is the same float32 array, bit for bit."""
    from poolcli.kernels import numpy as numpy_engine
    from poolcli.execute.run import Run
    from poolcli.core.plan import Pipeline
    from poolcli.core.spec import parse_stage

    stage = parse_stage(spec)
    assert numpy_engine.takes_integers(stage)
    x = np.random.default_rng(1).integers(0, np.iinfo(dtype).max, (2, 3, 11, 14), endpoint=True).astype(dtype)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    plan = Pipeline([stage]).plan(x.shape)
    native = numpy_engine.apply(stage, x, Run(plan, 0, float(np.iinfo(dtype).max)))
    floats = numpy_engine.apply(stage, x.astype(np.float32), Run(plan, 0, float(np.iinfo(dtype).max)))
    assert native.dtype == floats.dtype == np.float32
    exact(native, floats)


def test_conv_with_a_bias_is_not_given_integers():
    from poolcli.kernels import numpy as numpy_engine
    from poolcli.core.spec import parse_stage

    assert not numpy_engine.takes_integers(parse_stage("conv:filter=box,bias=0.5"))
    assert not numpy_engine.takes_integers(parse_stage("maxpool:2"))  # runs natively anyway: "native" policy


@pytest.mark.parametrize("spec", [
    "avgpool:2", "avgpool:3,s=2,p=1,count_include_pad=false,ceil=true", "avgpool:3,s=1,p=1", "avgpool:2x4,s=1x3",
    "avgpool:2,divisor_override=4", "avgpool:2,divisor_override=9", "avgpool:2,divisor_override=3",
])
@pytest.mark.parametrize("channels_last", [False, True])
def test_quantized_average_is_what_quantize_makes_of_the_float_average(spec, channels_last):
    """numpy_engine.quantized_average: the 8-bit image an avgpool of uint8 becomes under --normalize
    auto/clip, from integer sums; None where auto would stretch (a divisor_override below the window)."""
    from poolcli.kernels import numpy as numpy_engine
    from poolcli.core.spec import parse_stage

    stage = parse_stage(spec)
    x = np.random.default_rng(2).integers(0, 255, (2, 3, 13, 17), endpoint=True).astype(np.uint8)
    x[0, 0, :4, :4] = 255  # saturated windows, where clipping or stretching would show
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1)).transpose(0, 3, 1, 2)
    got = numpy_engine.quantized_average(stage, x)
    if stage.divisor_override == 3:
        assert got is None
        return
    args = (stage.kernel_size, stage.stride, stage.padding, stage.ceil_mode, stage.count_include_pad,
            stage.divisor_override)
    unit = pools.avg_pool2d(x, *args) / np.float32(255)
    assert 0 <= unit.min() and unit.max() <= 1  # auto keeps it: "none"
    exact(got, quantize.to_integers(unit, 255, np.uint8))
    assert numpy_engine.quantized_average(parse_stage("maxpool:2"), x) is None
    assert numpy_engine.quantized_average(stage, x.astype(np.uint16)) is None


@pytest.mark.parametrize("kernel", ["max", "min", "avg", "avg_quantized"])
def test_rgb_views_of_rgbx_memory_give_the_packed_result(kernel):
    """Pillow keeps RGB as RGBX; the kernels read rows with the padding byte (one contiguous run)
    and must give exactly what a packed RGB copy gives, the padding's garbage dropped."""
    rng = np.random.default_rng(7)
    rgbx = rng.integers(0, 256, (1, 37, 52, 4), dtype=np.uint8)
    view = rgbx[..., :3].transpose(0, 3, 1, 2)
    packed = np.ascontiguousarray(rgbx[..., :3]).transpose(0, 3, 1, 2)
    assert windows.with_pixel_padding(view).shape == (1, 4, 37, 52)
    args = ((3, 2), (2, 2), (1, 0))
    run = {
        "max": lambda x: pools.max_pool2d(x, *args, (1, 1), False),
        "min": lambda x: pools.min_pool2d(x, *args, (1, 1), True),
        "avg": lambda x: pools.avg_pool2d(x, *args, False, True, None),
        "avg_quantized": lambda x: pools.avg_pool2d_quantized(x, *args, True, False, None),
    }[kernel]
    np.testing.assert_array_equal(run(view), run(packed))


def test_widening_to_the_pixel_stride_stays_inside_the_buffer():
    rgb = np.zeros((1, 4, 5, 3), np.uint8)
    view = rgb[..., :2].transpose(0, 3, 1, 2)  # two channels of three-byte pixels: widened to three
    assert windows.with_pixel_padding(view).shape == (1, 3, 4, 5)
    tail = np.zeros(4 * 5 * 4, np.uint8)[:-1]  # an RGBX buffer cut one byte short
    cut = np.lib.stride_tricks.as_strided(tail, (1, 3, 4, 5), (80, 1, 20, 4))
    assert windows.with_pixel_padding(cut) is cut


@pytest.mark.parametrize("op", ["max", "min", "avg", "avg_quantized"])
@pytest.mark.parametrize("layout", ["planar", "rgbx"])
def test_threads_give_the_same_numbers_as_one(op, layout):
    """``threads(3)`` splits a 1×3×601×900 image's output rows into bands; every band's rows equal
    the one-thread result, including the odd last rows and a 3×3, stride-2, padded window."""
    rng = np.random.default_rng(7)
    if layout == "planar":
        x = rng.integers(0, 256, (1, 3, 601, 900), dtype=np.uint8)
    else:
        x = rng.integers(0, 256, (601, 900, 4), dtype=np.uint8)[..., :3].transpose(2, 0, 1)[None]
    k, s, p = (3, 3), (2, 2), (1, 1)
    run = {
        "max": lambda: pools.max_pool2d(x, k, s, p, (1, 1), False),
        "min": lambda: pools.min_pool2d(x, k, s, p, (1, 1), True),
        "avg": lambda: pools.avg_pool2d(x, k, s, p, True, False, None),
        "avg_quantized": lambda: pools.avg_pool2d_quantized(x, k, s, p, False, True, None),
    }[op]
    alone = run()
    with windows.threads(3):
        shared = run()
    assert windows._threads == 1  # restored on leaving
    np.testing.assert_array_equal(shared, alone)


def test_bands_cover_every_row_once_and_small_outputs_stay_on_one_thread():
    seen: list[tuple[int, int]] = []
    with windows.threads(4):
        windows._in_bands(lambda lo, hi: seen.append((lo, hi)), 10, 4 * windows._BAND_MIN_OUTPUTS)
        assert sorted(seen) == [(0, 2), (2, 5), (5, 7), (7, 10)]
        seen.clear()
        windows._in_bands(lambda lo, hi: seen.append((lo, hi)), 10, windows._BAND_MIN_OUTPUTS - 1)
        assert seen == [(0, 10)]


@settings(max_examples=60, deadline=None)
@given(
    kernel=st.tuples(st.integers(1, 4), st.integers(1, 4)),
    stride=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    pad=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    ceil_mode=st.booleans(),
    count_include_pad=st.booleans(),
    divisor_override=st.none() | st.integers(1, 20),
    alpha=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_sums_on_whole_pixels_give_the_per_channel_numbers(kernel, stride, pad, ceil_mode, count_include_pad,
                                                           divisor_override, alpha, seed):
    """RGBX (or RGBA) pixels are summed four uint16 lanes at a time; every window, padding rule and
    divisor must give exactly the planar per-channel result, and RGB of RGBX comes back as RGBX."""
    assume(all(p <= k // 2 for p, k in zip(pad, kernel)))
    pixels = np.random.default_rng(seed).integers(0, 256, (1, 23, 31, 4), dtype=np.uint8)
    x = pixels.transpose(0, 3, 1, 2) if alpha else pixels[..., :3].transpose(0, 3, 1, 2)
    planar = np.ascontiguousarray(x)
    some_finish = lambda *args: None  # noqa: E731 — only whether one is given matters
    assert windows._pixel_lane_output(np.add, windows.with_pixel_padding(x), windows.empty_like_pixels(x, x.shape, np.uint8),
                                np.dtype(np.uint16), some_finish) is not None
    args = (kernel, stride, pad, ceil_mode, count_include_pad, divisor_override)
    got = pools.avg_pool2d_quantized(x, *args)
    np.testing.assert_array_equal(got, pools.avg_pool2d_quantized(planar, *args))
    np.testing.assert_array_equal(pools.avg_pool2d(x, *args), pools.avg_pool2d(planar, *args))
    assert got.strides[3] == 4  # pooled into four-byte pixels, as the encoder takes them
