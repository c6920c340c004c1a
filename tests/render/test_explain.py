"""poolcli explain: the seeds' worked examples verbatim, the walkthrough's limits and options,
and the window loops of poolcli/explain.py as an independent oracle against torch's kernels."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from poolcli.execute.run import run_pipeline
from poolcli.kernels import torch as torch_kernels
from poolcli.render import explain as ex
from poolcli.cli.environment import Environment
from poolcli.errors import PlanError, SpecError, UsageError
from poolcli.core.spec import parse_stage

D2L = "0 1 2; 3 4 5; 6 7 8"
ARANGE16 = "0 1 2 3; 4 5 6 7; 8 9 10 11; 12 13 14 15"
ONES16 = "1 1 1 1; 1 1 1 1; 1 1 1 1; 1 1 1 1"


@pytest.fixture(autouse=True)
def width_120(monkeypatch):
    """Render as the brief says: a 120-column console (no terminal, so plain text)."""
    monkeypatch.setenv("POOLCLI_WIDTH", "120")


def explain(*specs: str, matrix: str | None = D2L, path: str | None = None, crop: str | None = None,
            step: int | None = None, only: str | None = None, pipeline: str | None = None) -> str:
    """explain_command's output as plain text."""
    out = io.StringIO()
    env = Environment(stdout=out, stderr=io.StringIO())
    status = ex.explain_command(matrix, path, list(specs) or None, pipeline, crop, step, only, env)
    assert status == 0
    return out.getvalue()


def render(parts) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    for part in parts:
        console.print(part)
    return console.export_text()


def expressions(text: str) -> list[str]:
    """The expression lines: 'Y[i, j] = …' as written beside each window."""
    return [line[line.index("Y[") :].rstrip() for line in text.splitlines() if "Y[" in line]


# --------------------------------------------------------------------------- the seeds' examples


def test_d2l_maxpool_windows_verbatim():
    text = explain("maxpool:2,s=1")
    for line in ("max(0, 1, 3, 4) = 4", "max(1, 2, 4, 5) = 5", "max(3, 4, 6, 7) = 7", "max(4, 5, 7, 8) = 8"):
        assert line in text
    assert "H_out: ⌊(3 + 2·0 − 1·(2−1) − 1)/1⌋ + 1 = 2" in text
    # the first window's cells are marked on the input, the others are not
    assert "0 [0][1] 2" in text


def test_d2l_avgpool_windows():
    text = explain("avgpool:2,s=1")
    for line in ("(0 + 1 + 3 + 4)/4 = 2", "(1 + 2 + 4 + 5)/4 = 3", "(3 + 4 + 6 + 7)/4 = 5", "(4 + 5 + 7 + 8)/4 = 6"):
        assert line in text


def test_corr2d_seed_example():
    text = explain("conv:weight=0 1; 2 3")
    assert "0×0 + 1×1 + 3×2 + 4×3 = 19" in text
    assert "1×0 + 2×1 + 4×2 + 5×3 = 25" in text
    assert "3×0 + 4×1 + 6×2 + 7×3 = 37" in text
    assert "4×0 + 5×1 + 7×2 + 8×3 = 43" in text


def test_conv_bias_and_negative_weights():
    text = explain("conv:weight=1 -1,bias=0.5", matrix="3 1")
    assert "3×1 + 1×(-1) + 0.5 = 2.5" in text
    assert "+ 0.5 is the bias" in text


def test_divisor_override_seed_example():
    text = explain("nn.AvgPool2d((2, 2), stride=(2, 2), divisor_override=3)", matrix=ONES16)
    assert text.count("(1 + 1 + 1 + 1)/3 = 1.3333") == 4
    assert "divisor_override=3 replaces the count 4" in text


def test_d2l_padded_maxpool_draws_padding():
    text = explain("nn.MaxPool2d(3, padding=1, stride=2)", matrix=ARANGE16)
    assert "max(0, 1, 4, 5) = 5" in text
    assert "max(1, 2, 3, 5, 6, 7) = 7" in text
    assert "max(4, 5, 8, 9, 12, 13) = 13" in text
    assert "max(5, 6, 7, 9, 10, 11, 13, 14, 15) = 15" in text
    assert "padding shown as -∞" in text
    assert "5 padded cells (-∞) never win" in text
    assert "[-∞]" in text  # padded cells of a window are marked too


