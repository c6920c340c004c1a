"""Pictures made by hand for the io tests: PNG chunks, 16-bit PNGs with every row filter, and
what Pillow itself decodes, to compare against."""

from __future__ import annotations

import struct
import zlib

import numpy as np
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def pillow_nchw(img: Image.Image) -> np.ndarray:
    """What Pillow itself decodes, as (1, C, H, W), to compare against."""
    array = np.asarray(img)
    return (array[None, None] if array.ndim == 2 else array.transpose(2, 0, 1)[None]).copy()


def rng_pixels(shape, dtype=np.uint8, top=255, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, top + 1, size=shape).astype(dtype)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def filtered_png16(values: np.ndarray) -> bytes:
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
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")
