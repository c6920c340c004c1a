"""poolcli.io.writing: arrays → files, round trips through the readers, atomic writes (DESIGN.md §1, §5)."""

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


# ---------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("name, bit_depth", [
    ("gray.png", 8), ("coffee.png", 8), ("logo_rgba.png", 8), ("odd.png", 8),
    ("gray16.png", 16), ("rgb16.png", 16), ("palette.png", 8),
])
@pytest.mark.parametrize("as_unit", [False, True])
def test_round_trip_keeps_pixels_and_bit_depth(tmp_path, name, bit_depth, as_unit):
    image = load_image(SAMPLES / name)
    out = tmp_path / "out.png"
    save_image(image.unit() if as_unit else image.array, out, bit_depth=bit_depth)
    again = load_image(out)
    assert again.bit_depth == bit_depth
    np.testing.assert_array_equal(again.array, image.array)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_colour_png_written_with_pypng(tmp_path, channels):
    values = rng_pixels((1, channels, 9, 11), np.uint16, 65535)
    save_image(values, tmp_path / "c16.png", bit_depth=16, compress_level=9)
    image = load_image(tmp_path / "c16.png")
    assert image.mode == {2: "LA;16", 3: "RGB;16", 4: "RGBA;16"}[channels]
    np.testing.assert_array_equal(image.array, values)


@pytest.mark.parametrize("channels", [2, 3, 4])
def test_sixteen_bit_colour_png_with_every_filter(channels):
    values = rng_pixels((23, 17, channels), np.uint16, 65535, seed=channels)
    image = load_image(filtered_png16(values))
    assert image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array[0], values.transpose(2, 0, 1))


def test_sixteen_bit_interlaced_and_transparent_colour_pngs(tmp_path):
    values = rng_pixels((13, 9, 4), np.uint16, 65535, seed=5)
    buffer = io.BytesIO()
    png.Writer(9, 13, greyscale=False, alpha=True, bitdepth=16, interlace=True).write(buffer, values.reshape(13, -1))
    np.testing.assert_array_equal(load_image(buffer.getvalue()).array[0], values.transpose(2, 0, 1))
    rgb = values[..., :3].copy()
    rgb[2, 3] = (1000, 2000, 3000)
    buffer = io.BytesIO()
    png.Writer(9, 13, greyscale=False, bitdepth=16, transparent=(1000, 2000, 3000)).write(buffer, rgb.reshape(13, -1))
    image = load_image(buffer.getvalue())
    assert image.mode == "RGBA;16" and image.has_alpha
    assert read_header("-", stdin=io.BytesIO(buffer.getvalue())).mode == "RGBA;16"
    np.testing.assert_array_equal(image.array[0, 3] == 0, (rgb == (1000, 2000, 3000)).all(axis=-1))
    np.testing.assert_array_equal(image.array[0, :3], rgb.transpose(2, 0, 1))


@pytest.mark.parametrize("fmt", ["tiff", "png"])
def test_sixteen_bit_gray_round_trip(tmp_path, fmt):
    values = rng_pixels((1, 1, 6, 5), np.uint16, 65535)
    save_image(values, tmp_path / f"g.{fmt}", bit_depth=16)
    np.testing.assert_array_equal(load_image(tmp_path / f"g.{fmt}").array, values)


def test_formats_that_hold_8_bits_get_8_bits(tmp_path):
    values = np.array([[[[0, 257, 384, 65535]]]], dtype=np.uint16)
    save_image(values, tmp_path / "a.bmp", bit_depth=16)
    save_image(values, tmp_path / "b.png")  # bit_depth 8: round(x / 257)
    for name in ("a.bmp", "b.png"):
        np.testing.assert_array_equal(load_image(tmp_path / name).array[0, 0, 0], [0, 1, 1, 255])


@pytest.mark.parametrize("fmt", ["png", "tiff", "webp", "bmp", "gif", "jpeg"])
def test_every_image_format_writes_and_reads(tmp_path, fmt):
    image = load_image(SAMPLES / "odd.png")
    out = tmp_path / f"odd.{fmt}"
    save_image(image.array, out, quality=95 if fmt in ("jpeg", "webp") else None)
    again = load_image(out)
    assert again.format == fmt.upper() and again.array.shape == image.array.shape
    if fmt in ("png", "tiff", "bmp"):
        np.testing.assert_array_equal(again.array, image.array)
    else:
        assert np.abs(again.array.astype(int) - image.array).mean() < 12


def test_alpha_dropped_where_the_format_has_none(tmp_path):
    logo = load_image(SAMPLES / "logo_rgba.png")
    save_image(logo.array, tmp_path / "logo.bmp")
    np.testing.assert_array_equal(load_image(tmp_path / "logo.bmp").array, logo.array[:, :3])
    save_image(logo.array, tmp_path / "logo.jpg")
    assert load_image(tmp_path / "logo.jpg").array.shape[1] == 3
    save_image(logo.array, tmp_path / "opaque.png", has_alpha=False)
    np.testing.assert_array_equal(load_image(tmp_path / "opaque.png").array, logo.array[:, :3])


