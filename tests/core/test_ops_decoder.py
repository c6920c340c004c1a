"""The decoder ops' planning: convtranspose and upsample against torch (spellings, refusals, shapes,
params and ops), the conv-arithmetic paper's relationships 8–14 as shape tests, the d2l example,
and receptive fields checked by a brute-force dependency walk."""

from __future__ import annotations

import math
import warnings
from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn as nn
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli.core import arithmetic as ar
from poolcli.core.plan import Pipeline
from poolcli.core.spec import parse_stage
from poolcli.errors import PlanError, SpecError
from poolcli.execute.run import run_pipeline

D2L_X = np.array([[0, 1], [2, 3]], np.float32)
D2L_OUT = [[0, 0, 1], [0, 4, 6], [4, 12, 9]]


def plan_of(spec: str, shape=(1, 1, 6, 6)):
    return Pipeline([parse_stage(spec)]).plan(shape).stages[0]


def refusal(spec: str, shape=(1, 3, 4, 4)) -> str:
    with pytest.raises((SpecError, PlanError)) as info:
        Pipeline([parse_stage(spec)]).plan(shape)
    message = str(info.value)
    assert "\n" not in message and " — " in message
    return message


# --------------------------------------------------------------------------- d2l and the paper


@pytest.mark.parametrize("engine", ["numpy", "torch"])
def test_d2l_transposed_convolution(engine):
    pipeline = Pipeline.from_specs(["convtranspose:weight=0 1; 2 3"])
    result = run_pipeline(pipeline, D2L_X[None, None], engine=engine)
    assert result.values()[0, 0].tolist() == D2L_OUT
    assert pipeline.plan((1, 1, 2, 2)).stages[0].formula["H"] == "(2 − 1)·1 − 2·0 + 1·(2 − 1) + 0 + 1 = 3"


# Dumoulin & Visin's relationships 8–14: the transpose of a conv (k, s, p) on i gives o' from i' = o.
RELATIONSHIPS = {
    8: dict(i=4, k=3, s=1, p=0, rule=lambda i2, k, s, p, a: i2 + (k - 1)),  # no padding, unit strides
    9: dict(i=5, k=4, s=1, p=2, rule=lambda i2, k, s, p, a: i2 + (k - 1) - 2 * p),  # zero padding, unit strides
    10: dict(i=5, k=3, s=1, p=1, rule=lambda i2, k, s, p, a: i2),  # half (same) padding
    11: dict(i=5, k=3, s=1, p=2, rule=lambda i2, k, s, p, a: i2 - (k - 1)),  # full padding
    12: dict(i=5, k=3, s=2, p=0, rule=lambda i2, k, s, p, a: s * (i2 - 1) + k),  # no padding, strides
    13: dict(i=5, k=3, s=2, p=1, rule=lambda i2, k, s, p, a: s * (i2 - 1) + k - 2 * p),  # padding, strides
    14: dict(i=6, k=3, s=2, p=1, rule=lambda i2, k, s, p, a: s * (i2 - 1) + a + k - 2 * p),  # odd: output_padding a
}


@pytest.mark.parametrize("number", sorted(RELATIONSHIPS))
def test_conv_arithmetic_relationships(number):
    case = RELATIONSHIPS[number]
    i, k, s, p = case["i"], case["k"], case["s"], case["p"]
    conv = ar.conv_output_size(i, k, s, p, p).size
    a = ar.output_padding_for(i, k, s, p)
    assert (a != 0) == (number == 14)
    spec = f"convtranspose:filter=box,k={k},s={s},p={p},output_padding={a}"
    stage = plan_of(spec, (1, 1, conv, conv))
    expected = case["rule"](conv, k, s, p, a)
    assert stage.output_shape[-2:] == (expected, expected) == (i, i)
    assert stage.formula["H"].endswith(f"= {i}")
    module = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=a)
    assert module(torch.zeros(1, 1, conv, conv)).shape[-1] == i


def test_relationship_14_in_the_papers_numbers():
    assert ar.conv_transpose_output_size(3, 3, 2, 1, 1).formula == "(3 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1 = 6"
    assert plan_of("convtranspose:filter=box,k=3,s=2,p=1", (1, 1, 3, 3)).output_shape[-1] == 5  # a = 0: one short


# --------------------------------------------------------------------------- refusals


