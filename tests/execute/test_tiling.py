"""Tiled execution: the regions it plans, the mode the memory estimate picks, and outputs equal
to the whole-image run's for random pipelines, image sizes and tile sizes, on both engines."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from poolcli.execute import memory as tiling
from poolcli.batch import InputItem, ProcessOptions
from poolcli.batch.flow import Flow as Processor
from poolcli.execute.quantize import quantize
from poolcli.execute.run import run_pipeline, run_tiled
from poolcli.errors import PlanError, SpecError, UsageError
from poolcli.core.plan import Pipeline
from poolcli.core.ops import AxisWindow
from poolcli.execute import tiling as geometry
from poolcli.execute.memory import MemoryBudgetError, choose_execution, parse_memory_size
from poolcli.execute.tiling import axis_input_range, tile_grid, tile_region, tiling_obstacle


def stage_windows(stage):
    return stage.windows()


def test_module_examples():
    assert doctest.testmod(tiling).failed == 0
    assert doctest.testmod(geometry).failed == 0


# --------------------------------------------------------------------------- regions


def test_inner_tile_starts_on_the_stride_and_keeps_only_whole_windows():
    # maxpool:3,s=2,p=1 on 9 rows: output o reads rows 2o−1 … 2o+1
    window = AxisWindow(3, 2, 1, 1)
    assert axis_input_range(window, 9, 0, 2) == (0, 4)  # the edge tile takes the real padding
    assert axis_input_range(window, 9, 2, 4) == (2, 8)
    assert axis_input_range(window, 9, 4, 5) == (6, 9)


def test_reflect_padding_keeps_enough_real_rows():
    window = AxisWindow(1, 1, 3, 3, min_length=4)  # pad:3,mode=reflect
    lo, hi = axis_input_range(window, 20, 0, 2)  # outputs all in the top padding
    assert lo == 0 and hi - lo >= 4


def test_tile_region_walks_back_through_every_stage():
    plan = Pipeline.from_specs(["conv:filter=box,k=3", "maxpool:2"]).plan((1, 1, 30, 30))
    region = tile_region(plan, (5, 10), (0, 14))
    assert region.input_rows == (10, 22) and region.input_cols == (0, 30)
    assert region.crops[1] == ((0, 5), (0, 14))


def test_tile_grid_covers_the_output_once():
    tiles = tile_grid((7, 5), (3, 2))
    covered = np.zeros((7, 5), int)
    for (r0, r1), (c0, c1) in tiles:
        covered[r0:r1, c0:c1] += 1
    assert (covered == 1).all()


@pytest.mark.parametrize(
    "spec, reason",
    [
        ("adaptiveavgpool:3", "adaptiveavgpool needs the whole plane"),
        ("adaptivemaxpool:3", "needs the whole plane"),
        ("globalavgpool", "needs the whole plane"),
        ("globalmaxpool", "needs the whole plane"),
        ("fractionalmaxpool:k=2,output_ratio=0.5", "needs the whole plane"),
        ("conv:filter=box,k=3,p=1,padding_mode=circular", "circular"),
        ("pad:2,mode=circular", "circular"),
    ],
)
def test_stages_that_need_the_whole_plane(spec, reason):
    plan = Pipeline.from_specs(["relu", spec]).plan((1, 1, 16, 16))
    assert reason in tiling_obstacle(plan) and tiling_obstacle(plan).startswith("stage 1 ")


def test_unpool_flatten_and_linear_are_not_tiled():
    assert "maxunpool" in tiling_obstacle(Pipeline.from_specs(["maxpool:2", "maxunpool"]).plan((1, 1, 8, 8)))
    assert "flatten" in tiling_obstacle(Pipeline.from_specs(["flatten", "linear:3"]).plan((1, 1, 4, 4)))


def test_medianpool_is_local():
    assert not isinstance(stage_windows(Pipeline.from_specs(["medianpool:3,s=2,d=2"]).stages[0]), str)


# --------------------------------------------------------------------------- the budget and the choice


@pytest.mark.parametrize("text, size", [("512M", 512 << 20), ("2G", 2 << 30), ("1.5g", 3 << 29), ("64MiB", 64 << 20), ("3000000", 3000000)])
def test_memory_sizes(text, size):
    assert parse_memory_size(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "2X", "100"])
def test_bad_memory_sizes(text):
    with pytest.raises(UsageError, match="--memory"):
        parse_memory_size(text)


def test_default_budget_is_a_share_of_the_ram():
    assert 0 < tiling.default_memory_budget() <= (tiling.available_memory() or tiling.FALLBACK_MEMORY)


def choice(specs, shape, budget, **options):
    plan = Pipeline.from_specs(specs).plan(shape)
    return choose_execution(plan, budget=budget, input_itemsize=1, output_itemsize=1, **options)


def test_whole_image_when_it_fits_and_tiled_when_not():
    assert choice(["avgpool:2"], (1, 3, 1000, 1000), 1 << 30).mode == "whole"
    tiled = choice(["avgpool:2"], (1, 3, 1000, 1000), 16 << 20)
    assert tiled.mode == "tiled" and tiled.tiles > 1 and tiled.resident_bytes <= 16 << 20
    assert "whole image" in tiled.reason and "--memory 16 MiB" in tiled.reason
    assert tiled.record()["mode"] == "tiled" and tiled.note().startswith("tiled: ")


def test_even_tiled_it_cannot_fit():
    with pytest.raises(MemoryBudgetError) as info:
        choice(["avgpool:2"], (1, 3, 4000, 4000), 20 << 20, name="scan.png")
    message = str(info.value)
    assert "scan.png" in message and "even tiled" in message and "--memory" in message and "\n" not in message


def test_a_pipeline_that_cannot_be_tiled_says_which_stage():
    with pytest.raises(MemoryBudgetError, match="stage 1 globalavgpool needs the whole plane.*--memory"):
        choice(["relu", "globalavgpool"], (1, 3, 2000, 2000), 8 << 20)


def test_kept_stages_need_the_whole_image():
    with pytest.raises(MemoryBudgetError, match="--save-stages"):
        choice(["avgpool:2"], (1, 3, 1000, 1000), 16 << 20, keep_stages=True)


# --------------------------------------------------------------------------- tiled equals whole


def _pair(low, high):
    return st.tuples(st.integers(low, high), st.integers(low, high))


@st.composite
def window_stage(draw) -> str:
    op = draw(st.sampled_from(["maxpool", "minpool", "avgpool", "lppool", "medianpool"]))
    kh, kw = draw(_pair(1, 4))
    sh, sw = draw(_pair(1, 3))
    ceil = draw(st.booleans())
    spec = f"{op}:k={kh}x{kw},s={sh}x{sw},ceil={str(ceil).lower()}"
    if op in ("maxpool", "minpool", "avgpool"):
        spec += f",p={draw(st.integers(0, kh // 2))}x{draw(st.integers(0, kw // 2))}"
    if op in ("maxpool", "minpool", "medianpool"):
        spec += f",d={draw(st.integers(1, 2))}x{draw(st.integers(1, 2))}"
    if op == "avgpool":
        spec += f",count_include_pad={str(draw(st.booleans())).lower()}"
        spec += draw(st.sampled_from(["", ",divisor_override=3"]))
    if op == "lppool":
        spec = spec.replace("lppool:", f"lppool:{draw(st.sampled_from([1, 2, 3]))},")
    return spec


@st.composite
def conv_stage(draw) -> str:
    kernel = draw(st.sampled_from(["filter=sobel-x", "filter=box,k=3", "filter=gaussian,k=5", "filter=edge", "weight=1 2; -1 0.5"]))
    mode = draw(st.sampled_from(["zeros", "reflect", "replicate"]))
    if draw(st.booleans()):
        return f"conv:{kernel},padding=same,padding_mode={mode}"
    stride, dilation, padding = draw(_pair(1, 2)), draw(_pair(1, 2)), draw(_pair(0, 2))
    bias = draw(st.sampled_from(["", ",bias=0.1"]))
    return f"conv:{kernel},s={stride[0]}x{stride[1]},d={dilation[0]}x{dilation[1]},p={padding[0]}x{padding[1]},padding_mode={mode}{bias}"


@st.composite
def pad_stage(draw) -> str:
    amounts = ",".join(str(draw(st.integers(0, 3))) for _ in range(4))
    mode = draw(st.sampled_from(["constant", "reflect", "replicate"]))
    value = draw(st.sampled_from(["", ",value=0.5"])) if mode == "constant" else ""
    return f"pad:padding=({amounts}),mode={mode}{value}"


@st.composite
def decoder_stage(draw) -> str:
    """The enlarging stages that tile: convtranspose with any geometry, upsample by 1, 2 or 4."""
    if draw(st.booleans()):
        kernel = draw(st.sampled_from(["filter=box,k=3", "weight=1 2; -1 0.5", "weight=0 1; 2 3", "filter=sobel-x"]))
        stride, dilation, padding = draw(_pair(1, 3)), draw(_pair(1, 2)), draw(_pair(0, 2))
        output_padding = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation)]
        bias = draw(st.sampled_from(["", ",bias=0.1"]))
        return (f"convtranspose:{kernel},s={stride[0]}x{stride[1]},d={dilation[0]}x{dilation[1]},"
                f"p={padding[0]}x{padding[1]},output_padding={output_padding[0]}x{output_padding[1]}{bias}")
    factor = draw(st.sampled_from(["1", "2", "4", "2x1", "(1,4)"]))
    return f"upsample:{factor},mode={draw(st.sampled_from(['nearest', 'bilinear', 'bicubic']))}"


local_stage = st.one_of(
    window_stage(), conv_stage(), pad_stage(), decoder_stage(),
    st.sampled_from(["relu", "sigmoid", "tanh", "leakyrelu:0.2", "grayscale"]),
)


def _pipeline_and_image(specs, shape, depth, seed):
    try:
        pipeline = Pipeline.from_specs(specs)
        plan = pipeline.plan(shape)
    except (PlanError, SpecError):
        assume(False)
    assume(tiling_obstacle(plan) is None)
    rng = np.random.default_rng(seed)
    dtype, maxval = (np.uint8, 255) if depth == 8 else (np.uint16, 65535)
    return pipeline, plan, rng.integers(0, maxval + 1, shape).astype(dtype), maxval


TILED_EXAMPLES = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])


@pytest.mark.parametrize("engine", ["numpy", "torch"])
@TILED_EXAMPLES
@given(
    specs=st.lists(local_stage, min_size=1, max_size=4),
    shape=st.tuples(st.integers(1, 2), st.sampled_from([1, 2, 3, 4]), st.integers(4, 40), st.integers(4, 40)),
    tile=_pair(1, 24),
    normalize=st.sampled_from(["auto", "clip", "minmax", "abs"]),
    depth=st.sampled_from([8, 8, 16]),
    premultiply=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_tiled_equals_whole_image(engine, specs, shape, tile, normalize, depth, premultiply, seed):
    pipeline, plan, image, maxval = _pipeline_and_image(specs, shape, depth, seed)
    options = dict(maxval=maxval, premultiply=premultiply and shape[1] in (2, 4), engine=engine, plan=plan)
    whole = run_pipeline(pipeline, image, **options)
    expected = quantize(whole, depth, normalize)
    tiled = run_tiled(pipeline, image, tile, bit_depth=depth, normalize=normalize, **options)
    assert tiled.quantized.normalize == expected.normalize
    assert tiled.quantized.array.dtype == expected.array.dtype
    floats = run_tiled(pipeline, image, tile, bit_depth=None, **options).values()
    if engine == "numpy":
        np.testing.assert_array_equal(tiled.quantized.array, expected.array)
        np.testing.assert_array_equal(floats, whole.values())
    else:  # torch's CPU kernels (conv, pow) vectorise by size: a last-bit difference can flip a rounding,
        # and up to four float32 stages compound it (hypothesis found 2e-5 relative); a tile in the
        # wrong place would be off by whole pixel values
        np.testing.assert_allclose(floats, whole.values(), rtol=1e-4, atol=1e-5)
        difference = np.abs(tiled.quantized.array.astype(np.int64) - expected.array.astype(np.int64))
        assert difference.max(initial=0) <= 1


def test_auto_stretches_from_the_whole_image_extremes():
    pipeline = Pipeline.from_specs(["conv:filter=sobel-x,p=1"])
    image = np.random.default_rng(1).integers(0, 256, (1, 1, 30, 31)).astype(np.uint8)
    expected = quantize(run_pipeline(pipeline, image, maxval=255), 8, "auto")
    tiled = run_tiled(pipeline, image, (4, 5), bit_depth=8, normalize="auto", maxval=255)
    assert expected.normalize == tiled.quantized.normalize == "auto → minmax"
    np.testing.assert_array_equal(tiled.quantized.array, expected.array)


# --------------------------------------------------------------------------- through the batch and the CLI


@pytest.fixture
def picture(tmp_path):
    from PIL import Image

    pixels = np.random.default_rng(3).integers(0, 256, (300, 250, 3)).astype(np.uint8)
    path = tmp_path / "pic.png"
    Image.fromarray(pixels).save(path)
    return path


def _read(path):
    from PIL import Image

    return np.asarray(Image.open(path))


@pytest.mark.parametrize(
    "stages", [["-S", "avgpool:3,s=2,p=1"], ["-S", "grayscale", "-S", "conv:filter=sobel-x,p=1", "-S", "relu", "-S", "maxpool:2"]]
)
def test_cli_tiles_when_the_memory_is_short_and_writes_the_same(invoke, picture, tmp_path, stages):
    whole = invoke("run", str(picture), *stages, "-o", str(tmp_path / "whole.png"), "-q")
    assert whole.exit_code == 0, whole.output
    tiled = invoke("run", str(picture), *stages, "-o", str(tmp_path / "tiled.png"), "--memory", "1M")
    assert tiled.exit_code == 0, tiled.output
    assert "note: tiled:" in " ".join(tiled.stdout.split())
    np.testing.assert_array_equal(_read(tmp_path / "whole.png"), _read(tmp_path / "tiled.png"))


def test_cli_npy_output_tiled_holds_the_same_floats(invoke, picture, tmp_path):
    for name, extra in (("whole.npy", []), ("tiled.npy", ["--memory", "1M"])):
        result = invoke("pool", str(picture), "-m", "avg", "-k", "3", "-s", "2", "-o", str(tmp_path / name), "-q", *extra)
        assert result.exit_code == 0, result.output
    np.testing.assert_array_equal(np.load(tmp_path / "whole.npy"), np.load(tmp_path / "tiled.npy"))


def test_cli_error_when_even_tiled_it_cannot_fit(invoke, tmp_path):
    path = tmp_path / "big.npy"
    np.save(path, np.zeros((1, 1, 1024, 1024), np.float32))
    result = invoke("pool", str(path), "-k", "2", "-o", str(tmp_path / "out.npy"), "--memory", "4M")
    assert result.exit_code == 1
    line = result.stderr.strip()
    assert line.startswith("poolcli: error:") and "\n" not in line and "even tiled" in line and "--memory" in line
    assert not (tmp_path / "out.npy").exists()


def test_cli_error_for_a_global_stage_over_the_budget(invoke, picture, tmp_path):
    result = invoke("pool", str(picture), "--global", "-o", str(tmp_path / "g.npy"), "--memory", "1M")
    assert result.exit_code == 1 and "globalmaxpool needs the whole plane" in result.stderr
    assert result.stderr.count("\n") == 1


def test_cli_bad_memory_is_a_usage_error(invoke, picture):
    result = invoke("pool", str(picture), "-k", "2", "--memory", "plenty")
    assert result.exit_code == 2 and result.stderr.startswith("poolcli: error: --memory 'plenty'")


def test_outcome_records_the_mode(picture, tmp_path):
    options = ProcessOptions(output=str(tmp_path / "o.png"), memory="1M")
    processor = Processor(Pipeline.from_specs(["avgpool:2"]), options)
    outcome = processor.process(InputItem(str(picture)), str(tmp_path / "o.png"))
    assert outcome.status == "ok" and outcome.execution["mode"] == "tiled" and outcome.execution["tiles"] > 1
    json.dumps(outcome.execution)
    roomy = Processor(Pipeline.from_specs(["avgpool:2"]), ProcessOptions(memory="1G"))
    assert roomy.process(InputItem(str(picture)), str(tmp_path / "p.png")).execution["mode"] == "whole"


def test_host_out_of_memory_retries_tiled(picture, tmp_path, monkeypatch):
    import poolcli.execute.run as engine

    def exhausted(*args, **kwargs):
        raise MemoryError("Unable to allocate 40 GiB")

    expected = tmp_path / "expected.png"
    Processor(Pipeline.from_specs(["avgpool:2"]), ProcessOptions()).process(InputItem(str(picture)), str(expected))
    monkeypatch.setattr(engine, "run_pipeline", exhausted)
    out = tmp_path / "retried.png"
    outcome = Processor(Pipeline.from_specs(["avgpool:2"]), ProcessOptions()).process(InputItem(str(picture)), str(out))
    assert outcome.status == "ok" and outcome.execution["mode"] == "tiled"
    np.testing.assert_array_equal(_read(expected), _read(out))


def test_cli_json_record_says_how_it_ran(invoke, picture, tmp_path):
    import json

    tiled = invoke("pool", str(picture), "-k", "2", "-o", str(tmp_path / "t.png"), "--memory", "1M", "--json")
    whole = invoke("pool", str(picture), "-k", "2", "-o", str(tmp_path / "w.png"), "--json")
    assert json.loads(tiled.stdout)["execution"]["mode"] == "tiled"
    assert json.loads(whole.stdout)["execution"]["mode"] == "whole"
