"""`poolcli run`, `conv`, `unpool`, `filters`: pipelines from specs and files, and their pictures."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import ROOT, SAMPLES


def run_npy(invoke, tmp_path, array, *args):
    source = tmp_path / "in.npy"
    np.save(source, np.asarray(array, dtype=np.float32))
    out = tmp_path / "out.npy"
    result = invoke(*args[:1], str(source), *args[1:], "-o", str(out), "-q")
    assert result.exit_code == 0, result.stderr
    return np.load(out)


def test_corr2d_seed_example(invoke, tmp_path):
    got = run_npy(invoke, tmp_path, np.arange(9).reshape(3, 3), "conv", "-w", "0 1; 2 3")
    assert got.tolist() == [[[[19, 25], [37, 43]]]]
    got = run_npy(invoke, tmp_path, np.arange(9).reshape(3, 3), "run", "-S", "conv:weight=[[0,1],[2,3]]")
    assert got.tolist() == [[[[19, 25], [37, 43]]]]


def test_edge_detector(invoke, tmp_path):
    x = np.ones((6, 8))
    x[:, 2:6] = 0
    got = run_npy(invoke, tmp_path, x, "conv", "-f", "edge")
    expected = np.zeros((6, 7))
    expected[:, 1] = 1
    expected[:, 5] = -1
    assert got[0, 0].tolist() == expected.tolist()


def test_multi_input_channel_sum(invoke, tmp_path):
    x = np.stack([np.arange(9).reshape(3, 3), np.arange(1, 10).reshape(3, 3)])
    got = run_npy(invoke, tmp_path, x, "run", "-S", "conv:weight=[[[0,1],[2,3]],[[1,2],[3,4]]],channels=sum")
    assert got.tolist() == [[[[56, 72], [104, 120]]]]


def test_unpool_puts_maxima_back(invoke, tmp_path):
    x = np.array([[1, 3, 0, 2], [4, 2, 1, 1], [0, 0, 5, 6], [2, 1, 7, 3]], dtype=np.float32)
    got = run_npy(invoke, tmp_path, x, "unpool", "-k", "2")
    expected = np.zeros((4, 4))
    expected[1, 0], expected[0, 3], expected[3, 0], expected[3, 2] = 4, 2, 2, 7
    assert got[0, 0].tolist() == expected.tolist()


def test_unpool_odd_size_comes_back(invoke, tmp_path):
    x = np.random.default_rng(0).random((1, 2, 7, 9))
    got = run_npy(invoke, tmp_path, x, "run", "-S", "maxpool:2", "-S", "maxpool:2", "-S", "maxunpool", "-S", "maxunpool")
    assert got.shape == (1, 2, 7, 9)


def test_pipeline_files(invoke, tmp_path):
    x = np.arange(16).reshape(4, 4)
    toml = tmp_path / "p.toml"
    toml.write_text('[[stage]]\nop = "maxpool"\nkernel_size = 2\n\n[[stage]]\nop = "relu"\n')
    js = tmp_path / "p.json"
    js.write_text(json.dumps({"stage": [{"op": "maxpool", "kernel_size": 2}, {"op": "relu"}]}))
    a = run_npy(invoke, tmp_path, x, "run", "--pipeline", str(toml))
    b = run_npy(invoke, tmp_path, x, "run", "--pipeline", str(js))
    assert a.tolist() == b.tolist() == [[[[5, 7], [13, 15]]]]


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.toml")))
def test_examples_run_on_a_sample(invoke, tmp_path, example):
    source = SAMPLES / ("gray.png" if "lenet" in example else "coffee.png")
    fmt = "npy" if "lenet" in example else "png"
    out = tmp_path / f"out.{fmt}"
    args = ["run", str(source), "--pipeline", str(ROOT / "examples" / example), "-o", str(out)]
    if "lenet" in example:
        result = invoke("shape", "1x1x28x28", "--pipeline", str(ROOT / "examples" / example), "--json")
        assert json.loads(result.stdout)["output_shape"] == [1, 10]
        return
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr
    assert out.exists()


def test_normalize_is_reported_and_npy_keeps_exact_values(invoke, tmp_path):
    out = tmp_path / "edges.png"
    result = invoke("conv", str(SAMPLES / "gray.png"), "-f", "sobel-x", "-p", "1", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert "normalize auto → minmax" in result.stdout
    raw = tmp_path / "edges.npy"
    result = invoke("conv", str(SAMPLES / "gray.png"), "-f", "sobel-x", "-p", "1", "-o", str(raw), "-q")
    assert np.load(raw).min() < 0


def test_save_stages_and_montage(invoke, tmp_path):
    stages = tmp_path / "stages"
    montage = tmp_path / "m.png"
    result = invoke(
        "run", str(SAMPLES / "coffee.png"), "-S", "grayscale", "-S", "conv:filter=sobel-x,p=1", "-S", "relu",
        "-S", "maxpool:2", "-o", str(tmp_path / "o.png"), "--save-stages", str(stages), "--montage", str(montage), "-q",
    )
    assert result.exit_code == 0, result.stderr
    names = sorted(p.name for p in stages.iterdir())
    assert names[0].endswith("_00_input.png") and len(names) == 5
    from PIL import Image

    with Image.open(montage) as picture:
        assert picture.width > picture.height


def test_filters_lists_every_named_filter(invoke):
    from poolcli.core.filters import NAMES

    result = invoke("filters", "--json")
    assert result.exit_code == 0
    names = [json.loads(line)["name"] for line in result.stdout.splitlines()]
    assert names == list(NAMES)


def test_lenet_to_npy(invoke, tmp_path):
    x = np.random.default_rng(1).random((28, 28))
    got = run_npy(invoke, tmp_path, x, "run", "--pipeline", str(ROOT / "examples" / "lenet.toml"))
    assert got.shape == (1, 10)


def test_flatten_to_image_is_a_usage_error(invoke, tmp_path):
    result = invoke("run", str(SAMPLES / "gray.png"), "-S", "flatten", "-o", str(tmp_path / "x.png"))
    assert result.exit_code == 2 and "npy" in result.stderr
