"""What a batch run is asked to do besides the pipeline: one typed object, built once by the CLI
(or by a program calling ``poolcli.batch``) and read by every step of every input."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..io.reading import DEFAULT_MAX_PIXELS


@dataclass(frozen=True)
class ProcessOptions:
    """Everything the processing of one input needs besides the pipeline."""

    output: str | None = None  # -o: a file, a folder, or "-"
    format: str | None = None  # --format, already one of io.formats.NAMES
    suffix: str = "_out"  # the output name beside the input: photo_pooled.jpg
    device: str = "auto"
    raw_scale: bool = False
    normalize: str = "auto"
    alpha: str = "premultiply"
    orient: bool = True
    frames: str = "first"
    max_pixels: int | None = None  # None: Pillow's default limit; 0: none
    quality: int | None = None
    compress_level: int | None = None
    seed: int = 0
    save_stages: str | None = None
    montage: str | None = None
    skip_existing: bool = False
    fail_fast: bool = False
    recursive: bool = False
    engine: str = "auto"
    workers: int | None = None
    batch_size: int = 16
    executor: str = "local"  # --executor: local threads, or "ray" (batch.on_ray)
    ray_address: str | None = None  # --ray-address: "auto" or HOST:PORT; None starts a Ray for the run
    fsync: bool = False  # --fsync: each output flushed to the disk before the next (power-loss durability)
    memory: Any = None  # --memory: "2G", "512M" or bytes; None: half of the RAM available
    tile: tuple[int, int] | None = None  # force tiled runs at this output tile size (library, tests)

    @property
    def keep_stages(self) -> bool:
        """--save-stages and --montage need every stage's output."""
        return bool(self.save_stages or self.montage)

    @property
    def pixel_limit(self) -> int | None:
        """``--max-pixels``: Pillow's limit when not given, None (no limit) for 0."""
        return DEFAULT_MAX_PIXELS if self.max_pixels is None else (self.max_pixels or None)

    @property
    def threads(self) -> int:
        """``--workers``, by default the core count."""
        import os

        return max(1, self.workers or os.cpu_count() or 1)
