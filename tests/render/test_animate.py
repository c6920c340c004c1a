"""poolcli.render.animate: one frame per window plus a result frame per stage, all one size, the
window's cells, padding, overhang and unreached cells in their colours, captions that are explain's
lines, durations, both fonts, and frames written as they are drawn."""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from PIL import Image

from poolcli.cli.explaining import KernelWeights
from poolcli.core.plan import Pipeline
from poolcli.core.spec import parse_stage
from poolcli.core.walkthrough import Select, WalkContext, walk
from poolcli.io.reading import load_matrix
from poolcli.render.animate import animate, draw, first_plane_steps, prepare
from poolcli.render.animate.fonts import Fonts
from poolcli.render.animate.writers import ApngWriter, GifWriter
from poolcli.render.explain import caption

D2L = "0 1 2; 3 4 5; 6 7 8"
ARANGE16 = "0 1 2 3; 4 5 6 7; 8 9 10 11; 12 13 14 15"
FIVE = "; ".join(" ".join(str(5 * r + c) for c in range(5)) for r in range(5))


def walks(matrix: str, *specs: str):
    x = np.asarray(load_matrix(matrix), dtype=np.float64)[None, None]
    plan = Pipeline([parse_stage(s) for s in specs]).plan(x.shape)
    return lambda: walk(plan, x.tolist(), context=WalkContext(weights=KernelWeights()), select=Select(every=True))


def frames_of(path) -> list[tuple[Image.Image, int]]:
    out = []
    with Image.open(path) as image:
        for k in range(image.n_frames):
            image.seek(k)
            out.append((image.convert("RGB"), image.info.get("duration")))
    return out


def colour(frame: Image.Image, box) -> tuple[int, int, int]:
    return frame.getpixel(draw.Layout.probe(box))


@pytest.mark.parametrize("suffix", [".gif", ".png"])
def test_d2l_maxpool_frames_durations_and_size(tmp_path, suffix):
    path = tmp_path / f"d2l{suffix}"
    assert animate(walks(D2L, "maxpool:2,s=1"), str(path)) == 4 + 1  # 4 windows, 1 result frame
    frames = frames_of(path)
    assert len(frames) == 5
    assert len({frame.size for frame, _ in frames}) == 1
    assert [duration for _, duration in frames] == [1000, 1000, 1000, 1000, 3000]


def test_frame_count_is_windows_plus_one_result_per_stage(tmp_path):
    path = tmp_path / "two.gif"
    # maxpool 4 windows + result, maxunpool 4 returning values + result
    assert animate(walks(ARANGE16, "maxpool:2", "maxunpool"), str(path)) == 10
    assert animate(walks(FIVE, "nn.MaxPool2d(3, padding=1, stride=2)", "relu"), str(path)) == 9 + 1 + 9 + 1
    assert len(frames_of(path)) == 20


def test_fps_sets_window_frames_and_results_last_twice_as_long(tmp_path):
    path = tmp_path / "fast.gif"
    animate(walks(D2L, "maxpool:2,s=1", "relu"), str(path), fps=4)
    durations = [d for _, d in frames_of(path)]
    assert durations[:5] == [250, 250, 250, 250, 500] and durations[-1] == 3000


def test_window_cells_are_highlighted_and_the_winner_green(tmp_path):
    path = tmp_path / "d2l.gif"
    animate(walks(D2L, "maxpool:2,s=1"), str(path))
    surveys, painter = prepare(walks(D2L, "maxpool:2,s=1")())
    layout = painter.layout
    frames = frames_of(path)
    steps = list(first_plane_steps(next(walks(D2L, "maxpool:2,s=1")())))
    for (frame, _), step in zip(frames, steps):
        window = {(c.row, c.col) for c in step.cells}
        winner = (step.winner.row, step.winner.col)
        for r in range(3):
            for c in range(3):
                expected = draw.WINNER if (r, c) == winner else draw.WINDOW if (r, c) in window else draw.WHITE
                assert colour(frame, layout.box(layout.input_at, r, c)) == expected, (step.out, r, c)
        for i in range(2):
            for j in range(2):
                got = colour(frame, layout.box(layout.output_at, i, j))
                done = i * 2 + j <= step.out[0] * 2 + step.out[1]
                assert got == (draw.CURRENT if (i, j) == step.out else draw.FILLED if done else draw.EMPTY)
    result = frames[-1][0]
    assert {colour(result, layout.box(layout.output_at, i, j)) for i in range(2) for j in range(2)} == {draw.FILLED}


