"""`poolcli pool`: the seeds' pooling examples through the CLI, real images, and errors."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import SAMPLES


def pooled(invoke, tmp_path, source, *args):
    out = tmp_path / "out.npy"
    result = invoke("pool", str(source), "-o", str(out), "-q", *args)
    assert result.exit_code == 0, result.stderr
    return np.load(out)


def test_d2l_max_and_avg_3x3(invoke, tmp_path, d2l_x):
    assert pooled(invoke, tmp_path, d2l_x, "-k", "2", "-s", "1").tolist() == [[[[4, 5], [7, 8]]]]
    assert pooled(invoke, tmp_path, d2l_x, "-m", "avg", "-k", "2", "-s", "1").tolist() == [[[[2, 3], [5, 6]]]]


@pytest.mark.parametrize(
    "args, expected",
    [
        (["-k", "3"], [[[[10]]]]),
        (["-k", "3", "-p", "1", "-s", "2"], [[[[5, 7], [13, 15]]]]),
        (["-k", "2x3", "-s", "2,3", "-p", "0x1"], [[[[5, 7], [13, 15]]]]),
    ],
    ids=["MaxPool2d(3)", "MaxPool2d(3, padding=1, stride=2)", "MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))"],
)
def test_d2l_padding_and_stride(invoke, tmp_path, arange16, args, expected):
    assert pooled(invoke, tmp_path, arange16, *args).tolist() == expected


@pytest.mark.parametrize(
    "spec",
    ["nn.MaxPool2d((2, 3), stride=(2, 3), padding=(0, 1))", "maxpool:k=2x3,s=2x3,p=0x1", "maxpool:(2,3),s=(2,3),p=(0,1)"],
)
def test_both_spellings_through_run(invoke, tmp_path, arange16, spec):
    out = tmp_path / "o.npy"
    result = invoke("run", str(arange16), "-S", spec, "-o", str(out), "-q")
    assert result.exit_code == 0, result.stderr
    assert np.load(out).tolist() == [[[[5, 7], [13, 15]]]]


def test_d2l_two_channels(invoke, tmp_path):
    x = np.arange(16, dtype=np.float32).reshape(1, 1, 4, 4)
    path = tmp_path / "x2.npy"
    np.save(path, np.concatenate([x, x + 1], axis=1))
    got = pooled(invoke, tmp_path, path, "-k", "3", "-p", "1", "-s", "2")
    assert got.tolist() == [[[[5, 7], [13, 15]], [[6, 8], [14, 16]]]]


@pytest.fixture
def seed_1x2x4x4(tmp_path):
    """The seeds' pool2d.py image: channel 0 rows 0..3, channel 1 rows 4..7."""
    rows = np.arange(8, dtype=np.float32).reshape(2, 4, 1).repeat(4, axis=2)
    path = tmp_path / "img.npy"
    np.save(path, rows[None])
    return path


def test_seed_1x2x4x4_examples(invoke, tmp_path, seed_1x2x4x4):
    assert pooled(invoke, tmp_path, seed_1x2x4x4, "-k", "2").tolist() == [[[[1, 1], [3, 3]], [[5, 5], [7, 7]]]]
    one = pooled(invoke, tmp_path, seed_1x2x4x4, "-k", "2", "-s", "1")
    assert one[0, 0].tolist() == [[1, 1, 1], [2, 2, 2], [3, 3, 3]]
    assert one[0, 1].tolist() == [[5, 5, 5], [6, 6, 6], [7, 7, 7]]
    avg = pooled(invoke, tmp_path, seed_1x2x4x4, "-m", "avg", "-k", "2", "-s", "1", "-p", "1")
    np.testing.assert_allclose(avg[0, 0], [
        [0, 0, 0, 0, 0], [0.25, 0.5, 0.5, 0.5, 0.25], [0.75, 1.5, 1.5, 1.5, 0.75],
        [1.25, 2.5, 2.5, 2.5, 1.25], [0.75, 1.5, 1.5, 1.5, 0.75]])
    np.testing.assert_allclose(avg[0, 1], [
        [1, 2, 2, 2, 1], [2.25, 4.5, 4.5, 4.5, 2.25], [2.75, 5.5, 5.5, 5.5, 2.75],
        [3.25, 6.5, 6.5, 6.5, 3.25], [1.75, 3.5, 3.5, 3.5, 1.75]])
    assert pooled(invoke, tmp_path, seed_1x2x4x4, "-m", "avg", "-k", "4").tolist() == [[[[1.5]], [[5.5]]]]
    assert pooled(invoke, tmp_path, seed_1x2x4x4, "-m", "avg", "--global").tolist() == [[[[1.5]], [[5.5]]]]


