"""The rendered table as golden text at a fixed width, and the JSON records.

Regenerate the golden files after a deliberate change with:
    POOLCLI_REGEN_GOLDEN=1 .venv/bin/python -m pytest tests/render/test_report.py
"""

from __future__ import annotations

import io
import os

import pytest
from rich.console import Console

from conftest import ROOT
from poolcli.render import records, report
from poolcli.core.plan import Pipeline

GOLDEN = ROOT / "tests" / "golden"
CASES = {
    "d2l_maxpool_2x3": ((1, 1, 4, 4), ["nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))"]),
    "ceil_mode_drop": ((1, 3, 5, 5), ["maxpool:k=3,s=3,p=1,ceil=true", "avgpool:2,ceil=true"]),
    "lenet": (
        (1, 1, 28, 28),
        [
            "nn.Conv2d(1, 6, kernel_size=5, padding=2)", "nn.Sigmoid()", "nn.AvgPool2d(kernel_size=2, stride=2)",
            "nn.Conv2d(6, 16, kernel_size=5)", "nn.Sigmoid()", "nn.AvgPool2d(kernel_size=2, stride=2)",
            "nn.Flatten()", "nn.Linear(400, 120)", "nn.Sigmoid()", "nn.Linear(120, 84)", "nn.Sigmoid()",
            "nn.Linear(84, 10)",
        ],
    ),
    "encoder_decoder": ((1, 3, 7, 9), ["maxpool:2", "maxpool:2", "maxunpool", "maxunpool"]),
}


WIDE, NARROW = 240, 80


def render(shape, specs, width: int = WIDE) -> str:
    plan = Pipeline.from_specs(specs).plan(shape)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, legacy_windows=False)
    console.print(report.plan_table(plan, title="x".join(map(str, shape)), caption=report.plan_caption(plan)))
    return "\n".join(line.rstrip() for line in buffer.getvalue().splitlines()) + "\n"


@pytest.mark.parametrize("width", [WIDE, NARROW])
@pytest.mark.parametrize("name", sorted(CASES))
def test_table_golden(name, width):
    text = render(*CASES[name], width=width)
    path = GOLDEN / (f"{name}.txt" if width == WIDE else f"{name}_{width}.txt")
    if os.environ.get("POOLCLI_REGEN_GOLDEN"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path.name}: run with POOLCLI_REGEN_GOLDEN=1 and review it"
    assert text == path.read_text(encoding="utf-8")
    assert max(len(line) for line in text.splitlines()) <= width


@pytest.mark.parametrize("width", [WIDE, NARROW])
def test_ceil_mode_shows_the_dropped_window(width):
    text = " ".join(render(*CASES["ceil_mode_drop"], width=width).split())
    assert "⌈(5 + 2·1 − 1·(3−1) − 1)/3⌉ + 1 = 3, but window 3 would start in the padding" in text
    assert "so = 2" in text


def test_narrow_console_moves_formulas_under_the_table_unbroken():
    text = render(*CASES["lenet"], width=NARROW)
    header = next(line for line in text.splitlines() if line.strip().startswith("#"))
    assert "H_out" not in header and "stage" in header
    assert "  0 H_out, W_out: ⌊(28 + 2·2 − 1·(5−1) − 1)/1⌋ + 1 = 28" in text
    assert "  6 features:     16·5·5 = 400" in text
    wide = render(*CASES["lenet"], width=WIDE)
    assert "H_out" in next(line for line in wide.splitlines() if line.strip().startswith("#"))


def test_record_matches_design_keys():
    plan = Pipeline.from_specs(["maxpool:2"]).plan((1, 3, 512, 512))
    rec = records.record(input="a.png", output="a_pooled.png", device="cpu", plan=plan, seconds=[0.0012])
    assert list(rec) == ["input", "output", "status", "error", "device", "input_shape", "output_shape", "stages"]
    stage = rec["stages"][0]
    assert stage["formula"]["H"] == "⌊(512 + 2·0 − 1·(2−1) − 1)/2⌋ + 1 = 256"
    assert stage["ops"] == 786432 and stage["seconds"] == 0.0012


def test_lenet_params_and_shapes():
    plan = Pipeline.from_specs(CASES["lenet"][1]).plan((1, 1, 28, 28))
    assert [s.params_count for s in plan.stages if s.params_count] == [156, 2416, 48120, 10164, 850]
    assert [s.output_shape for s in plan.stages] == [
        (1, 6, 28, 28), (1, 6, 28, 28), (1, 6, 14, 14), (1, 16, 10, 10), (1, 16, 10, 10), (1, 16, 5, 5),
        (1, 400), (1, 120), (1, 120), (1, 84), (1, 84), (1, 10),
    ]


NARROW_CASES = dict(CASES, mixed=((1, 3, 266, 400), [
    "nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))", "avgpool:3,s=2,ceil=true,count_include_pad=false",
    "conv:filter=sobel-x,p=1,padding_mode=reflect", "conv:weight=[[0,1,2,3,4,5],[6,7,8,9,10,11]]",
]))


@pytest.mark.parametrize("width", [40, 50, 60, 70, 80, 100, 120])
@pytest.mark.parametrize("name", sorted(NARROW_CASES))
def test_narrow_terminals_cut_nothing(name, width):
    """DESIGN §4: columns are never cut and stage labels fold only between parameters."""
    shape, specs = NARROW_CASES[name]
    text = render(shape, specs, width=width)
    plan = Pipeline.from_specs(specs).plan(shape)
    words = set(text.split())
    for stage in plan.stages:
        for value in (stage.input_shape, stage.output_shape):
            assert "×".join(map(str, value)) in words, (value, text)
        for chunk in report.label_chunks(stage.stage.label()):
            pieces = [chunk] if len(chunk) <= width - 6 else report.inner_chunks(chunk)
            for piece in pieces:  # never split across lines; a long matrix only between its numbers
                assert piece in text, (piece, text)
    assert max(len(line) for line in text.splitlines()) <= width
