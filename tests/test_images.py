"""poolcli.images: files, stdin and arrays ⇄ NCHW arrays (DESIGN.md §1, §5, §8)."""

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

SAMPLES = Path(__file__).resolve().parent.parent / "sample_images"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pillow_nchw(img: Image.Image) -> np.ndarray:
    """What Pillow itself decodes, as (1, C, H, W), to compare against."""
    array = np.asarray(img)
    return (array[None, None] if array.ndim == 2 else array.transpose(2, 0, 1)[None]).copy()


def rng_pixels(shape, dtype=np.uint8, top=255, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, top + 1, size=shape).astype(dtype)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _filtered_png16(values: np.ndarray) -> bytes:
    """A 16-bit PNG of (H, W, C) values whose rows cycle through all five filters, as libpng's
    adaptive filtering produces (pypng writes filter 0 only)."""
    height, width, channels = values.shape
    bpp = 2 * channels
    raw = values.astype(">u2").view(np.uint8).reshape(height, width * bpp).astype(np.int32)
    left = np.pad(raw, ((0, 0), (bpp, 0)))[:, :-bpp]
    up = np.pad(raw, ((1, 0), (0, 0)))[:-1]
    corner = np.pad(raw, ((1, 0), (bpp, 0)))[:-1, :-bpp]
    guess = left + up - corner
    pa, pb, pc = abs(guess - left), abs(guess - up), abs(guess - corner)
    paeth = np.where((pa <= pb) & (pa <= pc), left, np.where(pb <= pc, up, corner))
    predictors = [0 * raw, left, up, (left + up) // 2, paeth]
    kinds = np.arange(height) % 5
    rows = [np.concatenate([[kind], (raw[y] - predictors[kind][y]) % 256]) for y, kind in enumerate(kinds)]
    colour_type = {2: 4, 3: 2, 4: 6}[channels]
    ihdr = struct.pack(">IIBBBBB", width, height, 16, colour_type, 0, 0, 0)
    data = zlib.compress(np.array(rows, np.uint8).tobytes())
    return _PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


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
    image = load_image(_filtered_png16(values))
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
    path.write_bytes(_PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", idat) + png_chunk(b"IEND", b""))


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



# ------------------------------------------------------------------ decoder noise and odd paths


def _corrupt_deflate_tiff() -> bytes:
    buffer = io.BytesIO()
    Image.open(SAMPLES / "coffee.png").convert("RGB").save(buffer, "TIFF", compression="tiff_adobe_deflate")
    data = bytearray(buffer.getvalue())
    rng = random.Random(1)  # the deflate stream breaks; the header and the IFD at the end survive
    for _ in range(20):
        data[rng.randrange(8, len(data) // 2)] ^= rng.randrange(1, 256)
    return bytes(data)


def test_libtiff_messages_reach_the_line_not_fd2(capfd):
    with pytest.raises(InputError) as caught:
        load_image(_corrupt_deflate_tiff(), name="broken.tif")
    assert caught.value.what.startswith("broken.tif: truncated or corrupt TIFF file (")
    assert any("libtiff" in line or "Decod" in line for line in caught.value.details), caught.value.details
    assert capfd.readouterr().err == ""


def test_libtiff_is_quiet_in_worker_threads_too(capfd):
    from concurrent.futures import ThreadPoolExecutor

    def decode(_):
        with pytest.raises(InputError) as caught:
            load_image(_corrupt_deflate_tiff(), name="broken.tif")
        return caught.value.what

    with ThreadPoolExecutor(4) as pool:
        messages = list(pool.map(decode, range(8)))
    assert all(m.startswith("broken.tif: truncated or corrupt TIFF") for m in messages)
    assert capfd.readouterr().err == ""


def test_fd2_noise_and_warnings_are_captured_into_the_error(monkeypatch, capfd):
    import warnings

    import poolcli.io.pictures as images

    def noisy(frame, name, share=False):
        os.write(2, b"libfoo: something broke at row 3\n")
        warnings.warn("Tag data larger than file", UserWarning)
        raise OSError("decoder error -2")

    monkeypatch.setattr(images, "_frame_pixels", noisy)
    filters_before = list(warnings.filters)
    with pytest.raises(InputError) as caught:
        load_image(SAMPLES / "odd.png")
    assert "OSError: decoder error -2; UserWarning: Tag data larger than file (+1 more)" in caught.value.what
    assert "libfoo: something broke at row 3" in caught.value.details
    assert capfd.readouterr().err == ""
    assert list(warnings.filters) == filters_before


def test_warning_capture_is_restored_after_threads(recwarn):
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    filters, show = list(warnings.filters), warnings.showwarning
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda name: load_image(SAMPLES / name), ["odd.png", "photo.jpg", "gray16.png", "palette.png"] * 8))
    assert list(warnings.filters) == filters and warnings.showwarning is show


@pytest.mark.parametrize("exc, message", [
    (MemoryError(), "not enough memory to decode it"),
    (Image.DecompressionBombError("too big"), "refused: a decompression bomb"),
    (zlib.error("Error -3 while decompressing data"), "truncated or corrupt PNG file (error: Error -3"),
    (RecursionError("maximum recursion depth exceeded"), "truncated or corrupt PNG file (RecursionError"),
    (TypeError("'NoneType' object is not subscriptable"), "truncated or corrupt PNG file (TypeError"),
    (struct.error("unpack requires a buffer of 4 bytes"), "truncated or corrupt PNG file (error: unpack"),
])
def test_every_decoder_exception_is_one_input_error(monkeypatch, exc, message):
    import poolcli.io.pictures as images

    def broken(frame, name, share=False):
        raise exc

    monkeypatch.setattr(images, "_frame_pixels", broken)
    with pytest.raises(InputError) as caught:
        load_image(SAMPLES / "odd.png")
    assert caught.value.what.startswith(f"{SAMPLES / 'odd.png'}: ") and message in caught.value.what


def test_zero_size_headers_are_corrupt(tmp_path):
    ihdr = struct.pack(">IIBBBBB", 0, 0, 8, 2, 0, 0, 0)
    path = tmp_path / "zero.png"
    path.write_bytes(_PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b""))
    for reader in (load_image, read_header):
        with pytest.raises(InputError, match=r"zero\.png: truncated or corrupt PNG file \("):
            reader(path)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_a_fifo_nobody_writes_to_does_not_hang(tmp_path):
    os.mkfifo(tmp_path / "pipe.png")
    start = time.perf_counter()
    with pytest.raises(InputError, match="pipe.png: empty file"):
        load_image(tmp_path / "pipe.png")
    assert time.perf_counter() - start < 5


def test_an_endless_stream_is_refused(tmp_path, monkeypatch):
    import poolcli.io.sources as sources

    monkeypatch.setattr(sources, "MAX_STREAM_BYTES", 1 << 20)
    os.symlink("/dev/zero", tmp_path / "zero.png")
    with pytest.raises(InputError, match=r"zero\.png: more than 1 MiB from a stream"):
        load_image(tmp_path / "zero.png")
    with pytest.raises(InputError, match="more than 1 MiB"):
        load_image("-", stdin=io.BytesIO(bytes((1 << 20) + 1)))


def test_links_that_go_nowhere_or_round(tmp_path):
    os.symlink("missing.png", tmp_path / "dangling.png")
    os.symlink("b.png", tmp_path / "a.png")
    os.symlink("a.png", tmp_path / "b.png")
    with pytest.raises(InputError, match="dangling.png: a broken symbolic link"):
        load_image(tmp_path / "dangling.png")
    with pytest.raises(InputError, match="a.png: cannot read: Too many levels of symbolic links"):
        load_image(tmp_path / "a.png")


def test_a_truncated_later_frame_fails_frames_all(tmp_path):
    frames = [Image.new("RGB", (32, 32), (i * 60, 0, 0)) for i in range(4)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    data = buffer.getvalue()
    cut = tmp_path / "cut.gif"
    cut.write_bytes(data[: len(data) - 12])
    assert load_image(cut).array.shape[0] == 1
    try:
        loaded = load_image(cut, frames="all")
    except InputError as exc:
        assert exc.what.startswith(f"{cut}: truncated or corrupt GIF file")
    else:  # Pillow counted only the frames it could read: then every one of them is there
        assert loaded.array.shape[0] == loaded.frames


def test_frames_all_counts_every_frame_against_max_pixels(tmp_path):
    frames = [Image.new("L", (10, 10), i) for i in range(5)]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])
    assert load_image(tmp_path / "anim.gif", frames="all", max_pixels=500).array.shape[0] == 5
    with pytest.raises(InputError, match=r"5 frames of 10×10 = 500 pixels is over --max-pixels 499"):
        load_image(tmp_path / "anim.gif", frames="all", max_pixels=499)


