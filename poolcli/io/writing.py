"""Writing outputs: images (quantized to their bit depth, 16 bits kept where the format can hold
them, every frame where it has frames) and arrays (the exact floats), replaced atomically.

A file is written under a temporary name in its own folder and renamed into place, so an
interrupted run leaves no truncated output.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from typing import BinaryIO, Callable

import numpy as np
from PIL import Image

from ..errors import OutputError, UsageError
from ..kernels.numpy.windows import with_pixel_padding
from ..kernels.quantize import image_integers
from .formats import FORMATS, output_format
from .noise import libtiff


def save_image(
    array: np.ndarray,
    dest: str | os.PathLike | BinaryIO,
    *,
    format: str | None = None,
    bit_depth: int = 8,
    quality: int | None = None,
    compress_level: int | None = None,
    has_alpha: bool | None = None,
    fsync: bool = False,
) -> None:
    """Write an array: (N, C, H, W) for images (2-D HW and 3-D CHW get N = C = 1 where missing).

    - .npy / .pt: the exact values as float32 in the array's own shape (every load is 4-D, so
      outputs are NCHW; flatten/linear outputs stay (N, F) as in torch).
    - .csv: one 2-D matrix (leading dimensions of 1 dropped), comma-separated, %.10g.
    - images: floats are unit-scaled and quantized as round(clip(x, 0, 1) · maxval) (half to even,
      as torch.round); uint8/uint16 are written as they are (uint16 at 8 bits: round(x / 257)).
      ``bit_depth=16`` keeps 16 bits in PNG (gray via Pillow, colour via pypng; APNG frames of
      colour are 8-bit) and gray TIFF (Pillow cannot write 16-bit colour TIFF); other formats get 8.
    - C = 1 → L, 2 → LA, 3 → RGB, 4 → RGBA. JPEG and BMP drop the alpha channel (not composited);
      ``has_alpha=False`` drops it for every format. GIF is quantized to 256 colours by Pillow.
    - N > 1 writes every frame for GIF, TIFF, WebP and PNG (APNG); other formats refuse.
    - ``quality`` goes to JPEG/WebP and ``compress_level`` (0-9) to PNG; when not given Pillow's
      defaults apply (JPEG quality 75, WebP 80, PNG level 6).

    ``dest`` is a path (written atomically; ``fsync`` also flushes it to the disk), ``-`` (stdout)
    or a binary file object. Every check runs before anything is written.
    """
    to_stream = not isinstance(dest, (str, os.PathLike)) or os.fspath(dest) == "-"
    fmt = output_format(None if to_stream else dest, format)
    if fmt == "tiff":
        libtiff.install()  # libtiff's messages while writing are dropped, as while reading they are logged
    encode = _encoder(np.asarray(array), fmt, bit_depth=bit_depth, quality=quality,
                      compress_level=compress_level, has_alpha=has_alpha)
    if not to_stream:
        atomic_write(dest, encode, fsync=fsync)  # type: ignore[arg-type]
        return
    buffer = io.BytesIO()  # TIFF and friends seek while writing; stdout cannot
    encode(buffer)
    stream = sys.stdout.buffer if isinstance(dest, (str, os.PathLike)) else dest
    stream.write(buffer.getvalue())


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None], *, fsync: bool = False) -> None:
    """Write through ``write(fp)`` to ``.NAME.RANDOM.tmp`` in the same folder and rename it into place.

    An interrupted or failed write (any exception, KeyboardInterrupt included) removes the temporary
    file and leaves ``path`` as it was; an OSError becomes an OutputError naming ``path``. The file
    is created with mode 0o666 less the umask, as open() would. The rename alone already means no
    reader ever sees a partial file; ``fsync`` adds durability across a power loss (the file's data
    and then its folder's entry reach the disk), at the cost of waiting for the disk on every file.
    """
    path = os.fspath(path)
    folder, base = os.path.split(path)
    temp = os.path.join(folder, f".{base}.{os.urandom(6).hex()}.tmp")
    try:
        descriptor = os.open(temp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666)
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    try:
        with os.fdopen(descriptor, "w+b") as fp:  # read too: multi-frame TIFF reads back
            write(fp)
            fp.flush()
            if fsync:
                os.fsync(fp.fileno())
        os.replace(temp, path)
        if fsync:
            _fsync_folder(folder or ".")
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(exc, OSError):
            raise _cannot_write(path, exc) from None
        raise


def _fsync_folder(folder: str) -> None:
    """The folder's entry for a renamed file, to the disk (where the system lets a folder be opened)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _cannot_write(path: str, exc: OSError) -> OutputError:
    return OutputError(f"{path}: cannot write: {exc.strerror or exc}",
                       "check that the folder exists, is writable and has space")


def _encoder(array: np.ndarray, fmt: str, *, bit_depth: int, quality: int | None, compress_level: int | None,
             has_alpha: bool | None) -> Callable[[BinaryIO], None]:
    """Validate and convert now; return the function that only encodes into a file object."""
    if bit_depth not in (8, 16):
        raise UsageError(f"bit depth {bit_depth}", "use 8 or 16")
    if quality is not None and not 0 <= quality <= 100:
        raise UsageError(f"--quality {quality}", "use 0 to 100")
    if compress_level is not None and not 0 <= compress_level <= 9:
        raise UsageError(f"--compress-level {compress_level}", "use 0 to 9")
    if fmt == "csv":
        matrix = _csv_matrix(array)
        return lambda fp: np.savetxt(fp, matrix, fmt="%.10g", delimiter=",")
    if FORMATS[fmt].exact:
        values = array.astype(np.float32)  # the exact tensor: loads are 4-D already; flatten/linear stay (N, F)
        if fmt == "npy":
            return lambda fp: np.save(fp, values, allow_pickle=False)
        return lambda fp: _save_pt(values, fp)
    frames = _picture_frames(array, fmt, bit_depth, has_alpha)
    return lambda fp: _write_picture(fp, frames, fmt, quality, compress_level)


def _nchw_for_saving(array: np.ndarray) -> np.ndarray:
    if not 1 <= array.ndim <= 4:
        raise UsageError(f"cannot write a {array.ndim}-D array", "give N×C×H×W, C×H×W or H×W")
    return array.reshape((1,) * (4 - array.ndim) + array.shape)


def _csv_matrix(array: np.ndarray) -> np.ndarray:
    data = _nchw_for_saving(array)
    if data.shape[0] * data.shape[1] != 1:
        shape = "×".join(map(str, data.shape))
        raise UsageError(f"csv holds one 2-D matrix, this array is {shape}", "write .npy or .pt")
    return data[0, 0]


def _save_pt(values: np.ndarray, fp: BinaryIO) -> None:
    import torch

    torch.save(torch.from_numpy(values), fp)


def _picture_frames(array: np.ndarray, fmt: str, bit_depth: int, has_alpha: bool | None) -> list[np.ndarray]:
    """(H, W, C) uint8/uint16 frames ready for the encoder, or a UsageError for what cannot be an image."""
    data = _nchw_for_saving(array)
    n, c = data.shape[:2]
    if not 1 <= c <= 4:
        raise UsageError(f"cannot write {c} channels as an image", "write .npy or .pt")
    if n > 1 and not FORMATS[fmt].frames:
        raise UsageError(f"{fmt} holds one frame, the output has {n}", "write .gif, .png, .tiff, .webp, .npy or .pt")
    if c in (2, 4) and (has_alpha is False or not FORMATS[fmt].alpha):
        data, c = data[:, :-1], c - 1
    sixteen = bit_depth == 16 and ((fmt == "png" and (c == 1 or n == 1)) or (fmt == "tiff" and c == 1))
    return list(_image_integers(data, 16 if sixteen else 8).transpose(0, 2, 3, 1))


def _image_integers(data: np.ndarray, depth: int) -> np.ndarray:
    try:
        return image_integers(data, depth)
    except ValueError as exc:
        raise UsageError(str(exc), "give uint8, uint16, or floats in [0, 1]") from None


def _write_picture(fp: BinaryIO, frames: list[np.ndarray], fmt: str, quality: int | None,
                   compress_level: int | None) -> None:
    first = frames[0]
    if fmt == "png" and first.dtype == np.uint16 and first.shape[-1] > 1:
        _write_png16(fp, first, compress_level)
        return
    images = [_picture(frame, fmt) for frame in frames]
    options: dict = {}
    if quality is not None and fmt in ("jpeg", "webp"):
        options["quality"] = quality
    if compress_level is not None and fmt == "png":
        options["compress_level"] = compress_level
    if len(images) > 1:
        options.update(save_all=True, append_images=images[1:])
    images[0].save(fp, format=FORMATS[fmt].pillow, **options)


def _picture(frame: np.ndarray, fmt: str) -> Image.Image:
    """One (H, W, C) frame as a Pillow image. Three channels of four-byte pixels (the RGBX buffers
    the kernels pool into) become an RGBX image on that memory, which the JPEG encoder takes as it
    is and other formats get as RGB from Pillow's own copy; ``fromarray`` would have numpy pack
    the strided pixels first, several times slower than Pillow's own copy (and JPEG needs none)."""
    if frame.shape[-1] == 3 and frame.dtype == np.uint8:
        height, width = frame.shape[:2]
        wide = with_pixel_padding(frame.transpose(2, 0, 1)[None])[0].transpose(1, 2, 0)
        if wide.shape[-1] == 4 and wide.flags.c_contiguous:
            rgbx = Image.frombuffer("RGBX", (width, height), wide, "raw", "RGBX", 0, 1)
            return rgbx if fmt == "jpeg" else rgbx.convert("RGB")
    return Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame)


def _write_png16(fp: BinaryIO, pixels: np.ndarray, compress_level: int | None) -> None:
    """A 16-bit LA/RGB/RGBA PNG with pypng (Pillow has no such modes); rows packed big-endian."""
    import png

    height, width, channels = pixels.shape
    writer = png.Writer(width, height, greyscale=channels <= 2, alpha=channels in (2, 4), bitdepth=16,
                        compression=compress_level)
    rows = pixels.astype(">u2").reshape(height, width * channels)
    writer.write_packed(fp, (row.tobytes() for row in rows))
