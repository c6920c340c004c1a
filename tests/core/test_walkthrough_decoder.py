"""explain's decoder walkers: d2l's transposed convolution reproduced exactly (scatter, sums and the
zeros-inserted view), both textbook loops against torch, and upsampling's source cells and weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli.cli.explaining import KernelWeights
from poolcli.core.plan import Pipeline
from poolcli.core.spec import parse_stage
from poolcli.errors import PoolcliError
from poolcli.core.walkthrough import Grid, Select, Step, Text, WalkContext, plain, refusal, walk_stage
from poolcli.core.walkthrough.decoder import axis_taps, interpolate, trans_conv

D2L_X = [[[[0.0, 1.0], [2.0, 3.0]]]]
D2L_Y = [[0.0, 0.0, 1.0], [0.0, 4.0, 6.0], [4.0, 12.0, 9.0]]


def walked(spec, x, select=None):
    return walk_stage(parse_stage(spec), x, context=WalkContext(weights=KernelWeights()), select=select)


def test_d2l_transposed_convolution_the_textbook_way():
    walk = walked("convtranspose:weight=0 1; 2 3", D2L_X)
    assert walk.output == [[D2L_Y]]
    items = list(walk.items())
    titles = [plain(item.title) for item in items if isinstance(item, Grid)]
    assert "X[0, 1]·K = 1·K, added from Y[0, 1]" in titles and "X[1, 1]·K = 3·K, added from Y[1, 1]" in titles
    scatter = next(item for item in items if isinstance(item, Grid) and plain(item.title).startswith("X[1, 1]"))
    assert scatter.canvas.plane.X == [[0, 0, 0], [0, 0, 3], [0, 6, 9]] and scatter.highlight == ((1, 1), (1, 2), (2, 1), (2, 2))
    sums = [plain(item.line) for item in items if isinstance(item, Step)]
    assert sums[4] == "Y[1, 1] = 0×3 + 1×2 + 2×1 + 3×0 = 4" and sums[7] == "Y[2, 1] = 2×3 + 3×2 = 12"
    assert [item.value for item in items if isinstance(item, Step)] == [v for row in D2L_Y for v in row]
    zeros = next(item for item in items if isinstance(item, Grid) and plain(item.title).startswith("zeros inserted"))
    assert zeros.canvas.plane.X == [[0, 0, 0, 0], [0, 0, 1, 0], [0, 2, 3, 0], [0, 0, 0, 0]]
    flipped = next(item for item in items if isinstance(item, Grid) and plain(item.title).startswith("kernel flipped"))
    assert flipped.canvas.plane.X == [[3, 2], [1, 0]]


def test_zeros_inserted_view_is_an_ordinary_conv():
    """The equivalent view, computed: stretch, pad, and cross-correlate with the flipped kernel."""
    from poolcli.core.textbook import corr2d

    walk = walked("convtranspose:weight=1 2 0; -1 3 1,s=2,p=1,output_padding=1", [[[[1.0, -2.0, 0.5], [4.0, 0.0, 2.0]]]])
    grids = {plain(item.title).split(" (")[0]: item.canvas.plane.X for item in walk.items() if isinstance(item, Grid)}
    stretched, flipped = grids["zeros inserted and padded"], grids["kernel flipped"]
    assert corr2d(stretched, flipped) == walk.output[0][0]


@settings(max_examples=150, deadline=None)
@given(
    hw=st.tuples(st.integers(1, 5), st.integers(1, 5)), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)), p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    d=st.tuples(st.integers(1, 2), st.integers(1, 2)), seed=st.integers(0, 2**16), data=st.data(),
)
def test_trans_conv_equals_torch(hw, k, s, p, d, seed, data):
    op = tuple(data.draw(st.integers(0, max(a, b) - 1)) for a, b in zip(s, d))
    rng = np.random.default_rng(seed)
    X, K = rng.integers(-3, 4, hw).astype(float), rng.integers(-3, 4, k).astype(float)
    try:
        expected = F.conv_transpose2d(torch.tensor(X)[None, None], torch.tensor(K)[None, None], None, s, p, op, 1, d)
    except RuntimeError:  # the output reached 0: planning refuses it
        return
    assert trans_conv(X.tolist(), K.tolist(), s, p, op, d) == expected[0, 0].tolist()


def test_a_copy_the_crop_cuts_says_how_much():
    walk = walked("convtranspose:weight=2,p=1", [[[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]]]])
    grids = {plain(item.title).split("·K")[0]: item for item in walk.items() if isinstance(item, Grid) and item.step}
    assert plain(grids["X[0, 0]"].title) == "X[0, 0]·K = 1·K, added from Y[-1, -1] (all in the cropped padding)"
    assert grids["X[0, 0]"].step.targets == () and grids["X[0, 0]"].step.cut == ((-1, -1, 2.0),)
    assert plain(grids["X[1, 1]"].title) == "X[1, 1]·K = 5·K, added from Y[0, 0]"
    assert grids["X[1, 1]"].step.sums == (10.0,)
    big = walked("convtranspose:weight=1 1; 1 1,p=1", [[[[1.0, 2.0], [3.0, 4.0]]]])
    assert "(partly in the cropped padding)" in plain(next(i for i in big.items() if isinstance(i, Grid) and i.step).title)


@settings(max_examples=80, deadline=None)
@given(
    hw=st.tuples(st.integers(1, 4), st.integers(1, 4)), k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    s=st.tuples(st.integers(1, 3), st.integers(1, 3)), p=st.tuples(st.integers(0, 2), st.integers(0, 2)),
    d=st.tuples(st.integers(1, 2), st.integers(1, 2)), seed=st.integers(0, 2**16),
)
def test_scatter_steps_add_up_to_the_output(hw, k, s, p, d, seed):
    """Each kernel copy's step, for pictures: the cells it lands on (the rest cut by the crop),
    the running sums there; the last sum written to each cell is torch's output."""
    rng = np.random.default_rng(seed)
    X, K = rng.integers(-3, 4, hw).astype(float), rng.integers(-3, 4, k).astype(float)
    spec = (f"convtranspose:weight={'; '.join(' '.join(str(int(v)) for v in row) for row in K)},"
            f"s={s[0]}x{s[1]},p={p[0]}x{p[1]},d={d[0]}x{d[1]}")
    try:
        expected = F.conv_transpose2d(torch.tensor(X)[None, None], torch.tensor(K)[None, None], None, s, p, 0, 1, d)[0, 0]
        walk = walked(spec, [[X.tolist()]], select=Select(every=True))
    except (RuntimeError, PoolcliError):  # the output reached 0: planning refuses it
        return
    steps = [item.step for item in walk.items() if isinstance(item, Grid) and item.step is not None]
    assert [(c.row, c.col) for step in steps for c in step.cells] == [divmod(n, hw[1]) for n in range(hw[0] * hw[1])]
    last = {}
    for step in steps:
        assert len(step.targets) + len(step.cut) == k[0] * k[1]
        assert all(not (0 <= r < expected.shape[0] and 0 <= c < expected.shape[1]) for r, c, _ in step.cut)
        last.update(zip(step.targets, step.sums))
    assert all(last[cell] == expected[cell].item() for cell in last)
    assert all(expected[r, c].item() == 0 for r in range(expected.shape[0]) for c in range(expected.shape[1])
               if (r, c) not in last)