def test_divisor_override_on_ones(invoke, tmp_path):
    path = tmp_path / "ones.npy"
    np.save(path, np.ones((1, 1, 4, 4), dtype=np.float32))
    got = pooled(invoke, tmp_path, path, "-m", "avg", "-k", "2", "--divisor-override", "3")
    np.testing.assert_allclose(got, np.full((1, 1, 2, 2), 4 / 3), rtol=1e-6)
    out = tmp_path / "o.npy"
    result = invoke("run", str(path), "-S", "AvgPool2d((2, 2), stride=(2, 2), divisor_override=3)", "-o", str(out), "-q")
    assert result.exit_code == 0
    np.testing.assert_allclose(np.load(out), np.full((1, 1, 2, 2), 4 / 3), rtol=1e-6)


def test_photo_writes_beside_input_and_matches_torch(invoke, tmp_path):
    import shutil

    import torch
    import torch.nn.functional as F
    from PIL import Image

    photo = tmp_path / "photo.png"
    shutil.copy(SAMPLES / "coffee.png", photo)
    result = invoke("pool", str(photo), "--kernel", "2", "--stride", "2")
    assert result.exit_code == 0, result.stderr
    out = tmp_path / "photo_pooled.png"
    assert out.exists()
    assert "⌊(" in result.stdout and "H_out" in result.stdout
    pixels = torch.from_numpy(np.asarray(Image.open(photo).convert("RGB"))).permute(2, 0, 1)[None]
    expected = F.max_pool2d(pixels, 2, 2)[0].permute(1, 2, 0).numpy()
    assert np.array_equal(np.asarray(Image.open(out)), expected)


@pytest.mark.parametrize("name", ["coffee.png", "photo.jpg", "exif_rotated.jpg", "logo_rgba.png", "gray16.png"])
@pytest.mark.parametrize("mode", ["max", "avg"])
def test_both_engines_write_the_same_pixels(invoke, tmp_path, name, mode):
    """Decoded pictures reach the engines as views of the decoder's buffer (read-only, channels-last,
    flipped by EXIF): each engine takes them as they come and both write the same file."""
    outputs = []
    for engine in ("numpy", "torch"):
        out = tmp_path / f"{engine}.png"
        result = invoke("pool", str(SAMPLES / name), "-m", mode, "-k", "2", "--engine", engine, "-o", str(out), "-q")
        assert result.exit_code == 0, result.stderr
        outputs.append(np.asarray(Image.open(out)))
    np.testing.assert_array_equal(*outputs)


def test_json_record(invoke, tmp_path, arange16):
    out = tmp_path / "o.npy"
    result = invoke("pool", str(arange16), "-k", "2", "-o", str(out), "--json")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert record["status"] == "ok" and record["error"] is None
    assert record["input_shape"] == [1, 1, 4, 4] and record["output_shape"] == [1, 1, 2, 2]
    stage = record["stages"][0]
    assert stage["op"] == "maxpool"
    assert stage["params"] == {"kernel_size": [2, 2], "stride": [2, 2], "padding": [0, 0], "dilation": [1, 1], "ceil_mode": False}
    assert stage["formula"]["H"].endswith("= 2")
    assert stage["receptive_field"] == [2, 2] and stage["jump"] == [2, 2]
    assert stage["params_count"] == 0 and stage["ops"] == 16
    assert isinstance(stage["seconds"], float)