def test_truncated_npy_is_caught_from_the_header(tmp_path):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((64, 64)))
    (tmp_path / "cut.npy").write_bytes(buffer.getvalue()[:400])
    with pytest.raises(InputError, match=r"cut\.npy: truncated \.npy: its header promises 32,768 bytes"):
        read_header(tmp_path / "cut.npy")


def test_pt_refusals_tell_code_from_garbage(tmp_path):
    torch = pytest.importorskip("torch")
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, ("true",))

    torch.save(Evil(), tmp_path / "evil.pt")
    with pytest.raises(InputError, match=r"evil\.pt: refused: loading this \.pt would call posix\.system"):
        load_image(tmp_path / "evil.pt")
    (tmp_path / "noise.pt").write_bytes(pickle.dumps([1, 2]) [:3] + bytes(range(200)))
    with pytest.raises(InputError, match=r"noise\.pt: (refused: not a plain tensor file|not a tensor file)"):
        load_image(tmp_path / "noise.pt")


@pytest.mark.parametrize("name", ["photo.jpg", "gray.png", "logo_rgba.png"])
def test_decoded_pixels_are_pillows_own_buffer_not_a_copy(name):
    image = load_image(SAMPLES / name)
    with Image.open(SAMPLES / name) as reference:
        expected = np.asarray(reference)
    pixels = image.array[0].transpose(1, 2, 0)
    assert _pillow_buffer(pixels)  # Pillow's memory, through its Arrow export
    assert np.array_equal(pixels, expected.reshape(pixels.shape))