def test_count_include_pad_shown_both_ways():
    counted = explain("avgpool:2,s=1,p=1")
    assert "(0 + 0 + 0 + 0)/4 = 0" in counted
    assert "3 padded zeros counted (count_include_pad=true): /4" in counted
    assert "(0 + 0 + 1 + 3 + 4)/4 = 2" not in counted
    assert "Y[1, 1] = (0 + 1 + 3 + 4)/4 = 2" in counted
    assert "Y[0, 1] = (0 + 0 + 0 + 1)/4 = 0.25" in counted
    excluded = explain("avgpool:2,s=1,p=1,count_include_pad=false")
    assert "Y[0, 1] = (0 + 1)/2 = 0.5" in excluded
    assert "2 padded cells not counted (count_include_pad=false): /2" in excluded


def test_ceil_mode_overhang_shown_outside():
    text = explain("avgpool:2,ceil=true")
    assert "Y[0, 1] = (2 + 5)/2 = 3.5" in text
    assert "2 cells beyond the padded input (ceil_mode overhang): not read" in text
    assert "[·]" in text
    assert "⌈(3 + 2·0 − 1·(2−1) − 1)/2⌉ + 1 = 2" in text


def test_lppool_and_torch_ceil_scaling():
    text = explain("lppool:2,k=2,ceil=true")
    assert "Y[0, 0] = (0^2 + 1^2 + 3^2 + 4^2)^(1/2) = 5.099" in text
    assert "Y[0, 1] = ((2^2 + 5^2)·4/2)^(1/2) = 7.6158" in text
    assert "Y[1, 1] = ((8^2)·4/1)^(1/2) = 16" in text


def test_minpool_and_median_lower_middle():
    assert "Y[1, 1] = min(4, 5, 7, 8) = 4" in explain("minpool:2,s=1")
    text = explain("medianpool:2,s=1")
    assert "Y[0, 0] = median(0, 1, 3, 4) = 1" in text
    assert "sorted 0 ≤ 1 ≤ 3 ≤ 4: the lower of the two middle values" in text
    assert "Y[0, 0] = median(0, 1, 2, 3, 4, 5, 6, 7, 8) = 4" in explain("medianpool:3")


def test_adaptive_and_global():
    text = explain("adaptiveavgpool:1x3", matrix="0 1 2 3 4; 5 6 7 8 9")
    assert "Y[0, 1] = (1 + 2 + 3 + 6 + 7 + 8)/6 = 4.5" in text
    assert "rows [0, 2) × cols [1, 4)" in text
    assert "Y[0, 0] = max(0, 1, 2, 3, 4, 5, 6, 7, 8) = 8" in explain("globalmaxpool")
    assert "Y[0, 0] = (0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8)/9 = 4" in explain("globalavgpool")


def test_pad_says_where_each_value_comes_from():
    text = explain("pad:1,mode=reflect")
    assert "Y[0, 0] = X[1, 1] = 4  (reflect: row -1 → 1, col -1 → 1)" in text
    assert "the 9 inner cells are X itself; the 16 padded cells:" in text
    constant = explain("pad:1,value=-1")
    assert "Y[0, 0] = -1  (constant padding, value=-1)" in constant
    assert "H_out: 3 + 1 + 1 = 5" in constant


def test_conv_padding_modes_show_sources():
    text = explain("conv:weight=1,p=1,padding_mode=replicate", matrix="1 2; 3 4")
    assert "Y[0, 0] = 1×1 = 1" in text
    assert "padded cells copy real ones: (-1, -1)←(0, 0)" in text


def test_activations():
    text = explain("sigmoid", "relu", "leakyrelu:0.2", "tanh", matrix="-1 0; 1 2")
    assert "Y[0, 1] = sigmoid(0) = 1/(1 + e^0) = 0.5" in text
    assert "Y[0, 0] = sigmoid(-1) = 1/(1 + e^1) = 0.2689" in text
    assert "relu(0.2689) = max(0, 0.2689) = 0.2689" in text
    assert "leakyrelu(-2) = 0.2·(-2) = -0.4" in explain("leakyrelu:0.2", matrix="-2")
    assert "relu(-1) = max(0, -1) = 0" in explain("relu", matrix="-1")