def test_output_padding_bound_states_the_bound():
    message = refusal("convtranspose:filter=box,k=3,s=2,output_padding=2")
    assert "output_padding H=2 must be smaller than either stride (2) or dilation (1)" in message
    assert "output_padding ≤ 1" in message
    refusal("nn.ConvTranspose2d(3, 3, 3, stride=2, output_padding=(0, 2))")
    assert plan_of("convtranspose:filter=box,k=3,d=2,output_padding=1").output_shape[-1] == 11  # dilation lifts it


def test_only_zeros_padding_mode():
    message = refusal("nn.ConvTranspose2d(3, 3, 3, padding_mode='reflect')")
    assert 'Only "zeros" padding mode is supported for ConvTranspose2d' in message


def test_sizes_that_reach_zero_show_the_formula():
    message = refusal("convtranspose:filter=box,k=3,p=3", (1, 3, 4, 4))
    assert "(4 − 1)·1 − 2·3 + 1·(3 − 1) + 0 + 1 = 0" in message
    message = refusal("upsample:0.1", (1, 3, 4, 4))
    assert "Input and output sizes should be greater than 0" in message and "⌊4·0.1⌋ = 0" in message


@pytest.mark.parametrize("spec, words", [
    ("upsample", "either size or scale_factor should be defined"),
    ("upsample:2,size=4", "only one of size or scale_factor should be defined"),
    ("upsample:2,align_corners=false", "align_corners option can only be set with the interpolating modes"),
    ("upsample:size=4,recompute_scale_factor=true", "recompute_scale_factor is not meaningful with an explicit size."),
    ("upsample:2,mode=area", "not one poolcli computes"),
    ("nn.Upsample(scale_factor=(2, 2, 2))", "a number or a pair"),
    ("convtranspose:weight=0 1; 2 3,padding=same", "an integer or a pair"),
])
def test_upsample_and_convtranspose_refusals(spec, words):
    assert words in refusal(spec)


def test_transposed_weight_layout_is_in_channels_first():
    stage = plan_of("convtranspose:weight=[[[[1]],[[2]]]]", (1, 1, 3, 3))  # 1×2×1×1: one input, two outputs
    assert stage.output_shape == (1, 2, 3, 3) and stage.params_count == 2
    assert "weight needs C=1, got C=3" in refusal("convtranspose:weight=[[[[1]],[[2]]]]", (1, 3, 3, 3))


# --------------------------------------------------------------------------- against torch


def _torch_shape(call: str, shape):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = eval(call, {"nn": nn})  # the test's own generated text
            out = tuple(module(torch.zeros(shape)).shape)
            return out if min(out) >= 1 else None  # torch's depthwise path gives an empty tensor; poolcli refuses
    except Exception:  # noqa: BLE001 — torch's refusal at construction or in forward
        return None


def _our_shape(call: str, shape):
    try:
        return Pipeline([parse_stage(call)]).plan(shape).output_shape
    except (SpecError, PlanError):
        return None


_small = st.integers(0, 4)
_pair = st.one_of(_small.map(repr), st.tuples(_small, _small).map(repr))


@st.composite
def transposed_calls(draw):
    groups = draw(st.sampled_from([1, 1, 2]))
    args = [str(2 * draw(st.integers(1, 2))), str(groups * draw(st.integers(1, 3))), draw(_pair)]
    for name in ("stride", "padding", "output_padding", "dilation"):
        if draw(st.booleans()):  # no dilation 0: torch's depthwise path skips its own check there
            args.append(f"{name}={draw(_pair.filter(lambda v: name != 'dilation' or '0' not in v))}")
    if groups != 1:
        args.append(f"groups={groups}")
    args.append(f"bias={draw(st.booleans())}")
    return f"nn.ConvTranspose2d({', '.join(args)})"


@settings(max_examples=300, deadline=None)
@given(transposed_calls(), st.integers(1, 7), st.integers(1, 7))
def test_convtranspose_accepts_and_refuses_as_torch_does(call, h, w):
    shape = (1, int(call.split("(")[1].split(",")[0]), h, w)
    assert _our_shape(call, shape) == _torch_shape(call, shape), call