def test_padding_overhang_and_unreached_cells(tmp_path):
    path = tmp_path / "pad.png"
    animate(walks(D2L, "maxpool:2,s=2,p=1"), str(path))
    surveys, painter = prepare(walks(D2L, "maxpool:2,s=2,p=1")())
    layout = painter.layout
    first = frames_of(path)[0][0]
    # canvas rows/cols start at -1: the padding ring is grey, the window's padded cells darker
    assert colour(first, layout.box(layout.input_at, 0, 0)) == draw.WINDOW_PAD
    assert colour(first, layout.box(layout.input_at, 0, 2)) == draw.PADDING
    assert colour(first, layout.box(layout.input_at, 1, 1)) == draw.WINNER

    animate(walks(D2L, "avgpool:2,ceil=true"), str(path))
    surveys, painter = prepare(walks(D2L, "avgpool:2,ceil=true")())
    layout = painter.layout
    assert surveys[0].rows == (0, 4)  # the overhang row and column are drawn
    last_window = frames_of(path)[3][0]
    assert colour(last_window, layout.box(layout.input_at, 3, 3)) == draw.WINDOW_PAD
    first = frames_of(path)[0][0]
    assert colour(first, layout.box(layout.input_at, 3, 0)) == draw.OVERHANG

    animate(walks(FIVE, "maxpool:2"), str(path))
    surveys, painter = prepare(walks(FIVE, "maxpool:2")())
    layout = painter.layout
    first = frames_of(path)[0][0]
    assert (4, 4) not in surveys[0].reached and (3, 3) in surveys[0].reached
    assert colour(first, layout.box(layout.input_at, 4, 0)) in (draw.UNREACHED, draw.HATCH)
    assert colour(first, layout.box(layout.input_at, 2, 2)) == draw.WHITE


@pytest.fixture
def captions(monkeypatch) -> list[str]:
    """The caption texts the painter draws, in the order drawn."""
    drawn: list[str] = []
    original = draw.Painter.words

    def spy(self, pen, title, text):
        if text:
            drawn.append(text)
        return original(self, pen, title, text)

    monkeypatch.setattr(draw.Painter, "words", spy)
    return drawn


def test_captions_are_explains_lines(tmp_path, captions):
    drawn = captions
    animate(walks(D2L, "conv:weight=0 1; 2 3"), str(tmp_path / "conv.gif"))
    assert drawn[:4] == ["Y[0, 0] = 0×0 + 1×1 + 3×2 + 4×3 = 19", "Y[0, 1] = 1×0 + 2×1 + 4×2 + 5×3 = 25",
                         "Y[1, 0] = 3×0 + 4×1 + 6×2 + 7×3 = 37", "Y[1, 1] = 4×0 + 5×1 + 7×2 + 8×3 = 43"]
    assert drawn[4].startswith("output Y (2×2)\nH_out: ⌊(3 + 2·0 − 1·(2−1) − 1)/1⌋ + 1 = 2")
    steps = first_plane_steps(next(walks(D2L, "conv:weight=0 1; 2 3")()))
    assert [caption(step.line) for step in steps] == drawn[:4]


def test_default_font_uses_ascii_stand_ins(tmp_path):
    fallback = Fonts(14, prefer=None)
    assert fallback.ascii and fallback.text("0×0 + 1·1, -∞ ≤ ⌊x⌋") == "0x0 + 1*1, -inf <= floor(x)"
    path = tmp_path / "plain.gif"
    assert animate(walks(D2L, "maxpool:2,s=1,p=1"), str(path), fonts=fallback) == 16 + 1
    assert len({frame.size for frame, _ in frames_of(path)}) == 1


def test_dejavu_when_installed():
    fonts = Fonts(14)
    if fonts.ascii:
        pytest.skip("DejaVu Sans Mono is not installed (fonts-dejavu-core)")
    assert fonts.text("3×2 −∞") == "3×2 −∞"
    assert "DejaVu" in fonts.get(14).getname()[0]


def test_frames_are_written_as_they_are_drawn(tmp_path, monkeypatch):
    """Memory does not grow with the frames: at most two are alive at any time (one drawn, one held
    back to give the last frame its longer duration)."""
    import poolcli.render.animate as animation

    alive: list[weakref.ref] = []
    most = []
    original = animation.frames

    def tracked(*args):
        for image, duration in original(*args):
            gc.collect()
            most.append(sum(ref() is not None for ref in alive))
            alive.append(weakref.ref(image))
            yield image, duration

    monkeypatch.setattr(animation, "frames", tracked)
    assert animate(walks(FIVE, "maxpool:2,s=1", "avgpool:2,s=1"), str(tmp_path / "many.png")) == 16 + 1 + 9 + 1
    assert max(most) <= 2


