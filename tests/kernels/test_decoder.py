"""The decoder kernels: numpy's conv_transpose2d and upsample2d against torch's on random sizes and
parameters (hypothesis), both engines through run_pipeline, and the textbook's numbers."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli.core.plan import Pipeline
from poolcli.execute.run import run_pipeline
from poolcli.kernels.numpy.conv_transpose import conv_transpose2d
from poolcli.kernels.numpy.upsample import linear_taps, nearest_indices, upsample2d

EXAMPLES = settings(max_examples=200, deadline=None)


def test_d2l_numbers():
    x = np.array([[[[0, 1], [2, 3]]]], np.float32)
    k = np.array([[[[0, 1], [2, 3]]]], np.float32)
    y = conv_transpose2d(x, k, None, (1, 1), (0, 0), (0, 0), (1, 1), 1)
    assert y[0, 0].tolist() == [[0, 0, 1], [0, 4, 6], [4, 12, 9]]
    # d2l's stride 2: each value's kernel lands 2 apart, nothing overlaps
    y = conv_transpose2d(x, k, None, (2, 2), (0, 0), (0, 0), (1, 1), 1)
    assert y[0, 0].tolist() == [[0, 0, 0, 1], [0, 0, 2, 3], [0, 2, 0, 3], [4, 6, 6, 9]]


def test_source_cells_in_small_numbers():
    assert nearest_indices(2, 4, 2.0).tolist() == [0, 0, 1, 1]
    assert nearest_indices(3, 7, None).tolist() == [0, 0, 0, 1, 1, 2, 2]  # ⌊o·3/7⌋
    indices, weights = linear_taps(2, 4, False, 2.0)
    assert indices.tolist() == [[0, 0, 0, 1], [1, 1, 1, 1]]
    assert weights.tolist() == [[1, 0.75, 0.25, 1], [0, 0.25, 0.75, 0]]


@st.composite
def transposed(draw):
    groups = draw(st.integers(1, 2))
    cg, og = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    kh, kw, sh, sw, dh, dw = (draw(st.integers(1, 4)) for _ in range(6))
    ph, pw = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    oph, opw = draw(st.integers(0, max(sh, dh) - 1)), draw(st.integers(0, max(sw, dw) - 1))
    h, w = draw(st.integers(1, 8)), draw(st.integers(1, 8))
    return dict(groups=groups, cg=cg, og=og, k=(kh, kw), s=(sh, sw), d=(dh, dw), p=(ph, pw), op=(oph, opw), hw=(h, w),
                n=draw(st.integers(1, 2)), bias=draw(st.booleans()), seed=draw(st.integers(0, 2**16)))


@EXAMPLES
@given(transposed())
def test_conv_transpose2d_equals_torch(case):
    rng = np.random.default_rng(case["seed"])
    g = case["groups"]
    x = rng.standard_normal((case["n"], g * case["cg"], *case["hw"])).astype(np.float32)
    weight = rng.standard_normal((g * case["cg"], case["og"], *case["k"])).astype(np.float32)
    bias = rng.standard_normal(g * case["og"]).astype(np.float32) if case["bias"] else None
    try:
        expected = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(weight),
                                      None if bias is None else torch.from_numpy(bias),
                                      case["s"], case["p"], case["op"], g, case["d"]).numpy()
    except RuntimeError:  # the output reached 0: planning refuses it before any kernel runs
        return
    y = conv_transpose2d(x, weight, bias, case["s"], case["p"], case["op"], case["d"], g)
    assert y.dtype == np.float32 and y.shape == expected.shape
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_conv_transpose2d_keeps_a_channels_last_layout():
    x = np.ascontiguousarray(np.random.default_rng(0).random((1, 5, 6, 3), np.float32)).transpose(0, 3, 1, 2)
    y = conv_transpose2d(x, np.ones((3, 1, 2, 2), np.float32), None, (2, 2), (0, 0), (0, 0), (1, 1), 3)
    assert y.shape == (1, 3, 10, 12) and y.strides[1] == 4


_scales = st.sampled_from([0.5, 0.75, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 7 / 3])


@EXAMPLES
@given(
    mode=st.sampled_from(["nearest", "bilinear", "bicubic"]),
    hw=st.tuples(st.integers(1, 12), st.integers(1, 12)),
    scale=st.one_of(st.tuples(_scales, _scales), st.none()),
    size=st.tuples(st.integers(1, 20), st.integers(1, 20)),
    align_corners=st.booleans(),
    recompute=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_upsample2d_equals_torch(mode, hw, scale, size, align_corners, recompute, seed):
    x = np.random.default_rng(seed).random((2, 3, *hw), np.float32)
    align = None if mode == "nearest" else align_corners
    kwargs = dict(scale_factor=scale, recompute_scale_factor=recompute) if scale else dict(size=size)
    try:
        expected = F.interpolate(torch.from_numpy(x), mode=mode, align_corners=align, **kwargs).numpy()
    except RuntimeError:
        return
    y = upsample2d(x, expected.shape[-2:], mode, bool(align), None if (not scale or recompute) else scale)
    assert y.shape == expected.shape and y.dtype == np.float32
    if mode == "nearest":
        np.testing.assert_array_equal(y, expected)
    else:  # torch fuses multiply-adds: float32 round-off, scaled by bicubic's weights
        np.testing.assert_allclose(y, expected, rtol=0, atol=4e-6)


def test_nearest_keeps_integers():
    x = np.arange(12, dtype=np.uint8).reshape(1, 1, 3, 4)
    y = upsample2d(x, (6, 8), "nearest", False, (2.0, 2.0))
    assert y.dtype == np.uint8 and y[0, 0, :2, :2].tolist() == [[0, 0], [0, 0]] and y[0, 0, 5, 7] == 11


@pytest.mark.parametrize("specs", [
    ["nn.ConvTranspose2d(3, 4, 3, stride=2, padding=1, output_padding=1)"],
    ["convtranspose:filter=gaussian,k=3,s=2,channels=sum,bias=0.1"],
    ["convtranspose:weight=[[[1,0],[0,1]],[[0,1],[1,0]],[[1,1],[1,1]]],s=2"],
    ["nn.ConvTranspose2d(3, 6, 2, stride=2, groups=3)"],
    ["upsample:2"],
    ["upsample:3x1.5,mode=bilinear"],
    ["nn.UpsamplingBilinear2d(size=(9, 11))"],
    ["upsample:2,mode=bicubic,align_corners=true"],
])
@pytest.mark.parametrize("depth", [8, 16])
def test_both_engines_agree(specs, depth):
    dtype, maxval = (np.uint8, 255) if depth == 8 else (np.uint16, 65535)
    image = np.random.default_rng(1).integers(0, maxval + 1, (2, 3, 7, 5)).astype(dtype)
    pipeline = Pipeline.from_specs(specs)
    numpy_result = run_pipeline(pipeline, image, maxval=maxval, engine="numpy", seed=3)
    torch_result = run_pipeline(pipeline, image, maxval=maxval, engine="torch", seed=3)
    assert numpy_result.values().shape == torch_result.values().shape == pipeline.plan(image.shape).output_shape
    np.testing.assert_allclose(numpy_result.values(), torch_result.values(), rtol=1e-5, atol=1e-5)


def test_nearest_upsample_runs_on_integers_in_both_engines():
    image = np.random.default_rng(2).integers(0, 65536, (1, 1, 4, 4)).astype(np.uint16)
    for engine in ("numpy", "torch"):
        result = run_pipeline(Pipeline.from_specs(["upsample:2"]), image, maxval=65535, engine=engine)
        assert not result.backend.is_float(result.data)  # uint16 (numpy) or the int32 that holds it (torch)
        assert result.values()[0, 0, ::2, ::2].tolist() == (image[0, 0] / 65535).astype(np.float32).tolist()


@EXAMPLES
@given(
    mode=st.sampled_from(["bilinear", "bicubic"]),
    hw=st.tuples(st.integers(1, 40), st.integers(1, 40)),
    scale=st.tuples(st.sampled_from([1.0, 2.0, 3.0, 4.0, 1.5]), st.sampled_from([1.0, 2.0, 4.0, 8.0, 2.5])),
    align_corners=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_whole_multiples_weigh_slices_exactly_as_the_gathered_sums(mode, hw, scale, align_corners, seed):
    """The phase-by-phase path (plain slices where the weights repeat) gives the gathered result bit
    for bit, edges included."""
    from poolcli.kernels.numpy.upsample import _gather, cubic_taps

    x = np.random.default_rng(seed).random((1, 2, *hw), np.float32)
    size = (int(hw[0] * scale[0]), int(hw[1] * scale[1]))
    taps = linear_taps if mode == "bilinear" else cubic_taps
    gathered = _gather(x, *taps(hw[1], size[1], align_corners, scale[1]), axis=-1)
    gathered = _gather(gathered, *taps(hw[0], size[0], align_corners, scale[0]), axis=-2)
    np.testing.assert_array_equal(upsample2d(x, size, mode, align_corners, scale), gathered)
