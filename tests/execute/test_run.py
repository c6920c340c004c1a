"""engine.py: running a planned pipeline, and quantizing its output for an image file."""

from __future__ import annotations

import numpy as np
import pytest

from poolcli.execute.quantize import quantize
from poolcli.execute.run import run_pipeline
from poolcli.core.plan import Pipeline

SPECS = [
    "avgpool:2", "avgpool:3,s=2,p=1", "avgpool:3,s=2,p=1,count_include_pad=false,ceil=true",
    "avgpool:2,divisor_override=5", "avgpool:2,divisor_override=3", "maxpool:2",
]


def _picture(shape, seed=0) -> np.ndarray:
    """An N×C×H×W uint8 view of an NHWC buffer, as a decoded picture arrives."""
    n, c, h, w = shape
    return np.random.default_rng(seed).integers(0, 256, (n, h, w, c), dtype=np.uint8).transpose(0, 3, 1, 2)


@pytest.mark.parametrize("normalize", ["auto", "clip", "minmax", "abs"])
@pytest.mark.parametrize("shape", [(1, 3, 37, 41), (2, 1, 8, 9)])
@pytest.mark.parametrize("spec", SPECS)
def test_an_image_output_quantizes_as_the_float_path(spec, shape, normalize):
    """With the output's bit depth known, an 8-bit average may skip the float32 image: same integers,
    same normalize label (divisor_override=3 on 2×2 leaves [0, 255], so auto still stretches)."""
    pipeline, picture = Pipeline.from_specs([spec]), _picture(shape)
    direct = quantize(run_pipeline(pipeline, picture, maxval=255, bit_depth=8, normalize=normalize), 8, normalize)
    floats = quantize(run_pipeline(pipeline, picture, maxval=255), 8, normalize)
    np.testing.assert_array_equal(direct.array, floats.array)
    assert direct.normalize == floats.normalize


def test_arrays_and_alpha_keep_the_float_path():
    """A uint8 .npy is taken as it is (maxval 1: averages up to 255 are stretched), and premultiplied
    alpha needs its division: neither takes the integer shortcut."""
    pipeline, picture = Pipeline.from_specs(["avgpool:2"]), _picture((1, 4, 6, 6))
    assert run_pipeline(pipeline, picture, maxval=1.0, bit_depth=8).data is not None
    assert run_pipeline(pipeline, picture, maxval=255, bit_depth=8, premultiply=True).data is not None
    assert run_pipeline(pipeline, picture, maxval=255, bit_depth=8).data is None


def test_the_d2l_average_through_the_engine():
    """d2l's 2×2 average of 0..8: (0+1+3+4)/4 = 2, (1+2+4+5)/4 = 3, ..."""
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    result = run_pipeline(Pipeline.from_specs(["avgpool:2,s=1"]), x)
    np.testing.assert_array_equal(result.values()[0, 0], [[2, 3], [5, 6]])


def test_threads_change_the_time_not_the_numbers():
    rng = np.random.default_rng(3)
    x = rng.integers(0, 256, (1, 3, 700, 800), dtype=np.uint8)
    pipeline = Pipeline.from_specs(["avgpool:2"])
    one = run_pipeline(pipeline, x, maxval=255, engine="numpy", bit_depth=8)
    two = run_pipeline(pipeline, x, maxval=255, engine="numpy", bit_depth=8, threads=2)
    np.testing.assert_array_equal(quantize(two, 8).array, quantize(one, 8).array)
    floats = run_pipeline(Pipeline.from_specs(["maxpool:3,s=2", "relu"]), x, maxval=255, engine="numpy", threads=2)
    np.testing.assert_array_equal(floats.values(),
                                  run_pipeline(Pipeline.from_specs(["maxpool:3,s=2", "relu"]), x, maxval=255,
                                               engine="numpy").values())
