"""The compiled kernel (poolcli/kernels/native) against the numpy kernels, its oracle: byte for byte
over shapes, channel counts, memory layouts (transposed, flipped, strided, cropped, RGBX), ops,
divisors, both of its paths (SSSE3 shuffles and plain loops) and thread counts; its input checks;
an install without it; and the CLI's outputs with and without it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from poolcli.kernels import native
from poolcli.kernels.numpy import pools, windows

ROOT = Path(__file__).resolve().parents[2]
LONG = settings(max_examples=150, deadline=None)

pytestmark = pytest.mark.skipif(not native.available(), reason="the compiled kernel is not built here")


def numpy_answer(x: np.ndarray, op: str, kernel: tuple[int, int], divisor: int | None) -> np.ndarray:
    """The numpy kernel's result with the compiled kernel switched off: the oracle."""
    before, pools._NATIVE = pools._NATIVE, False
    try:
        zero, one = (0, 0), (1, 1)
        if op == "max":
            return pools.max_pool2d(x, kernel, kernel, zero, one, False)
        if op == "min":
            return pools.min_pool2d(x, kernel, kernel, zero, one, False)
        return pools.avg_pool2d_quantized(x, kernel, kernel, zero, False, True, divisor)
    finally:
        pools._NATIVE = before


LAYOUTS = ("nchw", "nhwc", "rgbx", "flip-rows", "flip-columns", "every-other-row", "cropped", "every-other-column")


def laid_out(pixels: np.ndarray, layout: str) -> np.ndarray:
    """An (N, H, W, C) uint8 array as the (N, C, H, W) view a caller may hand over."""
    nhwc = pixels.transpose(0, 3, 1, 2)
    if layout == "nchw":
        return np.ascontiguousarray(nhwc)
    if layout == "nhwc":
        return nhwc
    if layout == "rgbx":  # Pillow's RGB: three of every four bytes
        n, h, w, c = pixels.shape
        wide = np.full((n, h, w, c + 1), 77, np.uint8)
        wide[..., :c] = pixels
        return wide.transpose(0, 3, 1, 2)[:, :c]
    if layout == "flip-rows":
        return nhwc[:, :, ::-1]
    if layout == "flip-columns":
        return nhwc[:, :, :, ::-1]
    if layout == "every-other-row":
        return np.repeat(nhwc, 2, axis=2)[:, :, ::2]
    if layout == "every-other-column":
        return np.repeat(nhwc, 2, axis=3)[:, :, :, ::2]
    return np.pad(nhwc, ((0, 0), (0, 0), (1, 2), (3, 1)))[:, :, 1:-2, 3:-1]  # cropped


