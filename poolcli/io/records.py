"""What reading gives: ``ImageData`` (pixels and what they mean) and ``ImageHeader`` (a file's
facts from its header alone, for ``shape`` and ``info`` and for planning before decoding)."""

from __future__ import annotations

from dataclasses import dataclass

from .pillow import NumpyOnFirstUse

np = NumpyOnFirstUse(globals())

MAXVALS = {"uint8": 255.0, "uint16": 65535.0}  # by dtype name; float pixels: 1.0


def bit_depth_of(dtype: "np.dtype") -> int:
    """8 or 16 for unsigned pixels, 32 for everything else (floats, arrays)."""
    return {1: 8, 2: 16}.get(dtype.itemsize, 32) if dtype.kind == "u" else 32


@dataclass
class ImageData:
    """Pixels as (N, C, H, W) and what they mean; ``array / maxval`` is the unit-scaled image."""

    array: np.ndarray  # uint8, uint16 or float32; for pictures an NCHW view of the decoder's NHWC buffer (maybe read-only)
    maxval: float  # 255.0, 65535.0, or 1.0 for float images and arrays
    mode: str  # after mapping: L, LA, RGB, RGBA, I;16, LA;16, RGB;16, RGBA;16, I, F or "array"
    source_mode: str  # the file's own mode (P, 1, CMYK, I;16B, ...) or "array"
    format: str  # PNG, JPEG, ..., NPY, PT, CSV
    source: str  # the path as given, or "-" for stdin
    is_array: bool  # values taken as they are: never scaled or premultiplied
    has_alpha: bool
    orientation_applied: int | None  # the EXIF orientation (2-8) that was applied
    frames: int  # frames in the file (N of the array with frames="all"); N for arrays

    @property
    def bit_depth(self) -> int:
        return bit_depth_of(self.array.dtype)

    def unit(self) -> np.ndarray:
        """The float32 values the pipeline reasons about: [0, 1] for images, as stored for arrays."""
        return self.array.astype(np.float32) / np.float32(self.maxval)


@dataclass
class ImageHeader:
    """What a file holds, from its header only (``poolcli shape IMAGE`` and ``poolcli info``)."""

    source: str
    format: str
    mode: str  # as load_image will map it ("I" until the values decide between I;16 and float)
    source_mode: str
    width: int  # as stored, before orientation
    height: int
    channels: int
    bit_depth: int
    frames: int
    orientation: int | None  # the EXIF orientation (2-8) load_image will apply; None with orient=False
    is_array: bool = False

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """(N, C, H, W) as load_image will return it (N is 1 for images: ``--frames first``)."""
        height, width = (self.width, self.height) if self.orientation in (5, 6, 7, 8) else (self.height, self.width)
        return (self.frames if self.is_array else 1, self.channels, height, width)
