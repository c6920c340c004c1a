"""poolcli explain (CliRunner and the command body in cli/explaining.py): inputs, --crop,
--step/--only, limits and refusals before any output, and never importing torch."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap

from pathlib import Path

import numpy as np
import pytest

from poolcli.cli.environment import Environment
from poolcli.cli.explaining import explain_command
from poolcli.errors import PlanError, SpecError, UsageError

D2L = "0 1 2; 3 4 5; 6 7 8"
ARANGE16 = "0 1 2 3; 4 5 6 7; 8 9 10 11; 12 13 14 15"
ONES16 = "1 1 1 1; 1 1 1 1; 1 1 1 1; 1 1 1 1"
PHOTO = str(Path(__file__).resolve().parents[2] / "sample_images" / "photo.jpg")


@pytest.fixture(autouse=True)
def width_120(monkeypatch):
    """Render as the brief says: a 120-column console (no terminal, so plain text)."""
    monkeypatch.setenv("POOLCLI_WIDTH", "120")


def explain(*specs: str, matrix: str | None = D2L, path: str | None = None, crop: str | None = None,
            step: int | None = None, only: str | None = None, pipeline: str | None = None) -> str:
    """explain_command's output as plain text."""
    out = io.StringIO()
    env = Environment(stdout=out, stderr=io.StringIO())
    status = explain_command(matrix, path, list(specs) or None, pipeline, crop, step, only, env)
    assert status == 0
    return out.getvalue()


def expressions(text: str) -> list[str]:
    return [line[line.index("Y[") :].rstrip() for line in text.splitlines() if "Y[" in line]


def _save(tmp_path, array: np.ndarray, name: str = "x.npy") -> str:
    path = tmp_path / name
    if name.endswith(".npy"):
        np.save(path, array)
    else:
        np.savetxt(path, array, delimiter=",")
    return str(path)


def test_cli_command(invoke):
    result = invoke("explain", "--matrix", D2L, "-S", "maxpool:2,s=1", "--only", "1,1")
    assert result.exit_code == 0, result.output
    assert "max(4, 5, 7, 8) = 8" in result.output
    result = invoke("explain", "--matrix", D2L, "-S", "fractionalmaxpool:2,output_size=2")
    assert result.exit_code == 2


def test_help_keeps_options_and_metavars(invoke):
    text = invoke("explain", "--help").output
    for option in ("--matrix", "-M", "MATRIX", "--crop", "X,Y,W,H", "--step", "--only", "I,J", "ARRAY", "--pipeline"):
        assert option in text


def test_step_and_only_show_one_element():
    assert expressions(explain("maxpool:2,s=1", step=3)) == ["Y[1, 1] = max(4, 5, 7, 8) = 8"]
    assert expressions(explain("maxpool:2,s=1", only="0,1")) == ["Y[0, 1] = max(1, 2, 4, 5) = 5"]


def test_step_outside_every_stage_is_an_error():
    with pytest.raises(UsageError, match="outside every stage's output"):
        explain("maxpool:2,s=1", step=4)
    with pytest.raises(UsageError, match="outside every stage's output"):
        explain("maxpool:2,s=1", only="0,2")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"step": 1, "only": "0,0"}, "--step and --only"),
        ({"step": -1}, "negative"),
        ({"only": "a,b"}, "is not i,j"),
        ({"only": "-1,0"}, "negative position"),
        ({"matrix": None}, "exactly one input"),
        ({"path": "x.npy"}, "exactly one input"),
        ({"crop": "0,0,9,9"}, "does not fit"),
        ({"crop": "1,2"}, "is not X,Y,W,H"),
    ],
)
def test_usage_errors(kwargs, message):
    with pytest.raises(UsageError, match=message):
        explain("maxpool:2", **kwargs)