@pytest.mark.parametrize("writer", ["gif", "png"])
def test_writers_write_each_frame_at_once_and_leave_no_part_file(tmp_path, writer):
    path = tmp_path / f"w.{writer}"
    size = (40, 30)
    out = GifWriter(str(path), size, draw.palette()) if writer == "gif" else ApngWriter(str(path), size)
    written = []
    for k in range(5):
        out.add(Image.new("RGB", size, draw.BASE_COLOURS[k]), 100)
        out.file.flush()
        written.append(out.file.tell())
    assert written == sorted(written) and len(set(written)) == 5
    assert out.close() == 5
    assert [p.name for p in tmp_path.iterdir()] == [path.name]
    frames = frames_of(path)
    assert [frame.getpixel((5, 5)) for frame, _ in frames] == draw.BASE_COLOURS[:5]
    with pytest.raises(ValueError, match="frame of"):
        ApngWriter(str(tmp_path / "x.png"), size).add(Image.new("RGB", (1, 1)), 10)


def test_the_readme_animation_is_the_commands_output(tmp_path):
    """docs/d2l_maxpool.gif is what the README's command writes: same frames, size and durations."""
    from pathlib import Path

    committed = Path(__file__).resolve().parents[2] / "docs" / "d2l_maxpool.gif"
    assert "--animate docs/d2l_maxpool.gif" in (committed.parents[1] / "README.md").read_text(encoding="utf-8")
    fresh = tmp_path / "d2l.gif"
    animate(walks(D2L, "maxpool:2,s=1"), str(fresh))
    theirs, ours = frames_of(committed), frames_of(fresh)
    assert [(f.size, d) for f, d in theirs] == [(f.size, d) for f, d in ours]
    assert committed.stat().st_size < 60_000


def test_steps_that_write_one_place_start_from_what_no_step_writes(tmp_path):
    """pad lists its padded cells: the inner ones are X from the first frame, and nothing is hatched."""
    path = tmp_path / "pad.gif"
    assert animate(walks(D2L, "pad:1"), str(path)) == 16 + 1
    surveys, painter = prepare(walks(D2L, "pad:1")())
    layout = painter.layout
    first = frames_of(path)[0][0]
    assert colour(first, layout.box(layout.output_at, 2, 2)) == draw.FILLED  # X[1, 1], there from the start
    assert colour(first, layout.box(layout.output_at, 4, 4)) == draw.EMPTY  # a padded cell still to come
    assert colour(first, layout.box(layout.input_at, 1, 1)) == draw.WHITE  # not hatched: pad has no windows


D2L_TRANSPOSED = "convtranspose:weight=0 1; 2 3"


def scatter_text(matrix: str, spec: str) -> list[str]:
    """The lines explain prints for each kernel copy (the titles of the scatter grids)."""
    from poolcli.core.walkthrough import Grid, plain

    items = next(walks(matrix, spec)()).items()
    return [plain(item.title) for item in items if isinstance(item, Grid) and item.step is not None]


def test_transposed_convolution_plays_as_a_scatter(tmp_path, captions):
    """d2l's X = [[0, 1], [2, 3]], K = [[0, 1], [2, 3]]: one frame per input cell, the cell lit,
    K beside it, its copy's four cells lit in the output with the running sums; then the result."""
    drawn = captions
    path = tmp_path / "scatter.gif"
    assert animate(walks("0 1; 2 3", D2L_TRANSPOSED), str(path)) == 4 + 1  # 4 input cells, 1 result frame
    assert drawn[:4] == scatter_text("0 1; 2 3", D2L_TRANSPOSED) == [
        "X[0, 0]·K = 0·K, added from Y[0, 0]", "X[0, 1]·K = 1·K, added from Y[0, 1]",
        "X[1, 0]·K = 2·K, added from Y[1, 0]", "X[1, 1]·K = 3·K, added from Y[1, 1]"]
    surveys, painter = prepare(walks("0 1; 2 3", D2L_TRANSPOSED)())
    layout = painter.layout
    assert surveys[0].steps == 4 and surveys[0].out_rows == (0, 3)
    steps = list(first_plane_steps(next(walks("0 1; 2 3", D2L_TRANSPOSED)())))
    frames = frames_of(path)
    landed: set = set()
    for k, ((frame, _), step) in enumerate(zip(frames, steps)):
        i, j = divmod(k, 2)
        copy = {(i + a, j + b) for a in range(2) for b in range(2)}
        assert set(step.targets) == copy and step.cut == ()
        landed |= copy
        for r in range(2):
            for c in range(2):
                assert colour(frame, layout.box(layout.input_at, r, c)) == (draw.WINDOW if (r, c) == (i, j) else draw.WHITE)
                assert colour(frame, layout.box(layout.panel_at, r, c)) == draw.WHITE  # the kernel K
        for r in range(3):
            for c in range(3):
                expected = draw.CURRENT if (r, c) in copy else draw.FILLED if (r, c) in landed else draw.EMPTY
                assert colour(frame, layout.box(layout.output_at, r, c)) == expected, (k, r, c)
    assert [step.sums for step in steps] == [(0, 0, 0, 0), (0, 1, 2, 3), (0, 4, 4, 6), (4, 6, 12, 9)]
    assert steps[-1].plane.output == [[0, 0, 1], [0, 4, 6], [4, 12, 9]]  # the result frame's grid
    assert drawn[4].startswith("output Y (3×3)")
    result = frames[-1][0]
    assert {colour(result, layout.box(layout.output_at, r, c)) for r in range(3) for c in range(3)} == {draw.FILLED}