@pytest.mark.parametrize(
    "args, status, fragment",
    [
        (["-k", "5"], 2, "⌊(4 + 2·0 − 1·(5−1) − 1)/5⌋ + 1 = 0"),
        (["-k", "2", "-p", "2"], 2, "padding"),
        (["-m", "bogus", "-k", "2"], 2, "--mode"),
        ([], 2, "--kernel"),
        (["-k", "2", "--bogus"], 2, "No such option"),
        (["-k", "2", "--device", "cuda"], 1, "CUDA"),
        (["-k", "2", "--json", "-o", "-"], 2, "--report"),
    ],
)
def test_usage_errors_are_one_line(invoke, arange16, args, status, fragment):
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = invoke("pool", str(arange16), *args)
    assert result.exit_code == status
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolcli: error: ")
    assert fragment in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["missing", "empty", "text", "folder", "truncated"])
def test_bad_files_exit_1_naming_the_file(invoke, tmp_path, kind):
    path = tmp_path / "bad.png"
    if kind == "empty":
        path.write_bytes(b"")
    elif kind == "text":
        path.write_text("not an image at all\n")
    elif kind == "folder":
        path.mkdir()
    elif kind == "truncated":
        path.write_bytes((SAMPLES / "coffee.png").read_bytes()[:2000])
    result = invoke("pool", str(path), "-k", "2", "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 1, (kind, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolcli: error: ") and "bad.png" in lines[0]
    assert "Traceback" not in result.stderr


def test_never_writes_over_its_input(invoke, tmp_path):
    import shutil

    photo = tmp_path / "a.png"
    shutil.copy(SAMPLES / "coffee.png", photo)
    before = photo.read_bytes()
    result = invoke("pool", str(photo), "-k", "2", "-o", str(photo))
    assert result.exit_code == 1 and "over an input" in result.stderr
    assert photo.read_bytes() == before


def test_stdin_to_stdout(tmp_path):
    data = (SAMPLES / "coffee.png").read_bytes()
    proc = subprocess.run(
        [sys.executable, "-m", "poolcli", "pool", "-", "-k", "2", "-o", "-"],
        input=data, capture_output=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b"\x89PNG")
    assert b"H_out" in proc.stderr


