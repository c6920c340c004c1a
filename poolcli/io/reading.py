"""Reading inputs: the public ``read_header`` and ``load_image`` over every kind of source, and
``load_matrix`` for ``explain --matrix`` (the one matrix grammar of ``poolcli.core.values``).

    >>> load_matrix("0 1; 2 3").tolist()
    [[0.0, 1.0], [2.0, 3.0]]
"""

from __future__ import annotations

import os
from typing import BinaryIO

from ..core.values import MATRIX_HINT, MatrixError, parse_matrix
from ..errors import UsageError
from .arrays import array_data, array_header, check_npy_size, load_csv, load_npy, load_pt, nchw_shape, npy_header
from .pictures import load_picture, picture_header
from .pillow import NumpyOnFirstUse
from .records import ImageData, ImageHeader
from .sources import Source, kind_of, open_source

np = NumpyOnFirstUse(globals())

DEFAULT_MAX_PIXELS = 178_956_970  # Pillow's own Image.MAX_IMAGE_PIXELS default


def read_header(src: str | os.PathLike, *, orient: bool = True, stdin: BinaryIO | None = None) -> ImageHeader:
    """The shape, mode, bit depth and frames of an image or array file, decoding no pixels.

    Arrays need their values only for .pt (torch has no header-only reader) and .csv (small).
    ``-`` reads stdin (``stdin`` or ``sys.stdin.buffer``).
    """
    return header_of(open_source(src, None, stdin), orient=orient)


def header_of(source: Source, *, orient: bool = True) -> ImageHeader:
    """``read_header`` of a source already opened (a batch opens each input once)."""
    kind = kind_of(source)
    if kind == "image":
        return picture_header(source, orient)
    if kind == "npy":
        with source.open() as fp:
            shape, dtype = npy_header(fp, source.name)
            check_npy_size(fp, shape, dtype, source.name)
        return array_header(source.name, "NPY", nchw_shape(shape, source.name))
    array = load_pt(source) if kind == "pt" else load_csv(source)
    return array_header(source.name, kind.upper(), array.shape)


def load_image(
    src: str | os.PathLike | bytes,
    *,
    orient: bool = True,
    frames: str = "first",
    max_pixels: int | None = DEFAULT_MAX_PIXELS,
    name: str | None = None,
    stdin: BinaryIO | None = None,
) -> ImageData:
    """Decode an image or array file, stdin (``-``) or bytes into an (N, C, H, W) ImageData.

    ``frames="all"`` stacks every frame (one common mode, one size); arrays keep their own N.
    ``max_pixels`` (None or 0: no limit) is checked against the header's width × height before
    anything is decoded. ``name`` is what messages and ``source`` call the input. Any bad input
    raises InputError naming it; nothing else escapes for a bad file.
    """
    if frames not in ("first", "all"):
        raise UsageError(f"--frames {frames!r}", "use first or all")
    return load_source(open_source(src, name, stdin), orient=orient, frames=frames, max_pixels=max_pixels)


def load_source(source: Source, *, orient: bool = True, frames: str = "first",
                max_pixels: int | None = DEFAULT_MAX_PIXELS) -> ImageData:
    """``load_image`` of a source already opened."""
    kind = kind_of(source)
    if kind == "image":
        return load_picture(source, orient=orient, all_frames=frames == "all", max_pixels=max_pixels)
    loaders = {"npy": load_npy, "pt": load_pt, "csv": load_csv}
    return array_data(source.name, kind.upper(), loaders[kind](source))


def load_matrix(text: str) -> "np.ndarray":
    """A literal matrix (``--matrix``) as a float32 array: rows split by ``;`` or new lines, values
    by spaces or commas, or a nested list, parsed without eval (DESIGN.md §8). What is wrong
    with it is a UsageError naming the row or the token."""
    try:
        return np.array(parse_matrix(text), dtype=np.float32)
    except MatrixError as exc:
        raise UsageError(f"matrix {text!r}: {exc}", MATRIX_HINT) from None