def test_a_cropped_copy_shows_what_the_crop_cuts(tmp_path):
    """Stride 2, padding 1, output_padding 1: copies that reach row or column -1 are cut there;
    the output grid is drawn inside a grey border one cell wide (top and left)."""
    spec = "convtranspose:weight=1 2 0; -1 3 1,s=2,p=1,output_padding=1"
    matrix = "1 -2 0.5; 4 0 2"
    path = tmp_path / "cropped.png"
    assert animate(walks(matrix, spec), str(path)) == 6 + 1
    surveys, painter = prepare(walks(matrix, spec)())
    layout = painter.layout
    assert surveys[0].out_rows == (-1, 3) and surveys[0].out_cols == (-1, 6)
    assert surveys[0].labels[2] == "output Y (3×6), cropped border grey"
    steps = list(first_plane_steps(next(walks(matrix, spec)())))
    assert [caption(step.line) for step in steps] == scatter_text(matrix, spec)
    first = frames_of(path)[0][0]
    at = lambda r, c: colour(first, layout.box(layout.output_at, r + 1, c + 1))  # noqa: E731  output coordinates
    assert steps[0].targets == ((0, 0), (0, 1)) and steps[0].sums == (3, 1)
    assert steps[0].cut == ((-1, -1, 1), (-1, 0, 2), (-1, 1, 0), (0, -1, -1))
    for r, c, _ in steps[0].cut:
        assert at(r, c) == draw.WINDOW_PAD
    assert at(0, 0) == at(0, 1) == draw.CURRENT
    assert at(-1, 3) == at(2, -1) == draw.PADDING  # the border no copy of this frame reaches
    assert at(2, 5) == draw.EMPTY


def test_transposed_convolution_of_several_channels_plays_the_first(tmp_path):
    """Three input channels: the frames scatter channel 0 into output channel 0; the result frame
    shows that output channel whole (the sum over all input channels)."""
    path = tmp_path / "rgb.gif"
    x = np.arange(27, dtype=np.float64).reshape(1, 3, 3, 3)
    plan = Pipeline([parse_stage("nn.ConvTranspose2d(3, 2, 2, stride=2, dilation=2)")]).plan(x.shape)
    stages = lambda: walk(plan, x.tolist(), context=WalkContext(weights=KernelWeights()), select=Select(every=True))  # noqa: E731
    assert animate(stages, str(path)) == 9 + 1
    steps = list(first_plane_steps(next(stages())))
    assert {(c.row, c.col) for step in steps for c in step.cells} == {(r, c) for r in range(3) for c in range(3)}
    assert steps[4].targets == ((2, 2), (2, 4), (4, 2), (4, 4))  # dilation 2: every 2nd cell
    assert steps[0].plane.output == next(stages()).output[0][0]
    assert prepare(stages())[0][0].labels[0] == "input X, channel 0 (3×3)"


@pytest.mark.parametrize("writer", ["gif", "png"])
def test_a_small_change_costs_a_small_frame(tmp_path, writer):
    """Only the changed rectangle is written, unchanged pixels transparent, and read back whole."""
    path = tmp_path / f"small.{writer}"
    size = (300, 200)
    out = GifWriter(str(path), size, draw.palette()) if writer == "gif" else ApngWriter(str(path), size)
    first = Image.new("RGB", size, draw.WHITE)
    out.add(first, 100)
    out.file.flush()
    before = out.file.tell()
    second = first.copy()
    second.paste(draw.WINDOW, (100, 50, 140, 90))
    second.putpixel((5, 5), draw.INK)
    out.add(second, 100)
    out.file.flush()
    assert out.file.tell() - before < 400
    out.close()
    frames = frames_of(path)
    assert frames[1][0].getpixel((120, 70)) == draw.WINDOW
    assert frames[1][0].getpixel((5, 5)) == draw.INK
    assert frames[1][0].getpixel((60, 40)) == draw.WHITE
