"""poolcli.io.reading and pictures: files, stdin and arrays → NCHW arrays (DESIGN.md §1, §5, §8)."""

from __future__ import annotations

import io
import os
import random
import shutil
import struct
import subprocess
import sys
import time
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import png
import pytest
from PIL import Image, ImageOps

from poolcli.errors import InputError, OutputError, UsageError
from poolcli.io.formats import output_format
from poolcli.io.reading import DEFAULT_MAX_PIXELS, load_image, load_matrix, read_header
from poolcli.io.writing import atomic_write, save_image

from handmade import PNG_SIGNATURE, filtered_png16, pillow_nchw, png_chunk, rng_pixels

SAMPLES = Path(__file__).resolve().parents[2] / "sample_images"


# ------------------------------------------------------------------------- the sample images


@pytest.mark.parametrize(
    "name, channels, dtype, maxval, mode, source_mode, alpha",
    [
        ("photo.jpg", 3, np.uint8, 255.0, "RGB", "RGB", False),
        ("coffee.png", 3, np.uint8, 255.0, "RGB", "RGB", False),
        ("gray.png", 1, np.uint8, 255.0, "L", "L", False),
        ("logo_rgba.png", 4, np.uint8, 255.0, "RGBA", "RGBA", True),
        ("gray16.png", 1, np.uint16, 65535.0, "I;16", "I;16", False),
        ("rgb16.png", 3, np.uint16, 65535.0, "RGB;16", "RGB;16", False),
        ("palette.png", 3, np.uint8, 255.0, "RGB", "P", False),
        ("palette_transparent.png", 4, np.uint8, 255.0, "RGBA", "P", True),
        ("odd.png", 3, np.uint8, 255.0, "RGB", "RGB", False),
    ],
)
def test_samples_load_with_their_modes(name, channels, dtype, maxval, mode, source_mode, alpha):
    image = load_image(SAMPLES / name)
    assert image.array.ndim == 4 and image.array.shape[:2] == (1, channels)
    assert image.array.dtype == dtype
    with Image.open(SAMPLES / name) as reference:  # the decoded buffer itself, not a copy of it
        if reference.mode in ("RGB", "L", "RGBA") and dtype == np.uint8:
            np.testing.assert_array_equal(np.moveaxis(image.array[0], 0, -1).squeeze(-1) if channels == 1
                                          else np.moveaxis(image.array[0], 0, -1), np.asarray(reference))
    assert (image.maxval, image.mode, image.source_mode, image.has_alpha) == (maxval, mode, source_mode, alpha)
    assert image.bit_depth == (16 if dtype == np.uint16 else 8)
    assert not image.is_array and image.frames == 1 and image.source == str(SAMPLES / name)
    header = read_header(SAMPLES / name)
    assert header.shape == image.array.shape
    assert (header.mode, header.source_mode, header.bit_depth) == (mode, source_mode, image.bit_depth)


def test_samples_are_small_and_truly_what_they_claim():
    files = [p for p in SAMPLES.iterdir() if p.is_file()]
    assert sum(p.stat().st_size for p in files) < 1_500_000
    assert (SAMPLES / "LICENSES.md").exists()
    gray16 = load_image(SAMPLES / "gray16.png").array
    rgb16 = load_image(SAMPLES / "rgb16.png").array
    assert (gray16 % 257 != 0).mean() > 0.5 and (rgb16 % 257 != 0).mean() > 0.5
    alpha = load_image(SAMPLES / "logo_rgba.png").array[0, 3]
    assert (alpha == 0).any() and (alpha == 255).any() and ((alpha > 0) & (alpha < 255)).any()
    assert load_image(SAMPLES / "odd.png").array.shape == (1, 3, 47, 33)


def test_eight_bit_samples_match_pillow():
    for name in ("photo.jpg", "gray.png", "logo_rgba.png", "coffee.png"):
        with Image.open(SAMPLES / name) as img:
            np.testing.assert_array_equal(load_image(SAMPLES / name).array, pillow_nchw(img))


def test_sixteen_bit_rgb_keeps_its_low_bits():
    _, _, rows, _ = png.Reader(filename=str(SAMPLES / "rgb16.png")).asDirect()
    expected = np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(128, 192, 3).transpose(2, 0, 1)[None]
    np.testing.assert_array_equal(load_image(SAMPLES / "rgb16.png").array, expected)


