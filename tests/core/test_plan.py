"""Pipeline.plan: shapes, pairing, errors that show their formula, and purity (no torch)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli.execute.run import run_pipeline
from poolcli.errors import PlanError, SpecError
from poolcli.core.plan import Pipeline, Plan
from poolcli.core.spec import parse_stage

ROOT = Path(__file__).resolve().parents[2]

LENET = [
    "nn.Conv2d(1, 6, kernel_size=5, padding=2)", "nn.Sigmoid()", "nn.AvgPool2d(kernel_size=2, stride=2)",
    "nn.Conv2d(6, 16, kernel_size=5)", "nn.Sigmoid()", "nn.AvgPool2d(kernel_size=2, stride=2)", "nn.Flatten()",
    "nn.Linear(400, 120)", "nn.Sigmoid()", "nn.Linear(120, 84)", "nn.Sigmoid()", "nn.Linear(84, 10)",
]


def plan_error(specs, shape) -> str:
    with pytest.raises(PlanError) as info:
        Pipeline.from_specs(specs).plan(shape)
    message = str(info.value)
    assert "\n" not in message and " — " in message
    return message


# --------------------------------------------------------------------------- plans


def test_plan_records():
    plan = Pipeline.from_specs(["nn.MaxPool2d(3, padding=1, stride=2)"]).plan((1, 1, 4, 4))
    assert isinstance(plan, Plan)
    assert plan.input_shape == (1, 1, 4, 4) and plan.output_shape == (1, 1, 2, 2)
    (stage,) = plan.stages
    assert (stage.index, stage.op, stage.input_shape, stage.output_shape) == (0, "maxpool", (1, 1, 4, 4), (1, 1, 2, 2))
    assert stage.formula == {"H": "⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2", "W": "⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2"}
    assert (stage.receptive_field, stage.jump, stage.params_count, stage.ops) == ((3, 3), (2, 2), 0, 2 * 2 * 9)
    assert plan.unpool_pairs == {} and plan.params_count == 0 and plan.ops == 36


def test_json_example_of_the_design():
    plan = Pipeline.from_specs(["maxpool:k=2,s=2"]).plan((1, 3, 512, 512))
    stage = plan.stages[0]
    assert stage.stage.params() == {
        "kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1], "ceil_mode": False
    }
    assert stage.output_shape == (1, 3, 256, 256)
    assert stage.formula["H"] == "⌊(512 + 2·0 − 1·(2−1) − 1)/2⌋ + 1 = 256"
    assert (stage.receptive_field, stage.jump, stage.params_count, stage.ops) == ((2, 2), (2, 2), 0, 786432)


def test_empty_pipeline_plans_to_its_input():
    plan = Pipeline([]).plan((1, 3, 5, 5))
    assert plan.output_shape == (1, 3, 5, 5) and list(plan.stages) == [] and plan.params_count == 0


@pytest.mark.parametrize("shape", [(3, 224, 224), (1, 3, 0, 4), (1, 3, 4, -1), (1, 1, 1, 1, 1)])
def test_bad_input_shapes(shape):
    with pytest.raises(PlanError, match="N×C×H×W"):
        Pipeline.from_specs(["relu"]).plan(shape)


def test_lenet_plan():
    plan = Pipeline.from_specs(LENET).plan((8, 1, 28, 28))
    shapes = [plan.input_shape] + [s.output_shape for s in plan.stages]
    assert shapes == [
        (8, 1, 28, 28), (8, 6, 28, 28), (8, 6, 28, 28), (8, 6, 14, 14), (8, 16, 10, 10), (8, 16, 10, 10),
        (8, 16, 5, 5), (8, 400), (8, 120), (8, 120), (8, 84), (8, 84), (8, 10),
    ]
    assert [s.params_count for s in plan.stages] == [156, 0, 0, 2416, 0, 0, 0, 48120, 0, 10164, 0, 850]
    assert plan.params_count == 61706
    assert plan.stages[6].formula == {"features": "16·5·5 = 400"}
    assert plan.stages[0].ops == 8 * 6 * 28 * 28 * 25
    assert plan.stages[7].ops == 8 * 400 * 120


def test_pipeline_from_file(tmp_path):
    path = tmp_path / "p.toml"
    path.write_text('[[stage]]\nop = "maxpool"\nk = 2\n[[stage]]\nop = "relu"\n', encoding="utf-8")
    from poolcli import parse_pipeline_file

    pipeline = Pipeline(parse_pipeline_file(str(path)))
    assert len(pipeline) == 2 and repr(pipeline) == "Pipeline([maxpool:k=2, relu])"


# --------------------------------------------------------------------------- errors


def test_dimension_reaching_zero_shows_the_formula():
    message = plan_error(["maxpool:3"], (1, 1, 2, 8))
    assert "H=2" in message and "⌊(2 + 2·0 − 1·(3−1) − 1)/3⌋ + 1 = 0" in message
    message = plan_error(["maxpool:2", "maxpool:2", "maxpool:2"], (1, 1, 4, 4))
    assert "⌊(1 + 2·0 − 1·(2−1) − 1)/2⌋ + 1 = 0" in message
    message = plan_error(["conv:weight=0 1 2; 3 4 5; 6 7 8", "conv:filter=sobel-x,d=2"], (1, 1, 5, 5))
    assert "⌊(3 + 2·0 − 2·(3−1) − 1)/1⌋ + 1 = -1" in message
    message = plan_error(["medianpool:4,s=2,ceil=true"], (1, 1, 2, 9))
    assert "⌈(2 + 2·0 − 1·(4−1) − 1)/2⌉ + 1 = 0" in message
    # ceil_mode lets a window hang over the end, as torch: k=4 on 3 pixels gives 1
    assert Pipeline.from_specs(["medianpool:4,ceil=true"]).plan((1, 1, 3, 9)).output_shape == (1, 1, 1, 3)


def test_maxunpool_without_maxpool():
    message = plan_error(["maxunpool"], (1, 1, 4, 4))
    assert "maxunpool" in message and "maxpool" in message
    message = plan_error(["maxpool:2", "maxunpool", "maxunpool"], (1, 1, 4, 4))
    assert "stage 2" in message
    # minpool and avgpool have no indices to pair with
    plan_error(["minpool:2", "maxunpool"], (1, 1, 4, 4))
    plan_error(["avgpool:2", "maxunpool"], (1, 1, 4, 4))


def test_maxunpool_needs_the_pooled_shape_back():
    message = plan_error(["maxpool:2", "conv:weight=0 1; 2 3", "maxunpool"], (1, 1, 8, 8))
    assert "stage 0" in message and "1×1×4×4" in message and "1×1×3×3" in message


def test_encoder_decoder_pairs_as_a_stack_and_restores_odd_sizes():
    specs = ["maxpool:2", "maxpool:2", "maxunpool", "maxunpool"]
    plan = Pipeline.from_specs(specs).plan((1, 3, 7, 9))
    assert [s.output_shape for s in plan.stages] == [(1, 3, 3, 4), (1, 3, 1, 2), (1, 3, 3, 4), (1, 3, 7, 9)]
    assert plan.unpool_pairs == {2: 1, 3: 0}
    assert plan.stages[3].formula == {"H": "stage 0 maxpool's input H = 7", "W": "stage 0 maxpool's input W = 9"}
    x = np.random.default_rng(0).random((1, 3, 7, 9)).astype(np.float32)
    for engine in ("torch", "numpy"):
        out = run_pipeline(Pipeline.from_specs(specs), x, engine=engine).values()
        assert out.shape == x.shape
        nonzero = out != 0
        assert np.array_equal(out[nonzero], x[nonzero])
        # each kept value is the max of its 4x4 block (2 levels of 2x2)
        assert nonzero.sum() == 3 * 1 * 2


def test_ceil_mode_and_dilated_pools_unpool_exactly():
    plan = Pipeline.from_specs(["maxpool:2,ceil=true", "maxpool:3,s=1,d=2", "maxunpool", "maxunpool"]).plan((1, 1, 9, 11))
    assert plan.output_shape == (1, 1, 9, 11)
    assert plan.stages[1].output_shape == (1, 1, 1, 2)


def test_explicit_maxunpool_output_size_bounds():
    message = plan_error(["maxpool:2", "maxunpool:output_size=9x8"], (1, 1, 7, 8))
    # default (3 − 1)·2 − 2·0 + 2 = 6, torch allows 4 < H < 8
    assert "4 < H < 8" in message and "5 and 7" in message and "(3 − 1)·2 − 2·0 + 2 = 6" in message
    plan = Pipeline.from_specs(["maxpool:2", "maxunpool:output_size=7x8"]).plan((1, 1, 7, 8))
    assert plan.output_shape == (1, 1, 7, 8)
    assert plan.stages[1].formula["H"] == "output_size = 7"
    message = plan_error(["maxpool:2", "maxunpool:2,s=1,output_size=7x8"], (1, 1, 7, 8))
    assert "3 < H < 5" in message or "H=7" in message


def test_explicit_maxunpool_geometry_defaults_as_torch():
    unpool = parse_stage("nn.MaxUnpool2d(3)")
    assert (unpool.kernel_size, unpool.stride, unpool.padding) == ((3, 3), (3, 3), (0, 0))
    bare = parse_stage("maxunpool")
    assert (bare.kernel_size, bare.stride, bare.padding) == (None, None, None)


def test_maxunpool_with_explicit_size_runs():
    x = np.arange(49, dtype=np.float32).reshape(1, 1, 7, 7)
    for engine in ("torch", "numpy"):
        out = run_pipeline(Pipeline.from_specs(["maxpool:2", "maxunpool:output_size=7x7"]), x, engine=engine).values()
        assert out.shape == (1, 1, 7, 7) and out[0, 0, 1, 1] == 8 and out[0, 0, 5, 5] == 40


def test_flatten_then_spatial_stage():
    message = plan_error(["flatten", "avgpool:2"], (1, 1, 4, 4))
    assert "N×C×H×W" in message and "1×16" in message


def test_reflect_and_circular_padding_limits():
    assert "reflect" in plan_error(["pad:3,mode=reflect"], (1, 1, 3, 3))
    assert Pipeline.from_specs(["pad:2,mode=reflect"]).plan((1, 1, 3, 3)).output_shape == (1, 1, 7, 7)
    assert "circular" in plan_error(["pad:4,mode=circular"], (1, 1, 3, 3))
    assert "circular" in plan_error(["conv:filter=box,p=4,padding_mode=circular"], (1, 1, 3, 3))
    assert "reflect" in plan_error(["conv:filter=box,p=3,padding_mode=reflect"], (1, 1, 3, 3))


def test_fractional_needs_room_for_its_windows():
    message = plan_error(["fractionalmaxpool:3,output_size=8"], (1, 1, 9, 9))
    assert "8" in message and "3" in message and "9" in message


def test_spec_errors_come_before_planning():
    with pytest.raises(SpecError):
        Pipeline.from_specs(["maxpool:2", "maxpool:k=3,p=2"])


# --------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.sampled_from(["maxpool:2", "maxpool:3,s=2,p=1", "maxpool:2,ceil=true", "relu", "pad:1"]), min_size=1, max_size=3),
    st.integers(1, 40),
    st.integers(1, 40),
)
def test_every_stack_of_maxpools_unpools_to_its_input(pools, h, w):
    specs = pools + ["maxunpool"] * sum(s.startswith("maxpool") for s in pools)
    try:
        plan = Pipeline.from_specs(specs).plan((1, 2, h, w))
    except PlanError as error:
        # either a pool made a dimension 0, or a pad sits between a pool and its unpool
        assert "= 0" in str(error) or "= -" in str(error) or "pooled shape back" in str(error)
        return
    pool_inputs = [s.input_shape for s in plan.stages if s.op == "maxpool"]
    unpool_outputs = [s.output_shape for s in plan.stages if s.op == "maxunpool"]
    assert unpool_outputs == pool_inputs[::-1]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.sampled_from(["maxpool:2", "conv:filter=sobel-x", "avgpool:3,s=1,p=1", "relu", "maxpool:3,s=2,d=2",
                         "conv:weight=1 1,s=2", "lppool:2,k=2", "medianpool:2,s=1"]),
        max_size=5,
    ),
)
def test_receptive_field_and_jump_follow_the_recurrence(specs):
    from poolcli.core.arithmetic import effective_kernel

    try:
        plan = Pipeline.from_specs(specs).plan((1, 1, 64, 64))
    except PlanError:
        return
    r, j = 1, 1
    for stage in plan.stages:
        s = stage.stage
        if hasattr(s, "kernel_size") and s.kernel_size is not None:
            k = effective_kernel(s.kernel_size[1], getattr(s, "dilation", (1, 1))[1])
            r += (k - 1) * j
            j *= s.stride[1]
        elif s.op == "conv":
            k = effective_kernel(len(s.kernel[0]), s.dilation[1])
            r += (k - 1) * j
            j *= s.stride[1]
        assert stage.receptive_field[1] == r and stage.jump[1] == j


# --------------------------------------------------------------------------- purity


def test_plan_does_not_import_torch():
    code = (
        "import sys\n"
        "from poolcli.core.plan import Pipeline\n"
        f"specs = {LENET!r} + ['maxpool:2', 'maxunpool', 'conv:sobel-x,p=1', 'medianpool:3', "
        "'fractionalmaxpool:2,output_ratio=0.5', 'adaptiveavgpool:3', 'pad:1,mode=reflect', 'grayscale']\n"
        "Pipeline.from_specs(specs[:12]).plan((2, 1, 28, 28))\n"
        "Pipeline.from_specs(specs[12:]).plan((2, 3, 28, 28))\n"
        "from poolcli.core.spec import parse_pipeline_text\n"
        "parse_pipeline_text('[[stage]]\\nop = \"maxpool\"\\nk = 2\\n', 'toml')\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_plan_is_repeatable_and_does_not_mutate_stages():
    pipeline = Pipeline.from_specs(["maxpool:2", "maxpool:2", "maxunpool", "maxunpool"])
    before = [s.params() for s in pipeline.stages]
    first = pipeline.plan((1, 1, 7, 9))
    second = pipeline.plan((1, 1, 7, 9))
    assert [s.output_shape for s in first.stages] == [s.output_shape for s in second.stages]
    assert first.unpool_pairs == second.unpool_pairs
    assert [s.params() for s in pipeline.stages] == before
    assert pipeline.plan((2, 3, 16, 20)).output_shape == (2, 3, 16, 20)


def test_maxunpool_output_size_too_small_for_the_indices_is_one_clear_error():
    from poolcli.errors import PoolcliError

    x = np.arange(49, dtype=np.float32).reshape(1, 1, 7, 7)
    pipeline = Pipeline.from_specs(["maxpool:2", "maxunpool:output_size=5x5"])
    assert pipeline.plan(x.shape).output_shape == (1, 1, 5, 5)  # inside torch's bounds 4 < 5 < 8
    with pytest.raises(PoolcliError) as info:
        run_pipeline(pipeline, x, engine="torch")
    assert "40" in str(info.value) and "5×5" in str(info.value) and " — " in str(info.value)


def test_working_bytes_counts_input_output_and_scratch():
    plan = Pipeline.from_specs(["avgpool:2"]).plan((1, 3, 1000, 1000))
    assert plan.working_bytes() == 4 * (3_000_000 + 750_000 + 3_000_000)
    median = Pipeline.from_specs(["medianpool:3"]).plan((1, 1, 30, 30)).working_bytes()
    assert median > 4 * 100 * 9  # the k·k stack per output