def test_stages_feed_each_other_and_unpool_says_where_values_go():
    text = explain("maxpool:2", "maxunpool", matrix=ARANGE16)
    assert "#0  maxpool:k=2" in text and "#1  maxunpool" in text
    assert "5 → position 5 = (1, 1), the max of window (0, 0)" in text
    assert "15 → position 15 = (3, 3), the max of window (1, 1)" in text
    assert "every other position of the 4×4 output is 0" in text
    assert "H_out: stage 0 maxpool's input H = 4" in text


def test_unpool_overlapping_windows_note_overwrites():
    text = explain("maxpool:2,s=1", "maxunpool", matrix="0 0 0; 0 9 0; 0 0 0")
    assert "9 → position 4 = (1, 1), the max of window (0, 1)  (overwrites window (0, 0)'s value)" in text


def test_grayscale_flatten_linear(tmp_path):
    path = _save(tmp_path, np.arange(6, dtype=np.float32).reshape(3, 1, 2) * np.float32(1))
    text = explain("grayscale", "flatten", "linear:2", matrix=None, path=path)
    assert "Y[0, 0] = 0.299·0 + 0.587·2 + 0.114·4 = 1.63" in text
    assert "Y[1] = X[0, 0, 1] = 2.63" in text
    assert "features: out_features = 2" in text


def test_explain_stage_is_callable_directly():
    parts, out = ex.explain_stage(parse_stage("maxpool:2,s=1"), np.arange(9.0).reshape(1, 1, 3, 3))
    assert out.tolist() == [[[[4.0, 5.0], [7.0, 8.0]]]]
    assert "max(4, 5, 7, 8) = 8" in render(parts)
    parts, out = ex.explain_stage(parse_stage("maxpool:2,s=1"), np.arange(9.0).reshape(1, 1, 3, 3), select=(1, 0))
    assert expressions(render(parts)) == ["Y[1, 0] = max(3, 4, 6, 7) = 7"]


# --------------------------------------------------------------------------- options and limits


def test_step_and_only_show_one_element():
    assert expressions(explain("maxpool:2,s=1", step=3)) == ["Y[1, 1] = max(4, 5, 7, 8) = 8"]
    assert expressions(explain("maxpool:2,s=1", only="0,1")) == ["Y[0, 1] = max(1, 2, 4, 5) = 5"]
    assert expressions(explain("conv:weight=0 1; 2 3", step=2)) == ["Y[1, 0] = 3×0 + 4×1 + 6×2 + 7×3 = 37"]


def test_step_outside_one_stage_is_noted_outside_all_is_an_error():
    text = explain("maxpool:2", "maxunpool", matrix=ARANGE16, step=5)
    assert "(--step 5 is outside this stage's 2×2 output)" in text
    assert "Y[1, 1] = 5: X[0, 0], the max of window (0, 0) was at position 5 = (1, 1)" in text
    with pytest.raises(UsageError, match="outside every stage's output"):
        explain("maxpool:2,s=1", step=4)
    with pytest.raises(UsageError, match="outside every stage's output"):
        explain("maxpool:2,s=1", only="0,2")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"step": 1, "only": "0,0"}, "--step and --only"),
        ({"step": -1}, "negative"),
        ({"only": "a,b"}, "is not i,j"),
        ({"matrix": None}, "exactly one input"),
        ({"path": "x.npy"}, "exactly one input"),
        ({"crop": "0,0,9,9"}, "does not fit"),
        ({"crop": "1,2"}, "is not X,Y,W,H"),
    ],
)
def test_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        explain("maxpool:2", **kwargs)