def test_palette_transparency_becomes_alpha():
    image = load_image(SAMPLES / "palette_transparent.png")
    with Image.open(SAMPLES / "palette_transparent.png") as img:
        index = np.asarray(img)
        transparent = img.info["transparency"]
    np.testing.assert_array_equal(image.array[0, 3] == 0, index == transparent)
    np.testing.assert_array_equal(image.array[0, :3], load_image(SAMPLES / "palette.png").array[0])


def test_unit_is_array_over_maxval():
    image = load_image(SAMPLES / "gray16.png")
    unit = image.unit()
    assert unit.dtype == np.float32 and unit.min() >= 0 and unit.max() <= 1
    np.testing.assert_allclose(unit, image.array / 65535.0, rtol=1e-6)


# --------------------------------------------------------------------------- every Pillow mode


_MODE_IMAGES = {  # mode → a 5×7 image of it; TIFF keeps the modes PNG cannot hold
    "L": lambda: Image.fromarray(rng_pixels((5, 7))),
    "LA": lambda: Image.fromarray(rng_pixels((5, 7, 2))),
    "RGB": lambda: Image.fromarray(rng_pixels((5, 7, 3))),
    "RGBA": lambda: Image.fromarray(rng_pixels((5, 7, 4))),
    "P": lambda: Image.fromarray(rng_pixels((5, 7, 3))).quantize(8),
    "1": lambda: Image.fromarray(rng_pixels((5, 7)) > 127),
    "I;16": lambda: Image.fromarray(rng_pixels((5, 7), np.uint16, 65535)),
    "I": lambda: Image.fromarray(rng_pixels((5, 7), np.int32, 65535)),
    "F": lambda: Image.fromarray(np.linspace(-2, 3, 35, dtype=np.float32).reshape(5, 7)),
    "CMYK": lambda: Image.fromarray(rng_pixels((5, 7, 3))).convert("CMYK"),
    "YCbCr": lambda: Image.fromarray(rng_pixels((5, 7, 3))).convert("YCbCr"),
    "LAB": lambda: Image.fromarray(rng_pixels((5, 7, 3))).convert("LAB"),
}


@pytest.mark.parametrize(
    "mode, channels, dtype, maxval, mapped",
    [
        ("L", 1, np.uint8, 255.0, "L"),
        ("LA", 2, np.uint8, 255.0, "LA"),
        ("RGB", 3, np.uint8, 255.0, "RGB"),
        ("RGBA", 4, np.uint8, 255.0, "RGBA"),
        ("P", 3, np.uint8, 255.0, "RGB"),
        ("1", 1, np.uint8, 255.0, "L"),
        ("I;16", 1, np.uint16, 65535.0, "I;16"),
        ("I", 1, np.uint16, 65535.0, "I;16"),
        ("F", 1, np.float32, 1.0, "F"),
        ("CMYK", 3, np.uint8, 255.0, "RGB"),
        ("YCbCr", 3, np.uint8, 255.0, "RGB"),
        ("LAB", 3, np.uint8, 255.0, "RGB"),
    ],
)
def test_every_mode_maps_to_channels_and_dtype(tmp_path, mode, channels, dtype, maxval, mapped):
    path = tmp_path / ("image.png" if mode in ("L", "LA", "RGB", "RGBA", "P", "1", "I;16") else "image.tif")
    _MODE_IMAGES[mode]().save(path)
    image = load_image(path)
    assert image.array.shape == (1, channels, 5, 7)
    assert (image.array.dtype, image.maxval, image.mode) == (dtype, maxval, mapped)
    with Image.open(path) as reread:
        assert image.source_mode == reread.mode == mode
        expected = reread.convert(mapped) if mapped in ("L", "RGB") and reread.mode != mapped else reread
        np.testing.assert_array_equal(image.array, pillow_nchw(expected).astype(dtype))
    if mode == "1":
        assert set(np.unique(image.array)) <= {0, 255}


def test_big_endian_16_bit_tiff_is_native_uint16(tmp_path):
    values = rng_pixels((4, 6), np.uint16, 65535)
    path = tmp_path / "be.tif"
    Image.frombytes("I;16B", (6, 4), values.astype(">u2").tobytes()).save(path)
    image = load_image(path)
    assert image.array.dtype == np.uint16 and image.array.dtype.byteorder in "=<|"
    np.testing.assert_array_equal(image.array[0, 0], values)


