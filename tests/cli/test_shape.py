"""`poolcli shape` and `poolcli info`: the plan without pixels, and headers."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import SAMPLES

LENET = [
    "nn.Conv2d(1, 6, kernel_size=5, padding=2)", "nn.Sigmoid()", "nn.AvgPool2d(kernel_size=2, stride=2)",
    "nn.Conv2d(6, 16, kernel_size=5)", "nn.Sigmoid()", "nn.AvgPool2d(kernel_size=2, stride=2)", "nn.Flatten()",
    "nn.Linear(400, 120)", "nn.Sigmoid()", "nn.Linear(120, 84)", "nn.Sigmoid()", "nn.Linear(84, 10)",
]


def stage_args(specs):
    return [arg for spec in specs for arg in ("-S", spec)]


@pytest.mark.parametrize("text, expected", [("1x3x224x224", [1, 3, 224, 224]), ("3x224x224", [1, 3, 224, 224]), ("224x224", [1, 1, 224, 224])])
def test_shape_spellings(invoke, text, expected):
    result = invoke("shape", text, "-S", "maxpool:2", "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["input"] == text and record["device"] is None and record["status"] == "ok"
    assert record["input_shape"] == expected
    assert record["output_shape"] == expected[:2] + [expected[2] // 2, expected[3] // 2]


def test_lenet_trace(invoke):
    result = invoke("shape", "4x1x28x28", *stage_args(LENET), "--json")
    assert result.exit_code == 0, result.stderr
    shapes = [s["output_shape"] for s in json.loads(result.stdout)["stages"]]
    assert shapes == [
        [4, 6, 28, 28], [4, 6, 28, 28], [4, 6, 14, 14], [4, 16, 10, 10], [4, 16, 10, 10], [4, 16, 5, 5],
        [4, 400], [4, 120], [4, 120], [4, 84], [4, 84], [4, 10],
    ]


def test_shape_table_shows_formula(invoke):
    result = invoke("shape", "1x1x4x4", "-S", "nn.MaxPool2d(3, padding=1, stride=2)")
    assert result.exit_code == 0
    assert "⌊(4 + 2·1 − 1·(3−1) − 1)/2⌋ + 1 = 2" in result.stdout


def test_shape_of_an_image_reads_the_header(invoke):
    result = invoke("shape", str(SAMPLES / "photo.jpg"), "-S", "maxpool:2", "--json")
    assert result.exit_code == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["input_shape"][:2] == [1, 3]


def test_zero_dimension_is_a_spec_error_with_the_formula(invoke):
    result = invoke("shape", "1x1x3x3", "-S", "maxpool:5")
    assert result.exit_code == 2
    assert result.stderr.startswith("poolcli: error: ") and "= 0" in result.stderr


@pytest.mark.parametrize(
    "spec, token",
    [("maxpool:k=2,q=1", "'q'"), ("foo:2", "'foo'"), ("maxpool:k=x", "k"), ("nn.MaxPool2d(__import__('os'))", "__import__")],
)
def test_spec_errors_exit_2_naming_the_token(invoke, spec, token):
    result = invoke("shape", "1x1x8x8", "-S", spec)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and token in lines[0]


def test_shape_does_not_import_torch():
    code = (
        "import sys\nfrom poolcli.cli import main\n"
        "try:\n main(['shape','1x1x28x28','-S','nn.Conv2d(1, 6, kernel_size=5, padding=2)','-S','avgpool:2'])\n"
        "except SystemExit as e: assert not e.code, e.code\n"
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()


@pytest.mark.parametrize("args", [
    ["shape", "1x1x28x28", "-S", "maxpool:2"],
    ["shape", "PHOTO", "-S", "maxpool:2"],
    ["info", "PHOTO"],
    ["filters"],
])
def test_the_plan_and_header_commands_import_neither_numpy_nor_torch(args):
    """They read headers and do shape arithmetic: no pixel becomes an array, so numpy stays out too."""
    args = [str(SAMPLES / "photo.jpg") if arg == "PHOTO" else arg for arg in args]
    code = (
        f"import sys\nfrom poolcli.cli import main\ntry:\n main({args!r})\n"
        "except SystemExit as e: assert not e.code, e.code\n"
        "assert not {'numpy', 'torch'} & set(sys.modules), sorted({'numpy', 'torch'} & set(sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()


def test_shape_importtime_has_no_torch():
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "poolcli", "shape", "1x1x28x28", "-S", "maxpool:2"],
        capture_output=True, timeout=60,
    )
    assert proc.returncode == 0
    assert not any(line.rstrip().endswith("| torch") for line in proc.stderr.decode().splitlines())


def test_info(invoke):
    result = invoke("info", str(SAMPLES / "gray16.png"), str(SAMPLES / "photo.jpg"), "--json")
    assert result.exit_code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert records[0]["bit_depth"] == 16 and records[0]["shape"][1] == 1
    assert records[1]["shape"][1] == 3


def test_info_bad_file(invoke, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("nope")
    result = invoke("info", str(bad))
    assert result.exit_code == 1 and "bad.png" in result.stderr