def test_stages_without_explanation_are_refused_before_any_output(tmp_path):
    out = io.StringIO()
    env = Environment(stdout=out)
    with pytest.raises(UsageError, match="fractionalmaxpool has no window-by-window explanation"):
        ex.explain_command(ARANGE16, None, ["maxpool:1", "fractionalmaxpool:2,output_size=2"], None, None, None, None, env)
    assert out.getvalue() == ""
    with pytest.raises(UsageError, match="linear on 100 features is too big"):
        ex.explain_command(ONES16, None, ["pad:3", "flatten", "linear:2"], None, None, None, None, env)
    with pytest.raises(UsageError, match="no stages"):
        ex.explain_command(D2L, None, None, None, None, None, None, env)
    with pytest.raises(SpecError):
        ex.explain_command(D2L, None, ["maxpool:k=two"], None, None, None, None, env)
    with pytest.raises(PlanError):
        ex.explain_command(D2L, None, ["maxpool:4"], None, None, None, None, env)
    with pytest.raises(UsageError, match="too big to explain"):
        ex.explain_command(None, _save(tmp_path, np.zeros((300, 300))), ["relu"], None, None, None, None, env)


def _save(tmp_path, array: np.ndarray, name: str = "x.npy") -> str:
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",")
    return str(path)


def test_big_input_prints_a_bounded_walkthrough(tmp_path):
    path = _save(tmp_path, np.arange(1600, dtype=np.float32).reshape(40, 40))
    text = explain("maxpool:2", matrix=None, path=path)
    assert len(text.splitlines()) < 200
    assert "... 392 more windows (use --step N or --only i,j to see one)" in text
    assert len(expressions(text)) == 8
    assert "input X (40×40)  (top-left 16×16 shown)" in text
    assert "Y[0, 0] = max(0, 1, 40, 41) = 41" in text
    one = explain("maxpool:2", matrix=None, path=path, only="19,19")
    assert expressions(one) == ["Y[19, 19] = max(1558, 1559, 1598, 1599) = 1599"]


def test_multi_channel_arrays_are_explained_per_channel_with_a_limit(tmp_path):
    path = _save(tmp_path, np.arange(5 * 4, dtype=np.float32).reshape(5, 2, 2))
    text = explain("maxpool:2", matrix=None, path=path)
    assert [line for line in text.splitlines() if line.startswith("channel ")] == ["channel 0", "channel 1", "channel 2"]
    assert "... 2 more channels not shown (computed the same way)" in text
    assert "Y[0, 0] = max(8, 9, 10, 11) = 11" in text


def test_csv_file_and_crop(tmp_path):
    path = _save(tmp_path, np.arange(36, dtype=np.float64).reshape(6, 6), "x.csv")
    text = explain("maxpool:2", matrix=None, path=path, crop="1,2,2,2")
    assert "crop 1,2,2,2: 1×1×2×2" in text
    assert "Y[0, 0] = max(13, 14, 19, 20) = 20" in text