def test_32_bit_integers_out_of_16_bit_range_stay_as_they_are(tmp_path):
    values = np.array([[-5, 0, 70000]], dtype=np.int32)
    Image.fromarray(values).save(tmp_path / "wide.tif")
    image = load_image(tmp_path / "wide.tif")
    assert (image.array.dtype, image.maxval, image.mode) == (np.float32, 1.0, "I")
    np.testing.assert_array_equal(image.array[0, 0], values.astype(np.float32))


def test_gray_and_rgb_with_a_transparent_colour_get_alpha(tmp_path):
    rgb = rng_pixels((4, 4, 3))
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / "key.png", transparency=(1, 2, 3))
    image = load_image(tmp_path / "key.png")
    assert image.mode == "RGBA" and image.array[0, 3, 0, 0] == 0 and read_header(tmp_path / "key.png").channels == 4


# ------------------------------------------------------------------------------ orientation


def test_exif_orientation_is_applied_and_recorded():
    path = SAMPLES / "exif_rotated.jpg"
    image = load_image(path)
    assert image.orientation_applied == 6 and image.array.shape == (1, 3, 213, 320)
    with Image.open(path) as img:
        np.testing.assert_array_equal(image.array, pillow_nchw(ImageOps.exif_transpose(img)))
        stored = pillow_nchw(img)
    kept = load_image(path, orient=False)
    assert kept.orientation_applied is None and kept.array.shape == (1, 3, 320, 213)
    np.testing.assert_array_equal(kept.array, stored)
    assert read_header(path).shape == (1, 3, 213, 320) and read_header(path).orientation == 6
    assert read_header(path, orient=False).shape == (1, 3, 320, 213)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_orientation_matches_pillow(tmp_path, orientation):
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = tmp_path / "o.png"
    Image.fromarray(rng_pixels((3, 5, 3))).save(path, exif=exif.tobytes())
    image = load_image(path)
    with Image.open(path) as img:
        np.testing.assert_array_equal(image.array, pillow_nchw(ImageOps.exif_transpose(img)))
    assert image.orientation_applied == (orientation if orientation > 1 else None)
    assert read_header(path).shape == image.array.shape


# ---------------------------------------------------------------------------------- frames


def _animated_gif(path: Path, transparent: bool = False) -> list[tuple[int, int, int]]:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255)]
    frames = [Image.new("RGB", (6, 4), colour) for colour in colours]
    extra = {"transparency": 0, "disposal": 2} if transparent else {}
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, **extra)
    return colours


def test_frames_first_and_all_on_an_animated_gif(tmp_path):
    path = tmp_path / "anim.gif"
    colours = _animated_gif(path)
    first = load_image(path)
    assert first.array.shape == (1, 3, 4, 6) and first.frames == 3
    every = load_image(path, frames="all")
    assert every.array.shape == (3, 3, 4, 6) and every.frames == 3 and every.mode == "RGB"
    np.testing.assert_array_equal(every.array[:, :, 0, 0], colours)
    assert read_header(path).frames == 3 and read_header(path).shape == (1, 3, 4, 6)


def test_gif_frames_with_transparency_share_one_rgba_mode(tmp_path):
    path = tmp_path / "clear.gif"
    _animated_gif(path, transparent=True)
    every = load_image(path, frames="all")
    assert every.array.shape[:2] == (3, 4) and every.mode == "RGBA" and every.has_alpha


@pytest.mark.parametrize("fmt", ["gif", "tiff", "png", "webp"])
def test_multi_frame_outputs(tmp_path, fmt):
    frames = np.stack([np.full((3, 4, 6), value, np.uint8) for value in (10, 120, 240)])
    save_image(frames, tmp_path / f"f.{fmt}")
    again = load_image(tmp_path / f"f.{fmt}", frames="all")
    assert again.array.shape == (3, 3, 4, 6)
    np.testing.assert_allclose(again.array[:, :, 0, 0].astype(int), frames[:, :, 0, 0], atol=3)


def test_frames_option_is_checked():
    with pytest.raises(UsageError):
        load_image(SAMPLES / "gray.png", frames="some")


# ---------------------------------------------------------------------------------- arrays