@pytest.mark.parametrize("spec", [
    "nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, output_padding=1)", "nn.ConvTranspose2d(2, 4, 2, stride=2, groups=2)",
    "convtranspose:filter=box,k=3,s=2,channels=sum,bias=0.5",
])
def test_multichannel_walk_equals_the_run(spec):
    from poolcli.execute.run import run_pipeline

    x = np.random.default_rng(0).random((1, 2, 3, 4)).astype(np.float32)
    walk = walked(spec, x.astype(float).tolist())
    expected = run_pipeline(Pipeline([parse_stage(spec)]), x, engine="torch").values()
    np.testing.assert_allclose(np.array(walk.output), expected, rtol=1e-5, atol=1e-5)
    assert not any("nan" in plain(item.line) for item in walk.items() if isinstance(item, (Text, Step)))


@settings(max_examples=150, deadline=None)
@given(
    mode=st.sampled_from(["nearest", "bilinear", "bicubic"]), hw=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    scale=st.one_of(st.none(), st.tuples(st.sampled_from([0.5, 1.0, 1.5, 2.0, 3.0]), st.sampled_from([1.0, 2.0, 2.5]))),
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)), align=st.booleans(), seed=st.integers(0, 2**16),
)
def test_interpolate_equals_torch(mode, hw, scale, size, align, seed):
    X = np.random.default_rng(seed).random(hw)
    align_corners = None if mode == "nearest" else align
    kwargs = dict(scale_factor=scale) if scale else dict(size=size)
    try:
        expected = F.interpolate(torch.tensor(X)[None, None], mode=mode, align_corners=align_corners, **kwargs)[0, 0]
    except RuntimeError:
        return
    got = interpolate(X.tolist(), tuple(expected.shape), mode, bool(align_corners), scale)
    np.testing.assert_allclose(np.array(got), expected.numpy(), rtol=0, atol=1e-9)


def test_upsample_steps_name_source_cells_and_weights():
    walk = walked("upsample:2,mode=bilinear", D2L_X, select=(1, 2))
    (step,) = [item for item in walk.items() if isinstance(item, Step)]
    assert plain(step.line) == "Y[1, 2] = 0.1875×0 + 0.5625×1 + 0.0625×2 + 0.1875×3 = 1.25"
    assert step.notes == ("rows: 0.75·[0] + 0.25·[1]; columns: 0.25·[0] + 0.75·[1]",)
    assert [(c.row, c.col) for c in step.cells] == [(0, 0), (0, 1), (1, 0), (1, 1)]
    nearest = walked("upsample:2", D2L_X, select=(3, 2))
    (step,) = [item for item in nearest.items() if isinstance(item, Step)]
    assert plain(step.line) == "Y[3, 2] = X[1, 1] = 3"
    assert axis_taps(3, 7, "nearest", False, None) == [[(i, 1.0)] for i in (0, 0, 0, 1, 1, 2, 2)]


def test_both_ops_are_explained_now():
    plan = Pipeline.from_specs(["convtranspose:weight=0 1; 2 3", "upsample:2"]).plan((1, 1, 2, 2))
    assert [refusal(stage) for stage in plan.stages] == [None, None]
