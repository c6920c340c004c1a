"""What every Python peer script shares: SRC DST arguments, the file pairs, saving, threads.

A peer script is what a user would write instead of poolcli, so each one stays a plain loop; this
module only keeps the argument handling identical across them.
"""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable

from PIL import Image


def arguments(description: str, modes: tuple[str, ...] = ()) -> argparse.Namespace:
    """SRC (a file or a folder of *.jpg) and DST (a file, or a folder for a folder), --quality,
    --threads, and --mode when the script offers several."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("src", type=Path)
    parser.add_argument("dst", type=Path)
    parser.add_argument("--quality", type=int, default=85, help="JPEG quality of the outputs")
    parser.add_argument("--threads", type=int, default=1, help="files processed at once")
    parser.add_argument("--ext", help="the outputs' extension for a folder (default: the input's)")
    if modes:
        parser.add_argument("--mode", choices=modes, default=modes[0])
    return parser.parse_args()


def pairs(src: Path, dst: Path, ext: str | None = None, make_outputs: bool = True) -> list[tuple[Path, Path]]:
    """(input, output) pairs: one file, or every *.jpg of a folder into the DST folder (with the
    extension ``ext`` when given)."""
    if not src.is_dir():
        return [(src, dst)]
    if make_outputs:
        dst.mkdir(parents=True, exist_ok=True)
    return [(path, dst / (path.with_suffix("." + ext).name if ext else path.name)) for path in sorted(src.glob("*.jpg"))]


def save(image: Image.Image, path: Path, quality: int) -> None:
    """JPEG at ``quality`` (Pillow's default 4:2:0 chroma), anything else by its extension."""
    if path.suffix.lower() in (".jpg", ".jpeg"):
        image.save(path, quality=quality)
    else:
        image.save(path)


def run(process: Callable[[Path, Path], None], args: argparse.Namespace, make_outputs: bool = True) -> None:
    """``process(src, dst)`` for every pair, on ``--threads`` threads (Pillow releases the GIL
    while decoding, resampling and encoding, so threads do run in parallel)."""
    todo = pairs(args.src, args.dst, args.ext, make_outputs)
    if args.threads <= 1:
        for src, dst in todo:
            process(src, dst)
        return
    with ThreadPoolExecutor(args.threads) as pool:
        for _ in pool.map(lambda pair: process(*pair), todo):
            pass
