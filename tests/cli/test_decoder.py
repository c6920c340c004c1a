"""The decoder stages through the CLI: the example encoder-decoder back to the input's size, the
table's formulas and fractional jumps, torch's refusals as one line with exit 2, tiled runs equal
to whole ones, and 8-bit bilinear output that auto leaves unstretched."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from conftest import ROOT, SAMPLES

EXAMPLE = str(ROOT / "examples" / "conv_encoder_decoder.toml")
COFFEE = str(SAMPLES / "coffee.png")


def _read(path):
    return np.asarray(Image.open(path))


def test_example_goes_down_to_an_eighth_and_back_to_the_input_size(invoke, tmp_path):
    result = invoke("shape", COFFEE, "--pipeline", EXAMPLE, "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    shapes = [stage["output_shape"] for stage in record["stages"]]
    assert record["input_shape"] == [1, 3, 240, 360] and record["output_shape"] == [1, 3, 240, 360]
    assert min(shape[2] for shape in shapes) == 240 // 8 and min(shape[3] for shape in shapes) == 360 // 8
    assert record["stages"][5]["formula"]["H"] == "(30 − 1)·2 − 2·1 + 1·(3 − 1) + 1 + 1 = 60"
    assert record["stages"][7]["formula"]["W"] == "⌊90·2⌋ = 180"
    out = tmp_path / "decoded.png"
    result = invoke("run", COFFEE, "--pipeline", EXAMPLE, "-o", str(out), "-q")
    assert result.exit_code == 0, result.stderr
    assert _read(out).shape == _read(COFFEE).shape


def test_table_writes_fractional_jumps_and_json_keeps_numbers(invoke):
    specs = ["-S", "maxpool:2", "-S", "upsample:4,mode=bilinear", "-S", "convtranspose:filter=box,k=2,s=3"]
    table = invoke("shape", "1x1x16x16", *specs)
    assert table.exit_code == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines() if line.strip()[:2] in ("0 ", "1 ", "2 ")]
    assert [row[-3] for row in rows] == ["2", "1/2", "1/6"]  # the jump column: 2, then ÷4, then ÷3
    record = json.loads(invoke("shape", "1x1x16x16", *specs, "--json").stdout)
    assert [stage["jump"] for stage in record["stages"]] == [[2, 2], [0.5, 0.5], [0.1667, 0.1667]]
    assert "jump_fraction" not in record["stages"][0]
    assert [stage.get("jump_fraction") for stage in record["stages"][1:]] == [["1/2", "1/2"], ["1/6", "1/6"]]


def test_a_bound_is_written_with_less_or_equal(invoke):
    result = invoke("shape", "1x1x32x32", "-S", "maxpool:2", "-S", "upsample:2,mode=bilinear", "-S", "maxpool:k=1,s=3",
                    "-S", "upsample:2,mode=bilinear", "--json")
    stages = json.loads(result.stdout)["stages"]
    assert stages[3]["receptive_field_exact"] == [False, False]
    table = invoke("shape", "1x1x32x32", "-S", "maxpool:2", "-S", "upsample:2,mode=bilinear", "-S", "maxpool:k=1,s=3",
                   "-S", "upsample:2,mode=bilinear")
    assert f"≤{stages[3]['receptive_field'][0]}" in table.stdout


@pytest.mark.parametrize("spec, words", [
    ("convtranspose:filter=box,k=3,s=2,output_padding=2", "smaller than either stride (2) or dilation (1)"),
    ("nn.ConvTranspose2d(3, 3, 3, padding_mode='circular')", 'Only "zeros" padding mode'),
    ("convtranspose:filter=box,k=3,p=200", "(240 − 1)·1 − 2·200 + 1·(3 − 1) + 0 + 1 = -158"),
    ("upsample", "either size or scale_factor should be defined"),
    ("nn.Upsample(size=4, scale_factor=2)", "only one of size or scale_factor should be defined"),
    ("nn.Upsample(scale_factor=2, align_corners=True)", "align_corners option can only be set"),
    ("upsample:0.001", "Input and output sizes should be greater than 0"),
])
def test_refusals_are_one_line_and_exit_2_before_any_pixel(invoke, tmp_path, spec, words):
    out = tmp_path / "never.png"
    result = invoke("run", COFFEE, "-S", spec, "-o", str(out))
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and result.stderr.startswith("poolcli: error:") and result.stderr.count("\n") == 1
    assert words in result.stderr
    assert not out.exists()


def test_explain_walks_through_d2l_transposed_convolution(invoke, tmp_path):
    result = invoke("explain", "--matrix", "0 1; 2 3", "-S", "convtranspose:weight=0 1; 2 3")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    for line in ("X[1, 1]·K = 3·K, added from Y[1, 1]", "Y[1, 1] = 0×3 + 1×2 + 2×1 + 3×0 = 4", "Y[2, 1] = 2×3 + 3×2 = 12",
                 "zeros inserted and padded (4×4)", "kernel flipped (2×2)", "0 0 0 1 1 0 4 6 2 4 12 9"):
        assert line in text, line
    gif = tmp_path / "d2l.gif"
    animated = invoke("explain", "--matrix", "0 1; 2 3", "-S", "convtranspose:weight=0 1; 2 3", "-S", "upsample:2,bilinear",
                      "--animate", str(gif))
    assert animated.exit_code == 0 and gif.exists() and "(0 frames)" not in animated.stdout


def test_explain_shows_an_upsampled_cell_from_its_sources(invoke):
    result = invoke("explain", "--matrix", "0 1; 2 3", "-S", "upsample:2,mode=bilinear", "--only", "1,2")
    assert result.exit_code == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "Y[1, 2] = 0.1875×0 + 0.5625×1 + 0.0625×2 + 0.1875×3 = 1.25" in text
    assert "rows: 0.75·[0] + 0.25·[1]; columns: 0.25·[0] + 0.75·[1]" in text


@pytest.mark.parametrize("stages", [
    ["-S", "upsample:2,mode=bilinear", "-S", "conv:filter=sobel-x,p=1"],
    ["-S", "nn.ConvTranspose2d(3, 3, 3, stride=2, padding=1, output_padding=1)", "-S", "upsample:2,mode=bicubic"],
    ["-S", "maxpool:2", "-S", "upsample:4"],
])
def test_tiled_runs_write_what_whole_runs_write(invoke, tmp_path, stages):
    whole = invoke("run", COFFEE, *stages, "-o", str(tmp_path / "whole.png"), "-q", "--seed", "4")
    assert whole.exit_code == 0, whole.output
    tiled = invoke("run", COFFEE, *stages, "-o", str(tmp_path / "tiled.png"), "--memory", "8M", "--seed", "4")
    assert tiled.exit_code == 0, tiled.output
    assert "note: tiled:" in " ".join(tiled.stdout.split())
    np.testing.assert_array_equal(_read(tmp_path / "whole.png"), _read(tmp_path / "tiled.png"))


def test_an_upsample_that_cannot_tile_says_why_and_runs_whole_when_it_fits(invoke, tmp_path):
    short = invoke("run", COFFEE, "-S", "upsample:3", "-o", str(tmp_path / "a.png"), "--memory", "2M")
    assert short.exit_code == 1 and "tiles need a power of two" in short.stderr
    roomy = invoke("run", COFFEE, "-S", "upsample:3", "-o", str(tmp_path / "b.png"), "-q")
    assert roomy.exit_code == 0 and _read(tmp_path / "b.png").shape == (720, 1080, 3)


def test_nearest_doubles_each_pixel_exactly(invoke, tmp_path):
    out = tmp_path / "big.png"
    assert invoke("run", COFFEE, "-S", "nn.UpsamplingNearest2d(scale_factor=2)", "-o", str(out), "-q").exit_code == 0
    big, small = _read(out), _read(COFFEE)
    for dy in (0, 1):
        for dx in (0, 1):
            np.testing.assert_array_equal(big[dy::2, dx::2], small)


def test_bilinear_on_8_bit_is_not_stretched(invoke, tmp_path):
    """Weights that sum to 1 give 255.00002 for a white plane: round-off, not a reason to stretch."""
    white = tmp_path / "white.png"
    Image.fromarray(np.full((7, 9, 3), 255, np.uint8)).save(white)
    out = tmp_path / "up.png"
    result = invoke("run", str(white), "-S", "nn.UpsamplingBilinear2d(size=(23, 31))", "-S", "conv:filter=box,k=1",
                    "-o", str(out))
    assert result.exit_code == 0, result.output
    assert "minmax" not in result.stdout
    assert (_read(out) == 255).all()
    coffee = tmp_path / "coffee_up.png"
    result = invoke("run", COFFEE, "-S", "upsample:2,mode=bilinear", "-o", str(coffee))
    assert "minmax" not in result.stdout