def test_float_unit_array_is_rounded_and_clipped():
    values = np.array([[[[-0.5, 0.0, 0.25, 0.5, 0.75, 1.0, 2.0, np.nan]]]], dtype=np.float32)
    buffer = io.BytesIO()
    save_image(values, buffer, format="png")
    decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
    # 63.75 → 64, 127.5 → 128 (half to even), 191.25 → 191; out of range clipped; NaN → 0
    np.testing.assert_array_equal(decoded[0], [0, 0, 64, 128, 191, 255, 255, 0])
    buffer = io.BytesIO()
    save_image(np.full((1, 1, 1, 1), 0.5, np.float32), buffer, format="png", bit_depth=16)
    assert np.asarray(Image.open(io.BytesIO(buffer.getvalue())))[0, 0] == 32768  # 32767.5 → even


def test_quality_and_compress_level_reach_the_encoder(tmp_path):
    photo = load_image(SAMPLES / "photo.jpg").array
    save_image(photo, tmp_path / "low.jpg", quality=10)
    save_image(photo, tmp_path / "high.jpg", quality=95)
    assert (tmp_path / "low.jpg").stat().st_size < (tmp_path / "high.jpg").stat().st_size
    save_image(photo, tmp_path / "fast.png", compress_level=0)
    save_image(photo, tmp_path / "small.png", compress_level=9)
    assert (tmp_path / "small.png").stat().st_size < (tmp_path / "fast.png").stat().st_size
    with pytest.raises(UsageError):
        save_image(photo, tmp_path / "bad.png", compress_level=12)


def test_images_that_cannot_be_written(tmp_path):
    with pytest.raises(UsageError, match="cannot write 5 channels"):
        save_image(np.zeros((1, 5, 2, 2), np.uint8), tmp_path / "x.png")
    with pytest.raises(UsageError, match="one frame"):
        save_image(np.zeros((2, 3, 2, 2), np.uint8), tmp_path / "x.jpg")
    with pytest.raises(UsageError, match="int64"):
        save_image(np.zeros((1, 1, 2, 2), np.int64), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_save_to_stdout_and_file_objects(capsysbinary):
    gray = load_image(SAMPLES / "gray.png").array
    save_image(gray, "-")
    assert capsysbinary.readouterr().out.startswith(b"\x89PNG")
    buffer = io.BytesIO()
    save_image(gray, buffer, format="tiff")
    np.testing.assert_array_equal(load_image(buffer.getvalue()).array, gray)


def test_output_format():
    assert output_format("a/b.JPG", None) == "jpeg"
    assert output_format("b.tif", None) == "tiff"
    assert output_format("b.npy", None) == "npy" and output_format("b.pt", None) == "pt"
    assert output_format("b.csv", None) == "csv" and output_format("b.txt", None) == "csv"
    assert output_format("b.png", "webp") == "webp" and output_format(None, "JPG") == "jpeg"
    assert output_format(None, None) == "png" and output_format("-", None) == "png"
    assert output_format("noextension", None) == "png"
    with pytest.raises(UsageError):
        output_format("b.xyz", None)
    with pytest.raises(UsageError):
        output_format("b.png", "heic")


# ----------------------------------------------------------------------------- atomic writes


def test_atomic_write_replaces_and_cleans_up(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")

    def fail(fp):
        fp.write(b"partial")
        raise RuntimeError("encoder broke")

    def interrupt(fp):
        fp.write(b"partial")
        raise KeyboardInterrupt

    with pytest.raises(RuntimeError):
        atomic_write(target, fail)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, interrupt)
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    atomic_write(target, lambda fp: fp.write(b"new"))
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_atomic_write_uses_a_hidden_temp_in_the_same_folder(tmp_path):
    seen = []
    atomic_write(tmp_path / "x.png", lambda fp: seen.extend(p.name for p in tmp_path.iterdir()))
    assert len(seen) == 1 and seen[0].startswith(".x.png.") and seen[0].endswith(".tmp")
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_unwritable_output_is_an_output_error(tmp_path):
    with pytest.raises(OutputError, match="missing"):
        save_image(np.zeros((1, 1, 2, 2), np.uint8), tmp_path / "missing" / "x.png")


def test_save_failure_leaves_no_partial_file(tmp_path, monkeypatch):
    import poolcli.io.writing as writing

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(writing, "_write_picture", broken)
    with pytest.raises(OutputError, match="No space left"):
        save_image(np.zeros((1, 1, 2, 2), np.uint8), tmp_path / "x.png")
    assert list(tmp_path.iterdir()) == []


def test_import_stays_light():
    code = "import sys, poolcli.io.reading; print(sorted(m for m in ('torch', 'png', 'rich') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_fsync_only_when_asked(tmp_path, monkeypatch):
    """The rename alone keeps outputs whole; ``fsync=True`` also flushes the file and its folder."""
    import poolcli.io.writing as writing

    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(writing.os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    save_image(np.zeros((1, 1, 2, 2), np.uint8), tmp_path / "plain.png")
    assert synced == []
    save_image(np.zeros((1, 1, 2, 2), np.uint8), tmp_path / "durable.png", fsync=True)
    assert len(synced) == 2  # the file's data, then the folder's entry
    assert sorted(p.name for p in tmp_path.iterdir()) == ["durable.png", "plain.png"]