@pytest.mark.parametrize("shape, expected", [
    ((4, 5), (1, 1, 4, 5)), ((3, 4, 5), (1, 3, 4, 5)), ((2, 3, 4, 5), (2, 3, 4, 5)),
])
def test_npy_becomes_4d_float32_as_it_is(tmp_path, shape, expected):
    values = np.arange(np.prod(shape), dtype=np.float64).reshape(shape) - 7.5
    np.save(tmp_path / "a.npy", values)
    image = load_image(tmp_path / "a.npy")
    assert image.array.shape == expected and image.array.dtype == np.float32
    assert (image.is_array, image.maxval, image.mode, image.format) == (True, 1.0, "array", "NPY")
    assert not image.has_alpha and image.frames == expected[0]
    np.testing.assert_array_equal(image.array.reshape(shape), values.astype(np.float32))
    header = read_header(tmp_path / "a.npy")
    assert header.shape == expected and header.is_array and header.bit_depth == 32


def test_npy_ints_and_bools_keep_their_values(tmp_path):
    np.save(tmp_path / "i.npy", np.array([[-3, 1000]], dtype=np.int16))
    np.save(tmp_path / "b.npy", np.array([[True, False]]))
    np.testing.assert_array_equal(load_image(tmp_path / "i.npy").array[0, 0], [[-3, 1000]])
    np.testing.assert_array_equal(load_image(tmp_path / "b.npy").array[0, 0], [[1, 0]])


def test_npy_refusals(tmp_path):
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    for reader in (load_image, read_header):
        with pytest.raises(InputError, match=r"obj\.npy: refused: pickled \.npy"):
            reader(tmp_path / "obj.npy")
    np.save(tmp_path / "five.npy", np.zeros((1, 1, 1, 2, 2)))
    with pytest.raises(InputError, match="5-D"):
        load_image(tmp_path / "five.npy")
    np.save(tmp_path / "text.npy", np.array(["a", "b"]))
    with pytest.raises(InputError, match=r"text\.npy"):
        load_image(tmp_path / "text.npy")
    np.save(tmp_path / "four.npy", np.zeros((1, 1, 4, 4)))
    data = (tmp_path / "four.npy").read_bytes()
    (tmp_path / "cut.npy").write_bytes(data[: len(data) - 8])
    with pytest.raises(InputError, match=r"cut\.npy: truncated"):
        load_image(tmp_path / "cut.npy")


def test_arrays_save_the_exact_float32_tensor(tmp_path):
    values = np.arange(6, dtype=np.float64).reshape(2, 3) / 7
    np.save(tmp_path / "in.npy", values)
    save_image(load_image(tmp_path / "in.npy").array, tmp_path / "out.npy")  # 2-D in → 4-D out
    saved = np.load(tmp_path / "out.npy")
    assert saved.shape == (1, 1, 2, 3) and saved.dtype == np.float32
    np.testing.assert_array_equal(saved[0, 0], values.astype(np.float32))
    save_image(np.ones((1, 10)), tmp_path / "logits.npy")  # a linear stage's (N, F) stays as torch has it
    assert np.load(tmp_path / "logits.npy").shape == (1, 10)


def test_pt_round_trip_and_refusals(tmp_path):
    torch = pytest.importorskip("torch")
    values = np.random.default_rng(1).normal(size=(2, 3, 4, 5)).astype(np.float32)
    save_image(values, tmp_path / "t.pt")
    assert isinstance(torch.load(tmp_path / "t.pt", weights_only=True), torch.Tensor)
    image = load_image(tmp_path / "t.pt")
    assert image.format == "PT" and image.is_array
    np.testing.assert_array_equal(image.array, values)
    assert read_header(tmp_path / "t.pt").shape == (2, 3, 4, 5)
    torch.save(torch.arange(6, dtype=torch.int64).reshape(2, 3), tmp_path / "ints.pt")
    np.testing.assert_array_equal(load_image(tmp_path / "ints.pt").array, np.arange(6).reshape(1, 1, 2, 3))
    torch.save({"w": torch.zeros(2)}, tmp_path / "dict.pt")
    with pytest.raises(InputError, match="not a tensor"):
        load_image(tmp_path / "dict.pt")
    torch.save({"w": Fraction(1, 2)}, tmp_path / "code.pt")
    with pytest.raises(InputError, match=r"code\.pt: refused"):
        load_image(tmp_path / "code.pt")
    (tmp_path / "junk.pt").write_bytes(b"PK\x03\x04" + b"x" * 40)
    with pytest.raises(InputError, match=r"junk\.pt: not a tensor file"):
        load_image(tmp_path / "junk.pt")