def _pillow_buffer(array: np.ndarray) -> bool:
    import ctypes

    while isinstance(array, np.ndarray) and array.base is not None:
        array = array.base
    return isinstance(array, ctypes.Array)


def test_images_over_two_gib_are_decoded_into_pillows_chunks(monkeypatch):
    import poolcli.io.pillow as pillow

    settings = []
    real = Image.core.set_use_block_allocator
    before = Image.core.get_use_block_allocator()
    monkeypatch.setattr(Image.core, "set_use_block_allocator", lambda on: (settings.append(on), real(on)))
    monkeypatch.setattr(pillow, "_BLOCK_LIMIT", 1000)  # photo.jpg's 400×266×4 bytes count as "over 2 GiB"
    image = load_image(SAMPLES / "photo.jpg")
    assert settings[settings.index(0) + 1] == 1  # chunks while this image is allocated, single blocks again after
    assert Image.core.get_use_block_allocator() == before  # and the process's own setting as it was
    assert not _pillow_buffer(image.array)  # chunked memory cannot be shared: a copy
    with Image.open(SAMPLES / "photo.jpg") as reference:
        assert np.array_equal(image.array[0].transpose(1, 2, 0), np.asarray(reference))


def test_every_frame_keeps_its_own_pixels(tmp_path):
    path = tmp_path / "two.gif"
    red, blue = Image.new("RGB", (4, 3), (255, 0, 0)), Image.new("RGB", (4, 3), (0, 0, 255))
    red.save(path, save_all=True, append_images=[blue], duration=10)
    frames = load_image(path, frames="all").array
    assert frames.shape == (2, 3, 3, 4)
    assert frames[0, :, 0, 0].tolist() == [255, 0, 0] and frames[1, :, 0, 0].tolist() == [0, 0, 255]