def test_explain_does_not_import_torch():
    code = textwrap.dedent(
        """
        import io, sys
        from poolcli.cli.environment import Environment
        from poolcli.render.explain import explain_command
        env = Environment(stdout=io.StringIO())
        specs = ["maxpool:2,s=1", "conv:filter=sobel-x,p=1", "maxunpool", "pad:1,mode=reflect", "sigmoid",
                 "avgpool:2,p=1", "medianpool:2", "lppool:2,k=1", "globalavgpool", "flatten", "linear:2"]
        explain_command("0 1 2; 3 4 5; 6 7 8", None, specs, None, None, None, None, env)
        assert "max(0, 1, 3, 4) = 4" in env.stdout.getvalue()
        print("torch" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_cli_command(invoke):
    result = invoke("explain", "--matrix", D2L, "-S", "maxpool:2,s=1", "--only", "1,1")
    assert result.exit_code == 0, result.output
    assert "max(4, 5, 7, 8) = 8" in result.output
    result = invoke("explain", "--matrix", D2L, "-S", "fractionalmaxpool:2,output_size=2")
    assert result.exit_code == 2


# --------------------------------------------------------------------------- number formatting


@pytest.mark.parametrize(
    "value, text",
    [(4.0, "4"), (4 / 3, "1.3333"), (-0.0, "0"), (0.5, "0.5"), (-2.25, "-2.25"), (float("-inf"), "-inf"),
     (float("nan"), "nan"), (1e-6, "1e-06"), (np.float32(0.1), "0.1"), (np.int64(7), "7")],
)
def test_fmt(value, text):
    assert ex.fmt(value) == text


# --------------------------------------------------------------------------- the oracle vs torch

torch = pytest.importorskip("torch")
F = torch.nn.functional

# EXPLAIN_EXAMPLES=2000 runs the properties harder (they passed 1500 when written)
SETTINGS = settings(max_examples=int(os.environ.get("EXPLAIN_EXAMPLES", "60")), deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _t(X: np.ndarray):
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
    ho, wo = ex.window_shape((H, W), (kh, kw), (sh, sw), (ph, pw), (dh, dw), ceil)
    assume(ho >= 1 and wo >= 1)
    low = 0 if positive else -6
    X = draw(arrays(np.float64, (H, W), elements=st.integers(low, 6).map(float)))
    return X, dict(kernel_size=(kh, kw), stride=(sh, sw), padding=(ph, pw), dilation=(dh, dw), ceil_mode=ceil)


@SETTINGS
@given(pool_cases())
def test_maxpool_and_indices_equal_torch(case):
    X, p = case
    ours, indices = ex.pool2d(X, mode="max", return_indices=True, **p)
    theirs, their_indices = F.max_pool2d(_t(X), p["kernel_size"], p["stride"], p["padding"], p["dilation"],
                                         p["ceil_mode"], return_indices=True)
    assert np.array_equal(ours, _np(theirs))
    real = np.isfinite(ours)  # a dilated window can miss every real cell: -inf, index not compared
    assert np.array_equal(indices[real], _np(their_indices)[real])


@SETTINGS
@given(pool_cases())
def test_minpool_equals_negated_torch_maxpool_and_the_stage(case):
    X, p = case
    ours = ex.pool2d(X, mode="min", **p)
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
    ours = ex.pool2d(X, p["kernel_size"], p["stride"], p["padding"], ceil_mode=p["ceil_mode"], mode="avg",
                     count_include_pad=count_include_pad, divisor_override=divisor_override)
    theirs = F.avg_pool2d(_t(X), p["kernel_size"], p["stride"], p["padding"], p["ceil_mode"], count_include_pad,
                          divisor_override)
    np.testing.assert_allclose(ours, _np(theirs), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(pool_cases(padding=False, dilation=False, positive=True), st.sampled_from([1.0, 2.0, 3.0, 1.5]))
def test_lppool_equals_torch(case, norm_type):
    X, p = case
    ours = ex.pool2d(X, p["kernel_size"], p["stride"], ceil_mode=p["ceil_mode"], mode="lp", norm_type=norm_type)
    theirs = F.lp_pool2d(_t(X), norm_type, p["kernel_size"], p["stride"], p["ceil_mode"])
    np.testing.assert_allclose(ours, _np(theirs), rtol=1e-9, atol=1e-9)


@SETTINGS
@given(pool_cases(padding=False))
def test_medianpool_equals_torch_median_and_the_stage(case):
    X, p = case
    ours = ex.pool2d(X, p["kernel_size"], p["stride"], dilation=p["dilation"], ceil_mode=p["ceil_mode"], mode="median")
    # torch.median of each window's real cells (lower middle for even counts)
    expected = np.zeros_like(ours)
    for window in ex.windows(X, p["kernel_size"], p["stride"], (0, 0), p["dilation"], p["ceil_mode"]):
        cells = torch.tensor([c.value for c in window.cells if c.kind == ex.REAL], dtype=torch.float64)
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
    ho, wo = ex.window_shape((H, W), (kh, kw), stride, lrtb, dilation)
    assume(ho >= 1 and wo >= 1)
    X = draw(arrays(np.float64, (H, W), elements=st.integers(-5, 5).map(float)))
    K = draw(arrays(np.float64, (kh, kw), elements=st.integers(-3, 3).map(float)))
    return X, K, stride, lrtb, dilation, mode


@SETTINGS
@given(conv_cases())
def test_corr2d_equals_torch_conv2d(case):
    X, K, stride, lrtb, dilation, mode = case
    ours = ex.corr2d(X, K, stride, lrtb, dilation, mode)
    padded = F.pad(_t(X), lrtb, mode="constant" if mode == "zeros" else mode)
    theirs = F.conv2d(padded, torch.from_numpy(K)[None, None], None, stride, 0, dilation)
    np.testing.assert_allclose(ours, _np(theirs), rtol=1e-12, atol=1e-12)


@SETTINGS
@given(conv_cases())
def test_pad2d_equals_torch_pad(case):
    X, _, _, lrtb, _, mode = case
    torch_mode = "constant" if mode == "zeros" else mode
    ours = ex.pad2d(X, lrtb, torch_mode, value=2.5)
    theirs = F.pad(_t(X), lrtb, mode=torch_mode, **({"value": 2.5} if torch_mode == "constant" else {}))
    assert np.array_equal(ours, _np(theirs))


@SETTINGS
@given(pool_cases(dilation=False))
def test_unpool2d_equals_torch_max_unpool2d(case):
    X, p = case
    pooled, indices = F.max_pool2d(_t(X), p["kernel_size"], p["stride"], p["padding"], 1, p["ceil_mode"], True)
    assume(bool(torch.isfinite(pooled).all()))
    size = X.shape
    for n, k, st_, pd in zip(size, p["kernel_size"], p["stride"], p["padding"]):
        default = (ex.output_length(n, k, st_, pd, pd, 1, p["ceil_mode"]) - 1) * st_ - 2 * pd + k
        assume(default - st_ < n < default + st_)  # torch's bounds on an explicit output_size
    ours = ex.unpool2d(_np(pooled), _np(indices), size)
    theirs = F.max_unpool2d(pooled, indices, p["kernel_size"], p["stride"], p["padding"], output_size=size)
    assert np.array_equal(ours, _np(theirs))


@SETTINGS
@given(arrays(np.float64, st.tuples(st.integers(1, 9), st.integers(1, 9)), elements=st.integers(-9, 9).map(float)),
       st.integers(1, 5), st.integers(1, 5))
def test_adaptive_pools_equal_torch(X, oh, ow):
    np.testing.assert_array_equal(ex.adaptive_pool2d(X, (oh, ow), "max"), _np(F.adaptive_max_pool2d(_t(X), (oh, ow))))
    np.testing.assert_allclose(ex.adaptive_pool2d(X, (oh, ow), "avg"), _np(F.adaptive_avg_pool2d(_t(X), (oh, ow))),
                               rtol=1e-12, atol=1e-12)


@SETTINGS
@given(st.floats(-30, 30, allow_nan=False), st.floats(0.001, 1))
def test_activations_equal_torch(x, slope):
    t = torch.tensor([x], dtype=torch.float64)
    assert ex.activation("relu", x) == F.relu(t).item()
    assert ex.activation("leakyrelu", x, slope) == pytest.approx(F.leaky_relu(t, slope).item(), rel=1e-12, abs=1e-300)
    assert ex.activation("sigmoid", x) == pytest.approx(torch.sigmoid(t).item(), rel=1e-12)
    assert ex.activation("tanh", x) == pytest.approx(torch.tanh(t).item(), rel=1e-12, abs=1e-15)


PIPELINES = [
    ["maxpool:2,s=1", "conv:weight=0 1; 2 3", "sigmoid"],
    ["nn.MaxPool2d(3, padding=1, stride=2)", "maxunpool"],
    ["pad:1,mode=reflect", "avgpool:3,s=2,ceil=true,count_include_pad=false", "tanh"],
    ["conv:filter=sobel-x,p=1,channels=sum", "relu", "medianpool:2"],
    ["nn.Conv2d(3, 2, kernel_size=2)", "leakyrelu:0.2", "adaptiveavgpool:2x3", "flatten", "linear:3"],
    ["grayscale", "lppool:2,k=2", "globalmaxpool"],
    ["minpool:2,d=2,p=1", "avgpool:2,divisor_override=3", "globalavgpool"],
]


@pytest.mark.parametrize("specs", PIPELINES, ids=lambda s: " | ".join(s))
def test_walkthrough_output_equals_the_torch_engine(specs):
    from poolcli.core.plan import Pipeline

    rng = np.random.default_rng(7)
    x = rng.integers(0, 9, size=(1, 3, 7, 8)).astype(np.float32)
    pipeline = Pipeline([parse_stage(s) for s in specs])
    plan = pipeline.plan(x.shape)
    expected = run_pipeline(pipeline, x, engine="torch").values()
    context = ex.ExplainContext()
    y = x.astype(np.float64)
    for stage_plan in plan.stages:
        context.index = stage_plan.index
        parts, y = ex.explain_stage(stage_plan.stage, y, plan=stage_plan, context=context)
        assert render(parts)
    np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)