@st.composite
def upsample_calls(draw):
    name = draw(st.sampled_from(["Upsample", "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d"]))
    args = []
    if draw(st.booleans()):
        args.append(f"size={draw(st.one_of(st.integers(0, 9).map(repr), st.tuples(st.integers(1, 9), st.integers(1, 9)).map(repr)))}")
    if draw(st.booleans()) or not args:
        scale = st.sampled_from(["2", "2.0", "0.5", "1.5", "3", "0.1", "-1"])
        args.append(f"scale_factor={draw(st.one_of(scale, st.tuples(scale, scale).map(lambda t: f'({t[0]}, {t[1]})')))}")
    if name == "Upsample":
        args.append(f"mode={draw(st.sampled_from(['nearest', 'bilinear', 'bicubic']))!r}")
        if draw(st.booleans()):
            args.append(f"align_corners={draw(st.booleans())}")
        if draw(st.booleans()):
            args.append(f"recompute_scale_factor={draw(st.booleans())}")
    return f"nn.{name}({', '.join(args)})"


@settings(max_examples=300, deadline=None)
@given(upsample_calls(), st.integers(1, 9), st.integers(1, 9))
def test_upsample_accepts_and_refuses_as_torch_does(call, h, w):
    assert _our_shape(call, (1, 2, h, w)) == _torch_shape(call, (1, 2, h, w)), call


@pytest.mark.parametrize("call, shape", [
    ("nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1)", (2, 4, 7, 5)),
    ("nn.ConvTranspose2d(4, 6, (2, 3), stride=2, groups=2, bias=False)", (1, 4, 5, 6)),
    ("nn.ConvTranspose2d(3, 3, 4, stride=2, padding=1, dilation=2)", (1, 3, 8, 8)),
])
def test_params_and_ops_as_torch_counts_them(call, shape):
    from torch.utils.flop_counter import FlopCounterMode

    module = eval(call, {"nn": nn})
    with FlopCounterMode(display=False) as counter:
        module(torch.zeros(shape))
    stage = plan_of(call, shape)
    assert stage.params_count == sum(p.numel() for p in module.parameters())
    assert 2 * stage.ops == counter.get_total_flops()  # torch counts a multiply-add as two


def test_random_weights_follow_torchs_default_init_range():
    from poolcli.kernels.weights import conv_weights

    stage = parse_stage("nn.ConvTranspose2d(2, 8, 3)")
    weight, bias, groups = conv_weights(stage, 2, 0)
    module = nn.ConvTranspose2d(2, 8, 3)
    assert weight.shape == tuple(module.weight.shape) and bias.shape == tuple(module.bias.shape) and groups == 1
    bound = 1 / math.sqrt(8 * 9)  # fan_in: the weight's dim 1 times the kernel, as torch computes it
    assert np.abs(weight).max() <= bound and np.abs(weight).max() > 0.8 * bound


# --------------------------------------------------------------------------- receptive field and jump


def _brute_force_field(specs, width=48):
    """The widest span of pipeline-input columns any interior output column depends on, from
    torch's autograd on a 1×1×1×W input (random positive weights, so no dependency cancels)."""
    pipeline = Pipeline.from_specs(specs)
    plan = pipeline.plan((1, 1, 1, width))
    torch.manual_seed(0)
    modules = []
    for stage in pipeline.stages:
        if stage.op == "convtranspose":
            kh, kw = stage.kernel_hw()
            module = nn.ConvTranspose2d(1, 1, (kh, kw), stride=stage.stride, padding=stage.padding,
                                        output_padding=stage.output_padding, dilation=stage.dilation, bias=False)
        elif stage.op == "conv":
            kh, kw = stage.kernel_hw()
            module = nn.Conv2d(1, 1, (kh, kw), stride=stage.stride, padding=stage.padding, dilation=stage.dilation, bias=False)
        elif stage.op == "upsample":
            module = nn.Upsample(scale_factor=stage.scale_factor, mode=stage.mode)
        else:
            module = nn.MaxPool2d(stage.kernel_size, stage.stride) if stage.op == "maxpool" else \
                nn.AvgPool2d(stage.kernel_size, stage.stride)
        if hasattr(module, "weight"):
            module.weight.data = torch.rand_like(module.weight) + 0.1
        modules.append(module)
    net = nn.Sequential(*modules)
    x = torch.rand(1, 1, 1, width, dtype=torch.float64) + 1
    net = net.double()
    out_width = plan.output_shape[-1]
    widest = 0
    margin = out_width // 4
    for o in range(margin, out_width - margin):
        x_ = x.clone().requires_grad_(True)
        net(x_)[0, 0, 0, o].backward()
        columns = np.nonzero(x_.grad[0, 0, 0].numpy())[0]
        widest = max(widest, int(columns[-1] - columns[0] + 1))
    return plan.stages[-1], widest