def test_numpy_is_imported_only_when_pixels_become_an_array():
    """A header (``poolcli shape``/``info``) needs no numpy; the first decoded pixels bring it in,
    after which the module's ``np`` is numpy itself."""
    code = (
        "import sys; from poolcli.io import pillow, reading\n"
        f"header = reading.read_header({str(SAMPLES / 'photo.jpg')!r})\n"
        "assert 'numpy' not in sys.modules, 'numpy imported by a header'\n"
        f"image = reading.load_image({str(SAMPLES / 'photo.jpg')!r})\n"
        "import numpy\n"
        "assert pillow.np is numpy and image.maxval == 255.0 and image.array.dtype == numpy.uint8\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_only_a_tiff_installs_the_libtiff_handlers(tmp_path):
    """Finding libtiff costs ctypes.util and a look through /proc/self/maps: a JPEG or PNG run skips it."""
    tiff = tmp_path / "scan.tif"
    Image.new("L", (8, 8), 7).save(tiff, compression="tiff_deflate")
    code = (
        "import sys; from poolcli.io import noise, reading\n"
        f"reading.load_image({str(SAMPLES / 'photo.jpg')!r}); reading.load_image({str(SAMPLES / 'coffee.png')!r})\n"
        "assert not noise.libtiff._tried and 'ctypes.util' not in sys.modules, 'libtiff looked up for a JPEG'\n"
        f"assert reading.load_image({str(tiff)!r}).array.max() == 7\n"
        "assert noise.libtiff._tried\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_a_thread_that_meets_the_libtiff_install_waits_for_it(monkeypatch):
    """Two batch workers reach their first TIFF together: neither may decode before the handlers are in."""
    import threading

    from poolcli.io import noise

    handlers = noise.LibtiffHandlers()
    done = threading.Event()
    entered = threading.Event()

    def slow_install():
        entered.set()
        time.sleep(0.2)
        done.set()

    monkeypatch.setattr(handlers, "_install", slow_install)
    first = threading.Thread(target=handlers.install)
    first.start()
    entered.wait(5)
    handlers.install()  # the second caller
    assert done.is_set()
    first.join(5)


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "bmp"])
def test_rgb_pooled_into_rgbx_memory_writes_what_a_packed_copy_writes(tmp_path, fmt):
    """The kernels pool RGB photos into RGBX buffers; the encoder takes those rows as they are
    (JPEG) or through Pillow's copy, never through numpy's strided packing, and writes the same file."""
    from poolcli.kernels.numpy import pools

    rgbx = np.random.default_rng(5).integers(0, 256, (1, 30, 44, 4), dtype=np.uint8)
    view = rgbx[..., :3].transpose(0, 3, 1, 2)
    pooled = pools.avg_pool2d_quantized(view, (2, 2), (2, 2), (0, 0), False, True, None)
    assert pooled.strides[3] == 4
    options = {"quality": 90} if fmt in ("jpeg", "webp") else {}
    save_image(pooled, tmp_path / f"rgbx.{fmt}", **options)
    save_image(np.ascontiguousarray(pooled), tmp_path / f"packed.{fmt}", **options)
    assert (tmp_path / f"rgbx.{fmt}").read_bytes() == (tmp_path / f"packed.{fmt}").read_bytes()
    with Image.open(tmp_path / f"rgbx.{fmt}") as written:
        assert written.mode == "RGB" and written.size == (22, 15)