def test_csv_in_and_out(tmp_path):
    values = np.array([[0, 1.5, -2], [3, 4, 1e-7]], dtype=np.float32)
    save_image(values[None, None], tmp_path / "m.csv")
    assert (tmp_path / "m.csv").read_text().splitlines()[0] == "0,1.5,-2"
    image = load_image(tmp_path / "m.csv")
    assert image.array.shape == (1, 1, 2, 3) and image.format == "CSV"
    np.testing.assert_array_equal(image.array[0, 0], values)
    (tmp_path / "m.txt").write_text("# a comment\n0 1 2\n3 4 5\n")
    np.testing.assert_array_equal(load_image(tmp_path / "m.txt").array[0, 0], [[0, 1, 2], [3, 4, 5]])
    assert read_header(tmp_path / "m.txt").shape == (1, 1, 2, 3)
    with pytest.raises(UsageError, match="csv holds one 2-D matrix"):
        save_image(np.zeros((1, 3, 2, 2)), tmp_path / "rgb.csv")
    (tmp_path / "ragged.csv").write_text("1,2\n3\n")
    with pytest.raises(InputError, match=r"ragged\.csv: not a numeric matrix"):
        load_image(tmp_path / "ragged.csv")


# ----------------------------------------------------------------------------- load_matrix


@pytest.mark.parametrize("text, expected", [
    ("0 1 2; 3 4 5; 6 7 8", [[0, 1, 2], [3, 4, 5], [6, 7, 8]]),
    ("[[0,1],[2,3]]", [[0, 1], [2, 3]]),
    ("0,1;2,3", [[0, 1], [2, 3]]),
    ("  0, 1 ; 2,  3 ;", [[0, 1], [2, 3]]),
    ("[0 1; 2 3]", [[0, 1], [2, 3]]),
    ("[(1, -2.5), (3e2, 4)]", [[1, -2.5], [300, 4]]),
    ("1 -1", [[1, -1]]),
    ("[1, -1]", [[1, -1]]),
    ("0 1\n2 3", [[0, 1], [2, 3]]),
])
def test_load_matrix(text, expected):
    matrix = load_matrix(text)
    assert matrix.dtype == np.float32 and matrix.ndim == 2
    np.testing.assert_array_equal(matrix, expected)