@pytest.mark.parametrize("specs", [
    ["convtranspose:weight=1 1,s=1x2", "upsample:2,mode=bilinear"],
    ["convtranspose:weight=1 1 1,s=1x2,p=0x1,output_padding=0x1"],
    ["upsample:2,mode=bicubic"],
    ["upsample:4,mode=bilinear", "conv:weight=1 1 1"],
    ["conv:weight=1 1 1,s=1x2", "upsample:2,mode=bilinear", "convtranspose:weight=1 1 1 1,s=1x2"],
    ["maxpool:k=1x2", "convtranspose:weight=1 1 1,s=1x2", "conv:weight=1 1 1"],
    ["avgpool:k=1x3,s=1x2", "upsample:2", "convtranspose:weight=1 1,s=1x3", "upsample:2,mode=bilinear"],
])
def test_receptive_field_against_a_brute_force_walk(specs):
    stage, widest = _brute_force_field(specs)
    field, exact = stage.receptive_field[1], stage.field_exact[1]
    assert field >= widest, (field, widest)
    if exact:
        assert field == widest


def test_the_chain_rule_falls_short_after_a_fractional_jump():
    specs = ["convtranspose:weight=1 1,s=1x2", "upsample:2,mode=bilinear"]
    stage, widest = _brute_force_field(specs)
    r, j = 1 + (math.ceil(2 / 2) - 1) * 1, Fraction(1, 2)  # DESIGN §2's chain rule: convtranspose k=2, s=2
    r += j  # then bilinear: r + j
    assert widest == 2 and r == Fraction(3, 2) and stage.receptive_field[1] == 2 and stage.field_exact[1]


def test_jumps_are_fractions():
    plan = Pipeline.from_specs(["maxpool:2", "upsample:4", "convtranspose:filter=box,k=3,s=2"]).plan((1, 1, 8, 8))
    assert [s.jump_fraction[0] for s in plan.stages] == [2, Fraction(1, 2), Fraction(1, 4)]
    assert [s.jump[0] for s in plan.stages] == [2, 0.5, 0.25]
    assert plan.stages[1].formula["H"] == "⌊4·4⌋ = 16"
    assert plan.stages[2].formula["H"] == "(16 − 1)·2 − 2·0 + 1·(3 − 1) + 0 + 1 = 33"


def test_upsample_windows_match_torchs_source_cells():
    """The tiling window of each mode and factor, against the inputs torch's gradient says each
    output reads (away from the edges)."""
    for mode in ("nearest", "bilinear", "bicubic"):
        for factor in (1, 2, 4):
            stage = parse_stage(f"upsample:{factor},mode={mode}")
            window = stage.windows()[1]
            x = torch.rand(1, 1, 1, 16, dtype=torch.float64, requires_grad=True)
            y = nn.functional.interpolate(x, scale_factor=(1, factor), mode=mode)
            for o in range(6 * factor, 10 * factor):
                (grad,) = torch.autograd.grad(y[0, 0, 0, o], x)
                reads = np.nonzero(grad[0, 0, 0].numpy())[0]
                low, high = o - window.before, o - window.before + window.span
                assert all(low <= i * factor < high for i in reads), (mode, factor, o, reads)


def test_upsample_tiles_only_for_powers_of_two():
    assert not isinstance(parse_stage("upsample:2x4,mode=bicubic").windows(), str)
    assert "power of two" in parse_stage("upsample:3").windows()
    assert "size=" in parse_stage("upsample:size=8x8").windows()
    assert "align_corners" in parse_stage("upsample:2,mode=bilinear,align_corners=true").windows()


def test_keeps_range_and_dtypes():
    assert Pipeline.from_specs(["maxpool:2", "upsample:2", "upsample:2,mode=bilinear"]).keeps_range
    assert not Pipeline.from_specs(["upsample:2,mode=bicubic"]).keeps_range
    assert not Pipeline.from_specs(["convtranspose:weight=0 1; 2 3"]).keeps_range
    assert parse_stage("upsample:2").dtype_policy == "native"
    assert parse_stage("upsample:2,bilinear").dtype_policy == "float"
