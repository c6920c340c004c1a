"""poolcli.core.walkthrough: each stage's walkthrough as data (steps, cells, values, terms), made
lazily, plugged into by ops' attributes, and equal to the torch engine stage after stage."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pytest

from poolcli.cli.explaining import KernelWeights
from poolcli.core.ops import MaxPool
from poolcli.core.ops.pointwise import Activation
from poolcli.core.plan import Pipeline
from poolcli.core.spec import parse_stage
from poolcli.core.textbook import PAD, REAL
from poolcli.core.walkthrough import (
    WALKERS, Grid, Heading, Select, Step, Text, WalkContext, plain, refusal, walk, walk_stage,
)

D2L = [[[[0.0, 1.0, 2.0], [3.0, 4.0, 5.0], [6.0, 7.0, 8.0]]]]


def steps(walkthrough) -> list[Step]:
    return [item for item in walkthrough.items() if isinstance(item, Step)]


def test_d2l_maxpool_steps_as_data():
    walkthrough = walk_stage(parse_stage("maxpool:2,s=1"), D2L)
    assert walkthrough.output == [[[[4.0, 5.0], [7.0, 8.0]]]]
    found = steps(walkthrough)
    assert [s.out for s in found] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert [s.value for s in found] == [4.0, 5.0, 7.0, 8.0]
    assert [(c.row, c.col) for c in found[0].cells] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    assert plain(found[3].line) == "Y[1, 1] = max(4, 5, 7, 8) = 8"
    assert (found[0].winner.row, found[0].winner.col) == (1, 1)
    assert found[0].plane.output is walkthrough.output[0][0]


def test_items_come_in_reading_order():
    kinds = [type(item).__name__ for item in walk_stage(parse_stage("maxpool:2,s=1"), D2L).items()]
    assert kinds[:2] == ["Heading", "Grid"] and kinds.count("Step") == 4
    assert kinds[-3:] == ["Grid", "Text", "Text"]  # the output, then H_out and W_out


def test_padding_cells_carry_their_kind_and_value():
    first = steps(walk_stage(parse_stage("nn.MaxPool2d(3, padding=1, stride=2)"),
                             [[[[float(4 * r + c) for c in range(4)] for r in range(4)]]]))[0]
    assert [c.kind for c in first.cells].count(PAD) == 5
    assert all(c.value == -math.inf for c in first.cells if c.kind == PAD)
    assert first.notes == ("5 padded cells (-∞) never win",)


def test_conv_terms_and_weight_source():
    context = WalkContext(weights=KernelWeights())
    walkthrough = walk_stage(parse_stage("conv:weight=0 1; 2 3"), D2L, context=context)
    assert walkthrough.output == [[[[19.0, 25.0], [37.0, 43.0]]]]
    assert plain(steps(walkthrough)[0].line) == "Y[0, 0] = 0×0 + 1×1 + 3×2 + 4×3 = 19"
    assert steps(walkthrough)[0].plane.kernel == [[0.0, 1.0], [2.0, 3.0]]


def test_selection_one_element_or_every_one():
    big = [[[[float(40 * r + c) for c in range(40)] for r in range(40)]]]
    assert len(steps(walk_stage(parse_stage("maxpool:2"), big))) == 8
    assert [s.out for s in steps(walk_stage(parse_stage("maxpool:2"), big, select=(19, 19)))] == [(19, 19)]
    assert [s.out for s in steps(walk_stage(parse_stage("maxpool:2"), big, select=5))] == [(0, 5)]
    assert len(steps(walk_stage(parse_stage("maxpool:2"), big, select=Select(every=True)))) == 400


def test_items_are_made_lazily():
    """A walk computes the output at once; its windows are made only when the items are read."""
    big = [[[[float(c) for c in range(200)] for r in range(200)]]]
    walkthrough = walk_stage(parse_stage("maxpool:2"), big, select=Select(every=True))
    items = walkthrough.items()
    assert isinstance(next(items), Heading)
    assert isinstance(next(items), Grid)
    first = next(items)
    assert isinstance(first, Step) and first.out == (0, 0)
    assert walkthrough.output[0][0][99][99] == 199.0


def test_stages_feed_each_other_with_unpool_indices():
    x = [[[[float(4 * r + c) for c in range(4)] for r in range(4)]]]
    plan = Pipeline([parse_stage("maxpool:2"), parse_stage("maxunpool")]).plan((1, 1, 4, 4))
    pooled, unpooled = list(walk(plan, x))
    assert pooled.output == [[[[5.0, 7.0], [13.0, 15.0]]]]
    assert unpooled.output[0][0][1] == [0.0, 5.0, 0.0, 7.0]
    assert plain(steps(unpooled)[0].line) == "5 → position 5 = (1, 1), the max of window (0, 0)"


def test_refusal_before_any_output():
    plan = Pipeline([parse_stage("fractionalmaxpool:2,output_size=2")]).plan((1, 1, 4, 4))
    assert refusal(plan.stages[0])[0] == ("stage 0 fractionalmaxpool has no window-by-window explanation: "
                                          "its windows come from torch's random generator")
    plan = Pipeline([parse_stage("flatten"), parse_stage("linear:2")]).plan((1, 1, 5, 5))
    assert "linear on 25 features is too big" in refusal(plan.stages[1])[0]
    assert refusal(plan.stages[0]) is None


def test_every_op_names_a_walker_or_a_reason():
    from poolcli.core.ops import OPS

    for cls in OPS:
        assert cls.walkthrough in WALKERS or cls.unexplained, cls.op
        if cls.walkthrough in ("window", "adaptive", "global"):
            assert cls.reduction in ("max", "min", "avg", "lp", "median"), cls.op


def test_a_new_op_plugs_in_by_its_attributes():
    """An element-wise op unknown to the walkthrough: its class says element() and definition()."""

    @dataclass(frozen=True)
    class Square(Activation):
        op: ClassVar[str] = "square"

        def element(self, x: float) -> float:
            return x * x

        def definition(self, x: float) -> str:
            return "{x_operand}^2"

    walkthrough = walk_stage(Square(), [[[[-3.0, 2.0]]]])
    assert walkthrough.output == [[[[9.0, 4.0]]]]
    assert [plain(s.line) for s in steps(walkthrough)] == ["Y[0, 0] = (-3)^2 = 9", "Y[0, 1] = 2^2 = 4"]

    @dataclass(frozen=True)
    class SecondLargest(MaxPool):
        op: ClassVar[str] = "median-like"
        reduction: ClassVar[str] = "median"

    walkthrough = walk_stage(SecondLargest.create({"kernel_size": 3}), D2L)
    assert walkthrough.output == [[[[4.0]]]]


def test_luma_integer_and_float():
    x = [[[[255.0]], [[0.0]], [[0.0]]]]
    assert walk_stage(parse_stage("grayscale"), x, context=WalkContext(integer=True)).output == [[[[76.0]]]]
    assert walk_stage(parse_stage("grayscale"), x).output[0][0][0][0] == pytest.approx(0.299 * 255)


def test_integer_values_stay_integer_only_through_native_stages():
    context = WalkContext(integer=True)
    plan = Pipeline([parse_stage("maxpool:1"), parse_stage("avgpool:1"), parse_stage("grayscale")]).plan((1, 3, 1, 1))
    flags = []
    for _ in walk(plan, [[[[255.0]], [[0.0]], [[0.0]]]], context=context):
        flags.append(context.integer)
    assert flags == [True, False, False]


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
    pytest.importorskip("torch")
    from poolcli.execute.run import run_pipeline

    rng = np.random.default_rng(7)
    x = rng.integers(0, 9, size=(1, 3, 7, 8)).astype(np.float32)
    pipeline = Pipeline([parse_stage(s) for s in specs])
    plan = pipeline.plan(x.shape)
    expected = run_pipeline(pipeline, x, engine="torch").values()
    context = WalkContext(weights=KernelWeights())
    for stage in walk(plan, x.astype(np.float64).tolist(), context=context):
        assert any(isinstance(item, (Step, Text)) for item in stage.items())
        y = stage.output
    np.testing.assert_allclose(np.array(y), expected, rtol=1e-5, atol=1e-5)


def test_cells_of_real_kind_hold_the_input():
    for step in steps(walk_stage(parse_stage("avgpool:3,s=2,p=1,ceil=true"), D2L)):
        for cell in step.cells:
            if cell.kind == REAL:
                assert cell.value == D2L[0][0][cell.row][cell.col]