def test_stages_without_explanation_are_refused_before_any_output(tmp_path):
    out = io.StringIO()
    env = Environment(stdout=out)
    with pytest.raises(UsageError, match="fractionalmaxpool has no window-by-window explanation"):
        explain_command(ARANGE16, None, ["maxpool:1", "fractionalmaxpool:2,output_size=2"], None, None, None, None, env)
    assert out.getvalue() == ""
    with pytest.raises(UsageError, match="linear on 100 features is too big"):
        explain_command(ONES16, None, ["pad:3", "flatten", "linear:2"], None, None, None, None, env)
    with pytest.raises(UsageError, match="no stages"):
        explain_command(D2L, None, None, None, None, None, None, env)
    with pytest.raises(SpecError):
        explain_command(D2L, None, ["maxpool:k=two"], None, None, None, None, env)
    with pytest.raises(PlanError):
        explain_command(D2L, None, ["maxpool:4"], None, None, None, None, env)
    with pytest.raises(UsageError, match="too big to explain"):
        explain_command(None, _save(tmp_path, np.zeros((300, 300))), ["relu"], None, None, None, None, env)
    assert out.getvalue() == ""


def test_big_file_prints_a_bounded_walkthrough(tmp_path):
    path = _save(tmp_path, np.arange(1600, dtype=np.float32).reshape(40, 40))
    text = explain("maxpool:2", matrix=None, path=path)
    assert len(text.splitlines()) < 200
    assert "... 392 more windows (use --step N or --only i,j to see one)" in text
    one = explain("maxpool:2", matrix=None, path=path, only="19,19")
    assert expressions(one) == ["Y[19, 19] = max(1558, 1559, 1598, 1599) = 1599"]


def test_multi_channel_file(tmp_path):
    path = _save(tmp_path, np.arange(5 * 4, dtype=np.float32).reshape(5, 2, 2))
    text = explain("maxpool:2", matrix=None, path=path)
    assert "... 2 more channels not shown (computed the same way)" in text


def test_csv_file_and_crop(tmp_path):
    path = _save(tmp_path, np.arange(36, dtype=np.float64).reshape(6, 6), "x.csv")
    text = explain("maxpool:2", matrix=None, path=path, crop="1,2,2,2")
    assert "crop 1,2,2,2: 1×1×2×2" in text
    assert "Y[0, 0] = max(13, 14, 19, 20) = 20" in text


def test_grayscale_flatten_linear_from_a_float_array(tmp_path):
    path = _save(tmp_path, np.arange(6, dtype=np.float32).reshape(3, 1, 2) * np.float32(1))
    text = explain("grayscale", "flatten", "linear:2", matrix=None, path=path)
    assert "Y[0, 0] = 0.299·0 + 0.587·2 + 0.114·4 = 1.63" in text
    assert "Y[1] = X[0, 0, 1] = 2.63" in text
    assert "features: out_features = 2" in text


def test_grayscale_of_an_image_is_pillows_mode_l():
    """An image's integers take Pillow's fixed point, so explain's luma is Image.convert('L')."""
    from PIL import Image

    text = explain("grayscale", matrix=None, path=PHOTO, crop="10,20,3,3")
    with Image.open(PHOTO) as image:
        expected = np.asarray(image.convert("L"))[20:23, 10:13]
    values = [int(line.rsplit("= ", 1)[1]) for line in expressions(text)]
    assert values == expected.ravel().tolist()
    assert ">> 16 = " in text


def test_explain_does_not_import_torch(tmp_path):
    """Neither the text nor the animation."""
    code = textwrap.dedent(
        """
        import io, sys
        from poolcli.cli.environment import Environment
        from poolcli.cli.explaining import explain_command
        env = Environment(stdout=io.StringIO())
        specs = ["maxpool:2,s=1", "conv:filter=sobel-x,p=1", "maxunpool", "pad:1,mode=reflect", "sigmoid",
                 "avgpool:2,p=1", "medianpool:2", "lppool:2,k=1", "globalavgpool", "flatten", "linear:2"]
        explain_command("0 1 2; 3 4 5; 6 7 8", None, specs, None, None, None, None, env)
        assert "max(0, 1, 3, 4) = 4" in env.stdout.getvalue()
        explain_command("0 1 2; 3 4 5; 6 7 8", None, specs[:9], None, None, None, None, env, animate=sys.argv[1])
        print("torch" in sys.modules)
        """
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "a.gif")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


# --------------------------------------------------------------------------- --animate


