"""Benchmark inputs, generated deterministically from sample_images/photo.jpg into benchmarks/data/.

Why generated: the benchmark must run the same on every machine without shipping hundreds of
megabytes. Why upscaled *plus noise*: an upscaled photo is smooth and compresses (and decodes)
far faster than a real camera JPEG; seeded Gaussian noise brings the entropy back, so file sizes
and decode times look like a phone's photos.

Every file is written to a temporary name and renamed, and an existing file is kept, so an
interrupted run resumes where it stopped and a second run generates nothing.

    python benchmarks/make_inputs.py --count 200
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
from PIL import Image

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
SOURCE = HERE.parent / "sample_images" / "photo.jpg"

SEED = 20240607
NOISE_SIGMA = 4.0  # levels of 255: a phone sensor's noise, and a 12 MP file of about 3 MB
JPEG_QUALITY = 92  # a camera's "fine" setting

PHOTO_SIZE = (4000, 3000)  # 12 MP
BATCH_SIZE = (1920, 1080)  # 1080p
HUGE_SIZE = (11500, 8700)  # 100.05 MP; a JPEG, see huge_image()
STRIP_ROWS = 512  # the huge image gets its noise in strips, so generating it needs no 1.2 GB float


def _atomic_save(image: Image.Image, path: Path) -> None:
    """Save under a temporary name, then rename: a killed run never leaves a truncated input."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    image.save(partial, format="JPEG", quality=JPEG_QUALITY)
    os.replace(partial, path)


def _add_noise(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` (uint8) plus seeded Gaussian noise, rounded and clipped back to uint8."""
    noise = rng.standard_normal(pixels.shape, dtype=np.float32) * NOISE_SIGMA
    noise += pixels
    np.rint(noise, out=noise)
    return np.clip(noise, 0, 255).astype(np.uint8)


def _source() -> Image.Image:
    if not SOURCE.exists():
        raise SystemExit(f"benchmark inputs need {SOURCE} (sample_images/ is created by the project)")
    with Image.open(SOURCE) as image:
        return image.convert("RGB")


def photo_image(path: Path) -> None:
    """The 12 MP photo: the source upscaled to 4000×3000 with noise."""
    big = _source().resize(PHOTO_SIZE, Image.Resampling.BICUBIC)
    rng = np.random.default_rng(SEED)
    _atomic_save(Image.fromarray(_add_noise(np.asarray(big), rng)), path)


def batch_image(photo: Image.Image, index: int, path: Path) -> None:
    """1080p image ``index``: a seeded crop of the 12 MP photo (a different scene each), resized, noised."""
    rng = np.random.default_rng([SEED, index])
    scale = rng.uniform(0.5, 1.0)
    width, height = int(photo.width * scale), int(photo.width * scale * 9 / 16)
    left = int(rng.integers(0, photo.width - width + 1))
    top = int(rng.integers(0, photo.height - height + 1))
    crop = photo.resize(BATCH_SIZE, Image.Resampling.BILINEAR, box=(left, top, left + width, top + height))
    _atomic_save(Image.fromarray(_add_noise(np.asarray(crop), rng)), path)


def huge_image(path: Path) -> None:
    """~100 MP as a quality-92 JPEG: Pillow, libvips and ImageMagick all read it, and unlike a PNG
    (zlib-bound decode) or an uncompressed 300 MB TIFF (disk-bound) it is what people actually have
    at this size: panoramas, scans, drone mosaics. Noise is added in strips of rows.
    """
    big = np.asarray(_source().resize(HUGE_SIZE, Image.Resampling.BICUBIC)).copy()
    rng = np.random.default_rng([SEED, 100])
    for top in range(0, big.shape[0], STRIP_ROWS):
        big[top : top + STRIP_ROWS] = _add_noise(big[top : top + STRIP_ROWS], rng)
    _atomic_save(Image.fromarray(big), path)


def _relative(path: Path) -> Path:
    return path.relative_to(HERE.parent)


def ensure_photo(log=print) -> Path:
    """The 12 MP JPEG, generated when missing."""
    path = DATA / "photo-12mp.jpg"
    if not path.exists():
        log(f"generating {_relative(path)}")
        photo_image(path)
    return path


def ensure_batch(count: int, log=print) -> Path:
    """A folder of ``count`` 1080p JPEGs (``1080p-<count>``: the batch suite hands poolcli the whole
    folder, so each count gets its own); only the missing files are generated."""
    folder = DATA / f"1080p-{count}"
    missing = [i for i in range(count) if not (folder / f"img_{i:05d}.jpg").exists()]
    if missing:
        log(f"generating {len(missing)} 1080p images in {_relative(folder)}")
        with Image.open(ensure_photo(log)) as photo:
            photo = photo.convert("RGB")
            for index in missing:
                batch_image(photo, index, folder / f"img_{index:05d}.jpg")
    return folder


def ensure_huge(log=print) -> Path:
    """The ~100 MP JPEG, generated when missing (about a minute)."""
    path = DATA / "huge-100mp.jpg"
    if not path.exists():
        log(f"generating {_relative(path)} (about a minute)")
        huge_image(path)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200, help="how many 1080p images (issue 6 target: 2000)")
    ensure_batch(parser.parse_args().count)
    ensure_huge()


if __name__ == "__main__":
    main()