@st.composite
def cases(draw):
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 5))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    h, w = draw(st.integers(kh, 3 * kh + 20)), draw(st.integers(kw, 4 * kw + 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    top = draw(st.sampled_from([1, 3, 255]))  # few values: many ties and exact halves
    pixels = rng.integers(0, top, size=(n, h, w, c), endpoint=True).astype(np.uint8)
    layout = draw(st.sampled_from(LAYOUTS))
    if layout == "rgbx" and c == 5:
        layout = "nhwc"
    op = draw(st.sampled_from(["max", "min", "avg"]))
    divisor = draw(st.one_of(st.none(), st.integers(1, 40))) if op == "avg" else None
    return laid_out(pixels, layout), op, (kh, kw), divisor


@LONG
@given(cases(), st.booleans(), st.integers(1, 4))
def test_the_compiled_kernel_gives_the_numpy_kernels_bytes(case, simd, threads):
    x, op, kernel, divisor = case
    expected = numpy_answer(x, op, kernel, divisor)
    out = np.empty(expected.shape, np.uint8)
    native.pool(x, out, kernel, op, divisor or kernel[0] * kernel[1], threads, simd)
    np.testing.assert_array_equal(out, expected)


@LONG
@given(cases())
def test_the_numpy_kernels_hand_their_uint8_cases_to_it_unchanged(case):
    x, op, kernel, divisor = case
    zero, one = (0, 0), (1, 1)
    if op == "avg":
        got = pools.avg_pool2d_quantized(x, kernel, kernel, zero, False, True, divisor)
    else:
        got = (pools.max_pool2d if op == "max" else pools.min_pool2d)(x, kernel, kernel, zero, one, False)
    np.testing.assert_array_equal(got, numpy_answer(x, op, kernel, divisor))


def test_textbook_windows():
    """d2l's 2x2 max of [[0, 1, 2], [3, 4, 5], [6, 7, 8]] (floor mode: one window) is 4; 2x2
    averages round half to even: (1, 2, 2, 5) → 10/4 = 2.5 → 2, (1, 2, 3, 5) → 11/4 = 2.75 → 3,
    (1, 2, 3, 8) → 14/4 = 3.5 → 4."""
    grid = np.arange(9, dtype=np.uint8).reshape(1, 1, 3, 3)
    top = np.empty((1, 1, 1, 1), np.uint8)
    assert native.pool(grid, top, (2, 2), "max").item() == 4
    x = np.array([[1, 2, 1, 2, 1, 2], [2, 5, 3, 5, 3, 8]], np.uint8)[None, None]
    out = np.empty((1, 1, 1, 3), np.uint8)
    for simd in (True, False):
        assert native.pool(x, out, (2, 2), "avg", 4, simd=simd).ravel().tolist() == [2, 3, 4]


def test_a_divisor_below_the_window_clips_at_255():
    x = np.full((1, 1, 4, 4), 200, np.uint8)
    out = np.empty((1, 1, 2, 2), np.uint8)
    assert native.pool(x, out, (2, 2), "avg", 1).ravel().tolist() == [255] * 4  # 800 → 255


@pytest.mark.parametrize("threads", [1, 2, 3, 8, 64, 500])
def test_every_thread_count_gives_the_same_bytes(threads):
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, size=(1, 1080, 1920, 4), dtype=np.uint8).transpose(0, 3, 1, 2)
    expected = numpy_answer(x, "avg", (2, 2), None)
    out = np.empty(expected.shape, np.uint8)
    np.testing.assert_array_equal(native.pool(x, out, (2, 2), "avg", 4, threads), expected)


def test_it_runs_beside_python_threads_with_the_gil_released():
    """Two Python threads pooling at once finish with the right answers (each call releases the GIL)."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(6)
    images = [rng.integers(0, 256, size=(1, 3, 600, 800), dtype=np.uint8) for _ in range(4)]

    def pooled(x):
        out = np.empty((1, 3, 300, 400), np.uint8)
        return native.pool(x, out, (2, 2), "max")

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(pooled, images))
    for x, result in zip(images, results):
        np.testing.assert_array_equal(result, numpy_answer(x, "max", (2, 2), None))


def test_features_name_the_path_this_cpu_gets():
    assert native.features() in (("ssse3",), ("plain",))


@pytest.mark.parametrize("src, dst, match", [
    (np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 2, 2), np.uint8), "4-D uint8"),
    (np.zeros((1, 4, 4), np.uint8), np.zeros((1, 2, 2), np.uint8), "4-D uint8"),
    (np.zeros((1, 1, 4, 4), np.uint8), np.zeros((1, 1, 2, 3), np.uint8), r"\(1, 1, 2, 2\)"),
    (np.zeros((1, 1, 4, 4), np.uint8), np.zeros((1, 2, 2, 2), np.uint8), r"\(1, 1, 2, 2\)"),
])
def test_wrong_arrays_are_refused(src, dst, match):
    with pytest.raises(ValueError, match=match):
        native.pool(src, dst, (2, 2), "max")


def test_a_read_only_or_overlapping_output_is_refused():
    x = np.zeros((1, 1, 8, 8), np.uint8)
    frozen = np.zeros((1, 1, 4, 4), np.uint8)
    frozen.flags.writeable = False
    with pytest.raises((ValueError, BufferError)):
        native.pool(x, frozen, (2, 2), "max")
    with pytest.raises(ValueError, match="overlap"):
        native.pool(x, x[:, :, :4, :4], (2, 2), "max")


@pytest.mark.parametrize("kernel, op, divisor", [((0, 2), "max", 1), ((2, 2), "avg", 0), ((2, 2), "sum", 1),
                                                  ((2, 2), "avg", 1 << 31), ((5000, 5000), "avg", 1)])
def test_bad_parameters_are_refused(kernel, op, divisor):
    x, out = np.zeros((1, 1, 4, 4), np.uint8), np.zeros((1, 1, 2, 2), np.uint8)
    with pytest.raises(ValueError):
        native.pool(x, out, kernel, op, divisor)


# ------------------------------------------------------------------------------------ without it

HIDE_NATIVE = ("import sys; sys.modules['poolcli.kernels.native._pool'] = None; "
               "sys.argv = ['poolcli'] + sys.argv[1:]; from poolcli.cli import main; main()")


@pytest.mark.parametrize("mode, image", [("avg", "photo.jpg"), ("max", "photo.jpg"), ("avg", "logo_rgba.png"),
                                         ("min", "gray.png")])
def test_the_cli_writes_the_same_png_without_the_compiled_kernel(tmp_path, mode, image):
    source = str(ROOT / "sample_images" / image)
    outputs = {}
    for label, prefix in (("with", []), ("without", ["-c", HIDE_NATIVE])):
        out = tmp_path / f"{label}.png"
        argv = [sys.executable, *prefix] if prefix else [sys.executable, "-m", "poolcli"]
        done = subprocess.run([*argv, "pool", source, "-m", mode, "-k", "2", "-o", str(out), "-q"],
                              capture_output=True, text=True, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        outputs[label] = out.read_bytes()
    assert outputs["with"] == outputs["without"]


def test_hidden_it_reads_as_not_built():
    probe = ("import sys; sys.modules['poolcli.kernels.native._pool'] = None\n"
             "from poolcli.kernels import native\nfrom poolcli.kernels.numpy import pools\n"
             "print(native.available(), native.features(), pools._NATIVE)")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd="/")
    assert done.stdout.split() == ["False", "()", "False"], done.stderr


def test_an_install_without_a_compiler_still_succeeds(tmp_path):
    """setup.py marks the extension optional: a failing compiler is a warning, not an error."""
    env = {**os.environ, "CC": "/bin/false", "LDSHARED": "/bin/false"}
    done = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "lib"),
         "--build-temp", str(tmp_path / "temp")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert not list((tmp_path / "lib").rglob("*.so"))
    skipped = subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--build-lib", str(tmp_path / "skip"),
                              "--build-temp", str(tmp_path / "temp2")],
                             cwd=ROOT, env={**os.environ, "POOLCLI_NO_EXTENSION": "1"}, capture_output=True, text=True)
    assert skipped.returncode == 0, skipped.stderr
    assert not list((tmp_path / "skip").rglob("*.so"))


@pytest.mark.parametrize("shape, channels_last", [((1, 1, 64, 64), True), ((1, 1, 64, 64), False),
                                                  ((2, 3, 40, 60), True), ((2, 3, 40, 60), False)])
def test_the_numpy_kernels_route_every_row_layout_to_it(monkeypatch, shape, channels_last):
    """Grey (one channel), interleaved and planar inputs all reach the compiled kernel."""
    calls = []
    real = native.pool
    monkeypatch.setattr(native, "pool", lambda *a, **k: calls.append(a[0].shape) or real(*a, **k))
    n, c, h, w = shape
    x = np.arange(n * c * h * w, dtype=np.uint64).astype(np.uint8).reshape(n, h, w, c).transpose(0, 3, 1, 2)
    if not channels_last:
        x = np.ascontiguousarray(x)
    got = pools.avg_pool2d_quantized(x, (2, 2), (2, 2), (0, 0), False, True, None)
    np.testing.assert_array_equal(got, numpy_answer(x, "avg", (2, 2), None))
    assert calls if pools._NATIVE else not calls
