"""poolcli.render.explain: the seeds' worked examples verbatim, as explain prints them from the
walkthrough (no torch here: the loops are checked against torch in tests/core/test_textbook.py)."""

from __future__ import annotations

import io

import numpy as np

from poolcli.cli.explaining import KernelWeights
from poolcli.core.plan import Pipeline
from poolcli.core.spec import parse_stage
from poolcli.core.walkthrough import Segment, Select, Step, Terms, WalkContext, walk, walk_stage
from poolcli.io.reading import load_matrix
from poolcli.render.explain import caption, line_text, render, render_stage

D2L = "0 1 2; 3 4 5; 6 7 8"
ARANGE16 = "0 1 2 3; 4 5 6 7; 8 9 10 11; 12 13 14 15"
ONES16 = "1 1 1 1; 1 1 1 1; 1 1 1 1; 1 1 1 1"


def printed(parts) -> str:
    from rich.console import Console

    console = Console(file=io.StringIO(), width=120, record=True, color_system=None)
    for part in parts:
        console.print(part)
    return console.export_text()


def explain(*specs: str, matrix: str | None = D2L, array: np.ndarray | None = None, step: int | None = None,
            only: tuple[int, int] | None = None) -> str:
    """Every stage's walkthrough as plain text, rendered at 120 columns."""
    x = np.asarray(load_matrix(matrix) if array is None else array, dtype=np.float64)
    x = x.reshape((1,) * (4 - x.ndim) + x.shape)
    plan = Pipeline([parse_stage(s) for s in specs]).plan(x.shape)
    context = WalkContext(weights=KernelWeights())
    parts = [part for stage in walk(plan, x.tolist(), context=context, select=Select(step=step, only=only))
             for part in render(stage)]
    return printed(parts)


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


def test_grayscale_flatten_linear_on_floats():
    text = explain("grayscale", "flatten", "linear:2", array=np.arange(6, dtype=np.float32).reshape(3, 1, 2))
    assert "Y[0, 0] = 0.299·0 + 0.587·2 + 0.114·4 = 1.63" in text
    assert "Y[1] = X[0, 0, 1] = 2.63" in text
    assert "features: out_features = 2" in text


def test_step_and_only_show_one_element():
    assert expressions(explain("maxpool:2,s=1", step=3)) == ["Y[1, 1] = max(4, 5, 7, 8) = 8"]
    assert expressions(explain("maxpool:2,s=1", only=(0, 1))) == ["Y[0, 1] = max(1, 2, 4, 5) = 5"]
    assert expressions(explain("conv:weight=0 1; 2 3", step=2)) == ["Y[1, 0] = 3×0 + 4×1 + 6×2 + 7×3 = 37"]


def test_step_outside_one_stage_is_noted():
    text = explain("maxpool:2", "maxunpool", matrix=ARANGE16, step=5)
    assert "(--step 5 is outside this stage's 2×2 output)" in text
    assert "Y[1, 1] = 5: X[0, 0], the max of window (0, 0) was at position 5 = (1, 1)" in text


def test_big_input_prints_a_bounded_walkthrough():
    big = np.arange(1600, dtype=np.float32).reshape(40, 40)
    text = explain("maxpool:2", array=big)
    assert len(text.splitlines()) < 200
    assert "... 392 more windows (use --step N or --only i,j to see one)" in text
    assert len(expressions(text)) == 8
    assert "input X (40×40)  (top-left 16×16 shown)" in text
    assert "Y[0, 0] = max(0, 1, 40, 41) = 41" in text
    one = explain("maxpool:2", array=big, only=(19, 19))
    assert expressions(one) == ["Y[19, 19] = max(1558, 1559, 1598, 1599) = 1599"]


def test_multi_channel_arrays_are_explained_per_channel_with_a_limit():
    text = explain("maxpool:2", array=np.arange(5 * 4, dtype=np.float32).reshape(5, 2, 2))
    assert [line for line in text.splitlines() if line.startswith("channel ")] == ["channel 0", "channel 1", "channel 2"]
    assert "... 2 more channels not shown (computed the same way)" in text
    assert "Y[0, 0] = max(8, 9, 10, 11) = 11" in text


def test_a_stage_walk_renders_directly():
    x = np.arange(9.0).reshape(1, 1, 3, 3).tolist()
    assert "max(4, 5, 7, 8) = 8" in printed(render_stage(walk_stage(parse_stage("maxpool:2,s=1"), x)))
    one = walk_stage(parse_stage("maxpool:2,s=1"), x, select=(1, 0))
    assert expressions(printed(render_stage(one))) == ["Y[1, 0] = max(3, 4, 6, 7) = 7"]


# --------------------------------------------------------------------------- lines and captions


def test_a_line_is_built_once_for_print_and_caption():
    line = (Segment("Y[0, 0] = "), Segment("max("), Terms(tuple(Segment(str(v)) for v in range(30)), ", "),
            Segment(")"), Segment(" = "), Segment("29", "value"))
    text = line_text(line)
    assert text.plain == caption(line) == "Y[0, 0] = max(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, … 16 more …, 28, 29) = 29"
    assert any(span.style == "bold" and text.plain[span.start:span.end] == "29" for span in text.spans)


def test_padded_terms_are_dim_and_values_bold():
    walkthrough = walk_stage(parse_stage("avgpool:2,s=1,p=1"), np.arange(9.0).reshape(1, 1, 3, 3).tolist())
    step = next(item for item in walkthrough.items() if isinstance(item, Step))
    text = line_text(step.line)
    assert caption(step.line) == "Y[0, 0] = (0 + 0 + 0 + 0)/4 = 0"
    assert [span.style for span in text.spans] == ["dim", "dim", "dim", "bold"]


def test_integer_pixels_print_pillows_fixed_point():
    x = np.array([[[[255.0]], [[0.0]], [[0.0]]]]).tolist()
    plan = Pipeline([parse_stage("grayscale")]).plan((1, 3, 1, 1))
    stage = next(walk(plan, x, context=WalkContext(integer=True)))
    text = printed(render_stage(stage))
    assert "Y[0, 0] = (19595·255 + 38470·0 + 7471·0 + 32768) >> 16 = 76" in text
    assert "Pillow's fixed point" in text
