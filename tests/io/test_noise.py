"""poolcli.io.noise and pillow: decoder noise captured, process settings restored, odd paths."""

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
    path.write_bytes(PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(b"IEND", b""))
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


def test_pillows_log_records_join_the_error_line(monkeypatch, capsys):
    """Pillow logs some refusals ("More samples per pixel than can be decoded") instead of
    warning: while a file decodes they go into its error line, and the PIL logger is left as found."""
    import logging

    import poolcli.io.pictures as pictures

    logger = logging.getLogger("PIL")
    handlers, propagate = list(logger.handlers), logger.propagate

    def logged(frame, name, share=False):
        logging.getLogger("PIL.TiffImagePlugin").error("More samples per pixel than can be decoded: %s", 65535)
        raise OSError("decoder error -2")

    monkeypatch.setattr(pictures, "_frame_pixels", logged)
    with pytest.raises(InputError) as caught:
        load_image(SAMPLES / "odd.png")
    assert "More samples per pixel than can be decoded: 65535" in caught.value.what
    assert capsys.readouterr().err == ""
    assert logger.handlers == handlers and logger.propagate == propagate
