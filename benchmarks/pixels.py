"""Checks that the peers compute what poolcli computes, and that timed runs wrote their outputs.

The pixel check runs every peer once more with a PNG output and compares it with poolcli's PNG:
lossless on both sides, so any difference is the pooling itself (or the JPEG decoder: each tool
decodes the input with its own libjpeg build). Rounding is expected to differ by one level on
ties: poolcli rounds averages half to even as ``torch.round``; Pillow, libvips and ImageMagick
round half up. Verdicts: identical; ±1 level; close (mean |Δ| < 2 and max |Δ| ≤ 20, what two JPEG
decoders can explain); DIFFERENT. Timed outputs are JPEGs: for those only the count and the size
are checked.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

Image.MAX_IMAGE_PIXELS = None  # our own 100 MP input is no decompression bomb


@dataclass(frozen=True)
class Difference:
    """How a peer's output differs from poolcli's (levels of 255)."""

    max_abs: int
    mean_abs: float
    share_differing: float  # fraction of samples (pixel × channel) that differ at all

    def verdict(self) -> str:
        if self.max_abs == 0:
            return "identical"
        if self.max_abs == 1:
            return "±1 level"
        return "close" if self.mean_abs < 2 and self.max_abs <= 20 else "DIFFERENT"


def load(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.int16)


def compare(reference: Path, candidate: Path) -> Difference | str:
    """The difference between two images, or why they cannot be compared (sizes differ)."""
    a, b = load(reference), load(candidate)
    if a.shape != b.shape:
        return f"size {b.shape[1]}×{b.shape[0]}, poolcli {a.shape[1]}×{a.shape[0]}"
    diff = np.abs(a - b)
    return Difference(int(diff.max()), float(diff.mean()), float(np.count_nonzero(diff)) / diff.size)


def image_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as image:
        return image.size


def output_problem(dst: Path, expected: int, size: tuple[int, int]) -> str:
    """'' when ``dst`` (a file, or a folder of ``expected`` JPEGs or PNGs) holds outputs of ``size``, else
    what is wrong: a peer that silently skipped files must not look fast."""
    files = sorted(p for p in dst.iterdir() if p.suffix in (".jpg", ".png")) if dst.is_dir() else \
        [dst] if dst.exists() else []
    if len(files) != expected:
        return f"wrote {len(files)} of {expected} outputs"
    got = image_size(files[0])
    return "" if got == size else f"output {got[0]}×{got[1]}, expected {size[0]}×{size[1]}"