def test_stdout_holds_the_whole_image_when_the_process_ends_without_teardown():
    """exit_now skips the interpreter's teardown, so the flush before it must deliver every byte:
    a photo pooled into RGBX memory comes out on stdout as one complete JPEG and nothing else."""
    proc = subprocess.run(
        [sys.executable, "-m", "poolcli", "pool", str(SAMPLES / "photo.jpg"), "-m", "avg", "-k", "2", "-o", "-",
         "--format", "jpeg"],
        capture_output=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.startswith(b"\xff\xd8") and proc.stdout.endswith(b"\xff\xd9")
    with Image.open(io.BytesIO(proc.stdout)) as written:
        written.load()
        width, height = Image.open(SAMPLES / "photo.jpg").size
        assert written.size == (width // 2, height // 2)


def test_help_does_not_import_torch():
    code = "import sys; from poolcli.cli import main\ntry:\n main(['pool','--help'])\nexcept SystemExit: pass\nassert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode()


def test_wrong_command_line_does_not_import_torch():
    code = "import sys; from poolcli.cli import main\ntry:\n main(['pool','x.png','-k','0'])\nexcept SystemExit: pass\nassert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr.decode() + proc.stdout.decode()


def test_quiet_prints_nothing_on_stdout(invoke, tmp_path):
    """-q: nothing on stdout but data (here none), for one file and for a batch; errors still on stderr."""
    one = invoke("pool", str(SAMPLES / "coffee.png"), "-k", "2", "-o", str(tmp_path / "a.png"), "-q")
    assert one.exit_code == 0 and one.stdout == "" and one.stderr == ""
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    many = invoke("pool", str(SAMPLES / "coffee.png"), str(tmp_path / "bad.png"), "-k", "2", "-o", str(tmp_path / "out"), "-q")
    assert many.exit_code == 1 and many.stdout == ""
    assert many.stderr.count("poolcli: error:") == 1 and "bad.png" in many.stderr


def test_a_tiled_run_to_stdout_keeps_stdout_pure(tmp_path):
    """With -o - and a --memory that forces tiles, stdout holds only the PNG; the table and its
    'tiled' note go to stderr."""
    import io
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", "poolcli", "pool", str(SAMPLES / "photo.jpg"), "-k", "2", "-o", "-", "--memory", "1M"],
        capture_output=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    with Image.open(io.BytesIO(proc.stdout)) as picture:
        assert picture.format == "PNG" and picture.size == (200, 133)
    assert b"tiled" in proc.stderr


def test_fsync_option_flushes_every_output(invoke, tmp_path, monkeypatch):
    import poolcli.io.writing as writing

    synced: list[int] = []
    monkeypatch.setattr(writing.os, "fsync", lambda fd: synced.append(fd))
    result = invoke("pool", str(SAMPLES / "coffee.png"), str(SAMPLES / "gray.png"), "-k", "2", "-o", str(tmp_path / "out"), "-q", "--fsync")
    assert result.exit_code == 0, result.stderr
    assert len(synced) == 4  # two files, each with its folder entry
    synced.clear()
    assert invoke("pool", str(SAMPLES / "coffee.png"), "-k", "2", "-o", str(tmp_path / "x.png"), "-q").exit_code == 0
    assert synced == []


def _tiny(path, size=(5, 1)):
    Image.new("RGB", size, (10, 20, 30)).save(path)
    return path


def test_a_pipeline_that_reaches_zero_names_the_file(invoke, tmp_path):
    """Alone: exit 2 (a spec error), the line naming the file and the formula that went to 0."""
    tiny = _tiny(tmp_path / "tiny.png")
    result = invoke("pool", str(tiny), "-k", "2", "-o", str(tmp_path / "o.png"))
    assert result.exit_code == 2
    assert result.stderr.startswith(f"poolcli: error: {tiny}: maxpool:k=2 on H=1 gives H_out=0")
    assert result.stderr.count("\n") == 1


def test_in_a_batch_each_failure_is_its_own_and_names_its_file(invoke, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    shutil.copy(SAMPLES / "coffee.png", folder / "a.png")
    _tiny(folder / "b.png")
    (folder / "c.png").write_bytes(b"not a picture")
    result = invoke("pool", str(folder), "-k", "2", "-o", str(tmp_path / "out"), "--json")
    assert result.exit_code == 1
    statuses = {Path(r["input"]).name: r["status"] for r in map(json.loads, result.stdout.splitlines())}
    assert statuses == {"a.png": "ok", "b.png": "error", "c.png": "error"}
    lines = [line for line in result.stderr.splitlines() if line.startswith("poolcli: error:")]
    assert len(lines) == 2 and any(str(folder / "b.png") in line for line in lines)
    assert all(str(folder) in line for line in lines)


def test_same_stem_inputs_both_write(invoke, tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    picture = Image.open(SAMPLES / "coffee.png").convert("RGB").resize((32, 24))
    picture.save(folder / "hopper.ico")
    picture.save(folder / "hopper.bmp")
    picture.save(folder / "hopper.tga")
    result = invoke("pool", str(folder), "-k", "2", "-o", str(tmp_path / "out"), "--format", "png", "-q")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["hopper.bmp.png", "hopper.ico.png", "hopper.tga.png"]


def test_one_output_file_for_several_inputs_is_a_usage_error(invoke, tmp_path):
    result = invoke("pool", str(SAMPLES / "coffee.png"), str(SAMPLES / "gray.png"), "-k", "2", "-o", str(tmp_path / "single.png"))
    assert result.exit_code == 2 and "names a file, but there are several inputs" in result.stderr
    assert not (tmp_path / "single.png").exists()


def test_round_off_never_normalizes_a_pool(invoke, tmp_path):
    """White pixels of alpha 129, 155, 248, 187 average, premultiplied, to 1.0000001: round-off,
    which a pipeline of pools, unpool and pad never stretches (DESIGN §1)."""
    rgba = np.full((2, 2, 4), 255, np.uint8)
    rgba[..., 3] = [[129, 155], [248, 187]]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "white.png")
    for engine in ("numpy", "torch"):
        result = invoke("pool", str(tmp_path / "white.png"), "-m", "avg", "-k", "2", "-o", str(tmp_path / f"{engine}.png"),
                        "--json", "--engine", engine)
        assert result.exit_code == 0, result.stderr
        assert json.loads(result.stdout)["normalize"] == "none"
        assert np.asarray(Image.open(tmp_path / f"{engine}.png"))[0, 0].tolist() == [255, 255, 255, 180]
    array = tmp_path / "values.npy"
    np.save(array, np.array([[0.0, 4.0], [2.0, 6.0]], np.float32))
    result = invoke("pool", str(array), "-m", "avg", "-k", "1", "-o", str(tmp_path / "array.png"), "--json")
    assert json.loads(result.stdout)["normalize"] == "auto → minmax"  # arrays are not pictures: stretched


def test_unpool_indices_outside_the_output_are_one_line_on_every_engine(invoke, tmp_path):
    """A 5×5 input's 2×2 maxima lie at flat index 18 at most; an output_size of 3×3 is within torch's
    bounds but cannot hold it: the same one line on both engines."""
    np.save(tmp_path / "five.npy", np.arange(25, dtype=np.float32).reshape(5, 5))
    lines = set()
    for engine in ("numpy", "torch"):
        result = invoke("run", str(tmp_path / "five.npy"), "-S", "maxpool:2", "-S", "maxunpool:2,output_size=3x3",
                        "-o", str(tmp_path / f"{engine}.npy"), "--engine", engine)
        assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
        lines.add(result.stderr)
    [line] = lines
    assert line.startswith(f"poolcli: error: {tmp_path / 'five.npy'}: maxunpool") and "index (18) lies outside the 3×3" in line


def test_c_decoder_noise_in_worker_threads_never_reaches_stderr(tmp_path):
    """A batch decodes in threads, where a C decoder's writes to fd 2 cannot be tied to a file:
    they are kept off stderr, which holds poolcli's own lines only."""
    code = (
        "import os, sys\n"
        "import poolcli.io.pictures as pictures\n"
        "real = pictures._frame_pixels\n"
        "def noisy(*args, **kwargs):\n"
        "    os.write(2, b'libfoo: noise from C\\n')\n"
        "    return real(*args, **kwargs)\n"
        "pictures._frame_pixels = noisy\n"
        "from poolcli.cli import main\n"
        "main(sys.argv[1:])\n"
    )
    (tmp_path / "bad.png").write_bytes(b"not a picture")
    args = ["pool", str(SAMPLES / "coffee.png"), str(SAMPLES / "gray.png"), str(tmp_path / "bad.png"), "-k", "2",
            "-o", str(tmp_path / "out"), "--json"]
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "libfoo" not in proc.stderr and "poolcli: error: " + str(tmp_path / "bad.png") in proc.stderr
    assert "summary" in proc.stderr and len(proc.stdout.splitlines()) == 3


@pytest.mark.parametrize("extra", [["-k", "2"], ["-s", "2"], ["-p", "1"], ["--output-size", "2x2"]])
def test_global_takes_no_window(invoke, tmp_path, extra):
    result = invoke("pool", str(SAMPLES / "coffee.png"), "-m", "avg", "--global", *extra, "-o", str(tmp_path / "g.npy"))
    assert result.exit_code == 2 and result.stderr.startswith("poolcli: error: --global ")
    assert not (tmp_path / "g.npy").exists()