@pytest.mark.parametrize("text, message", [
    ("0 1; 2", "row 2 has 1 values, row 1 has 2"),
    ("[[0, 1], [2]]", "row 2 has 1 values"),
    ("0 x; 1 2", "'x' is not a number"),
    ("", "empty"),
    ("0 1;; 2 3", "row 2 is empty"),
    ("[[1, [2]]]", "not a list of rows"),
    ("[[True, 1]]", "not a list of rows"),
    ("__import__('os').system('false')", "is not a number"),
    ("[__import__('os')]", "is not a number"),
    ("[[__import__('os')]]", "not a nested list"),
    ("[[1, 2]", "not a nested list"),
])
def test_load_matrix_errors(text, message):
    with pytest.raises(UsageError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_matrix(text)


# ----------------------------------------------------------------------- stdin and bytes


def test_stdin_and_bytes_sniff_their_format(tmp_path):
    data = (SAMPLES / "coffee.png").read_bytes()
    from_stdin = load_image("-", stdin=io.BytesIO(data))
    assert from_stdin.source == "-" and from_stdin.format == "PNG"
    np.testing.assert_array_equal(from_stdin.array, load_image(SAMPLES / "coffee.png").array)
    assert load_image(data, name="cup.png").source == "cup.png"
    buffer = io.BytesIO()
    np.save(buffer, np.eye(3))
    assert load_image("-", stdin=io.BytesIO(buffer.getvalue())).array.shape == (1, 1, 3, 3)
    assert read_header("-", stdin=io.BytesIO(data)).shape == (1, 3, 240, 360)
    with pytest.raises(InputError, match="-: empty input"):
        load_image("-", stdin=io.BytesIO(b""))


def test_stdin_pt_is_sniffed_from_zip_magic():
    pytest.importorskip("torch")
    buffer = io.BytesIO()
    save_image(np.ones((1, 2, 3, 4), np.float32), buffer, format="pt")
    assert load_image("-", stdin=io.BytesIO(buffer.getvalue())).array.shape == (1, 2, 3, 4)


# ---------------------------------------------------------------------- refusals and bad files


def _bomb_png(path: Path, width: int = 40_000, height: int = 40_000) -> None:
    """A PNG whose valid IHDR claims a huge image; its IDAT is a few bytes, so decoding would fail."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 16)
    path.write_bytes(PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


def test_decompression_bomb_refused_from_the_header(tmp_path):
    path = tmp_path / "bomb.png"
    _bomb_png(path)
    start = time.perf_counter()
    with pytest.raises(InputError) as caught:
        load_image(path)
    assert time.perf_counter() - start < 1.0
    assert str(path) in caught.value.what and "40000×40000 = 1,600,000,000 pixels" in caught.value.what
    assert f"--max-pixels {DEFAULT_MAX_PIXELS:,}" in caught.value.what and "raise --max-pixels" in caught.value.hint
    header = read_header(path)  # the header alone is fine: nothing is decoded
    assert header.shape == (1, 3, 40_000, 40_000)


def test_max_pixels_is_ours_to_set(tmp_path, monkeypatch):
    with pytest.raises(InputError, match="over --max-pixels 1,000"):
        load_image(SAMPLES / "odd.png", max_pixels=1000)
    assert load_image(SAMPLES / "odd.png", max_pixels=33 * 47).array.shape == (1, 3, 47, 33)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # Pillow's own bomb check must not fire first
    assert load_image(SAMPLES / "odd.png", max_pixels=None).array.shape == (1, 3, 47, 33)
    _bomb_png(tmp_path / "bomb.png")
    with pytest.raises(InputError, match="truncated or corrupt"):  # 0: no limit, so decoding is tried
        load_image(tmp_path / "bomb.png", max_pixels=0)


@pytest.mark.parametrize("reader", [load_image, read_header])
def test_bad_files_name_the_file(tmp_path, reader):
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "notes.png").write_text("this is not a picture\n")
    (tmp_path / "folder.png").mkdir()
    cases = {
        "missing.png": "No such file",
        "empty.png": "empty file",
        "notes.png": "not an image Pillow or poolcli can read",
        "folder.png": "is a folder",
    }
    for name, message in cases.items():
        path = tmp_path / name
        with pytest.raises(InputError) as caught:
            reader(str(path))
        assert caught.value.what.startswith(str(path)) and message in caught.value.what


@pytest.mark.parametrize("sample, keep", [
    ("photo.jpg", 0.5), ("coffee.png", 0.5), ("gray16.png", 0.5), ("rgb16.png", 0.5), ("palette.png", 0.6),
])
def test_truncated_files_are_input_errors(tmp_path, sample, keep, recwarn):
    data = (SAMPLES / sample).read_bytes()
    path = tmp_path / f"cut_{sample}"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(InputError) as caught:
        load_image(path)
    assert caught.value.what.startswith(f"{path}: truncated or corrupt")
    assert not [w for w in recwarn if "PIL" in str(w.filename)]


def test_a_damaged_header_is_corrupt_not_foreign(tmp_path):
    (tmp_path / "head.png").write_bytes((SAMPLES / "coffee.png").read_bytes()[:40])
    for reader in (load_image, read_header):
        with pytest.raises(InputError, match=r"head\.png: truncated or corrupt PNG file \(Pillow cannot open it"):
            reader(tmp_path / "head.png")


def test_corrupt_png_chunk_is_an_input_error(tmp_path):
    data = bytearray((SAMPLES / "gray.png").read_bytes())
    data[200:260] = bytes(60)
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"bad\.png: truncated or corrupt"):
        load_image(tmp_path / "bad.png")


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root reads every file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.png"
    path.write_bytes((SAMPLES / "odd.png").read_bytes())
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        load_image(path)


def test_eps_is_refused_before_ghostscript_could_run(tmp_path, monkeypatch):
    Image.new("L", (4, 4)).save(tmp_path / "a.eps")
    monkeypatch.delenv("POOLCLI_ALLOW_GHOSTSCRIPT", raising=False)
    with pytest.raises(InputError, match="refused: decoding EPS runs Ghostscript") as caught:
        load_image(tmp_path / "a.eps")
    assert "POOLCLI_ALLOW_GHOSTSCRIPT=1" in caught.value.hint
    assert read_header(tmp_path / "a.eps").shape == (1, 1, 4, 4)  # the header alone runs nothing


@pytest.mark.skipif(shutil.which("gs") is None, reason="Ghostscript is not installed")
def test_eps_loads_when_the_user_allows_ghostscript(tmp_path, monkeypatch):
    Image.new("L", (4, 4), 200).save(tmp_path / "a.eps")
    monkeypatch.setenv("POOLCLI_ALLOW_GHOSTSCRIPT", "1")
    assert load_image(tmp_path / "a.eps").array.shape[1:] == (1, 4, 4)