def test_animate_writes_the_file_and_keeps_the_text(invoke, tmp_path):
    from PIL import Image

    path = tmp_path / "d2l.gif"
    result = invoke("explain", "--matrix", D2L, "-S", "maxpool:2,s=1", "--animate", str(path))
    assert result.exit_code == 0, result.output
    assert "max(0, 1, 3, 4) = 4" in result.output
    assert f"wrote {path} (5 frames)" in result.output
    with Image.open(path) as image:
        assert image.n_frames == 5


def test_animate_every_window_whatever_step_or_only_shows(invoke, tmp_path):
    from PIL import Image

    path = tmp_path / "one.png"
    result = invoke("explain", "--matrix", D2L, "-S", "avgpool:2,s=1", "--only", "1,1", "--animate", str(path),
                    "--fps", "2")
    assert result.exit_code == 0, result.output
    assert expressions(result.output) == ["Y[1, 1] = (4 + 5 + 7 + 8)/4 = 6"]
    with Image.open(path) as image:
        assert image.n_frames == 5 and image.format == "PNG"
        assert image.info["duration"] == 500


def test_animate_a_transposed_convolution_frame_per_input_cell(invoke, tmp_path):
    from PIL import Image

    path = tmp_path / "scatter.gif"
    result = invoke("explain", "--matrix", "0 1; 2 3", "-S", "convtranspose:weight=0 1; 2 3", "--animate", str(path))
    assert result.exit_code == 0, result.output
    assert "X[0, 1]·K = 1·K, added from Y[0, 1]" in result.output
    assert f"wrote {path} (5 frames)" in result.output  # 4 input cells, 1 result
    with Image.open(path) as image:
        assert image.n_frames == 5


def test_animate_an_image_region(invoke, tmp_path):
    path = tmp_path / "photo.gif"
    result = invoke("explain", PHOTO, "--crop", "10,20,6,6", "-S", "grayscale", "-S", "maxpool:2", "--animate", str(path))
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and path.stat().st_size > 0


@pytest.mark.parametrize(
    "args, message",
    [
        (["--fps", "2"], "--fps without --animate"),
        (["--animate", "X.gif", "--fps", "0"], "outside (0, 50]"),
        (["--animate", "X.gif", "--fps", "51"], "outside (0, 50]"),
        (["--animate", "X.mp4"], ".mp4 is not an animation format"),
        (["--animate", "X"], "no extension is not an animation format"),
    ],
)
def test_animate_usage_errors(invoke, tmp_path, args, message):
    args = [a.replace("X", str(tmp_path / "x")) for a in args]
    result = invoke("explain", "--matrix", D2L, "-S", "maxpool:2", *args)
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""
    assert list(tmp_path.iterdir()) == []


def test_animate_refuses_big_stages_with_the_crop_hint(invoke, tmp_path):
    path = _save(tmp_path, np.arange(1600, dtype=np.float32).reshape(40, 40))
    result = invoke("explain", path, "-S", "maxpool:2", "--animate", str(tmp_path / "big.gif"))
    assert result.exit_code == 2
    assert "too big to animate (at most 32×32 per stage) — use --crop X,Y,W,H" in result.stderr
    assert result.stdout == ""
    result = invoke("explain", path, "--crop", "0,0,32,32", "-S", "maxpool:2", "--animate", str(tmp_path / "ok.gif"))
    assert result.exit_code == 0, result.output


def test_animate_target_that_cannot_be_a_file(invoke, tmp_path):
    (tmp_path / "taken.gif").mkdir()
    for target, message in ((tmp_path / "taken.gif", "is a folder"), (tmp_path / "none" / "a.gif", "there is no folder")):
        result = invoke("explain", "--matrix", D2L, "-S", "maxpool:2", "--animate", str(target))
        assert result.exit_code == 2 and message in result.stderr and result.stdout == ""


def test_animate_refuses_stages_without_a_grid(invoke, tmp_path):
    result = invoke("explain", "--matrix", D2L, "-S", "flatten", "--animate", str(tmp_path / "f.gif"))
    assert result.exit_code == 2
    assert "has no grid to draw" in result.stderr
