"""Pictures through Pillow: the header, the pixels, and every way a file can be bad.

Loading maps every Pillow mode to L, LA, RGB or RGBA (8 or 16 bits) or float, applies the EXIF
orientation, refuses decompression bombs from the header before any pixel is decoded, and turns
whatever a decoder raises into one ``InputError`` that names the file and says what the decoder
saw. Pillow reads 16-bit colour PNGs as 8 bits; ``_read_png16`` recovers the low bytes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from PIL import Image, UnidentifiedImageError

from ..errors import InputError, PoolcliError
from .noise import DecodeLog, quiet, reason
from .pillow import NumpyOnFirstUse, allocator_for, decoding, shared_pixels
from .records import MAXVALS, ImageData, ImageHeader
from .sources import PNG_MAGIC, Source, signature_format

np = NumpyOnFirstUse(globals())

DECODE_CHUNK = 1 << 22  # bytes per decoder call (Pillow: 64 KiB); fewer calls, fewer waits for the GIL

# Pillow mode → the mode poolcli hands on. "I" is decided by its values (see _frame_pixels).
_MODE_MAP = {
    "1": "L", "L": "L", "LA": "LA", "La": "LA", "P": "RGB", "PA": "RGBA",
    "RGB": "RGB", "RGBA": "RGBA", "RGBa": "RGBA", "RGBX": "RGB",
    "CMYK": "RGB", "YCbCr": "RGB", "LAB": "RGB", "HSV": "RGB",
    "I;16": "I;16", "I;16L": "I;16", "I;16B": "I;16", "I;16N": "I;16", "I": "I", "F": "F",
}
_EIGHT_BIT_MODES = ("L", "LA", "RGB", "RGBA")
_CHANNELS = {"L": 1, "LA": 2, "RGB": 3, "RGBA": 4, "I;16": 1, "I": 1, "F": 1,
             "LA;16": 2, "RGB;16": 3, "RGBA;16": 4}
_PNG16_COLOUR_TYPES = {2: "RGB;16", 4: "LA;16", 6: "RGBA;16"}  # IHDR colour types Pillow reads as 8 bits
# Formats whose decoding runs an external program, refused unless the variable says otherwise.
_EXTERNAL_DECODERS = {"EPS": ("Ghostscript", "POOLCLI_ALLOW_GHOSTSCRIPT")}
_ORIENTATION_TAG = 0x0112
# What Pillow (and zlib, libtiff, libjpeg under it) raises for truncated, corrupt or hostile files:
# OSError, SyntaxError, ValueError, struct.error, EOFError, zlib.error, DecompressionBombError,
# MemoryError, IndexError, TypeError, KeyError, and on odd files RuntimeError, ZeroDivisionError,
# OverflowError, AttributeError... Decoders are third-party code fed hostile bytes, so every
# Exception from them is a bad file (bad_file classifies it); only poolcli's own errors pass.
BAD_FILE_ERRORS = (Exception,)


def bad_file(source: Source, exc: BaseException, log: DecodeLog | None = None) -> InputError:
    """The InputError for a decoder failure, whatever the decoder raised, with what it said.

    Pillow reports a damaged file it cannot even open as "cannot identify"; its signature tells
    a broken PNG from something that is no image at all. The decoder's own messages (libtiff's
    "Decoding error at scanline 0", a warning) follow the exception in the one line; all of
    them are in the error's details.
    """
    name, signature = source.name, signature_format(source.head)
    details = tuple(log.lines()) if log is not None else ()
    said = log.detail() if log is not None else ""
    if isinstance(exc, MemoryError):
        return InputError(f"{name}: not enough memory to decode it", "lower --max-pixels or use a smaller image",
                          details=details)
    if isinstance(exc, Image.DecompressionBombError):
        return InputError(f"{name}: refused: a decompression bomb ({reason(exc)})",
                          "raise --max-pixels if you trust this file", details=details)
    if isinstance(exc, UnidentifiedImageError) and signature is None:
        return InputError(
            f"{name}: not an image Pillow or poolcli can read",
            "give a PNG, JPEG, WebP, TIFF, BMP or GIF image, or an .npy, .pt or .csv array",
            details=details,
        )
    what = f"{signature} file" if signature else "file"
    why = reason(exc)
    if isinstance(exc, UnidentifiedImageError):
        why = _why_unopenable(source, signature) or "Pillow cannot open it"
    if said and said not in why:
        why += f"; {said}"
    return InputError(f"{name}: truncated or corrupt {what} ({why})",
                      "the file may be damaged or incompletely written", details=details)


_PILLOW_PLUGINS = {"WebP": "WEBP", "JPEG 2000": "JPEG2000"}


def _why_unopenable(source: Source, signature: str | None) -> str | None:
    """What the plugin for the file's signature says, from a fresh file object: Image.open tries
    every plugin and keeps none of their reasons ("bad header checksum in b'IHDR'")."""
    plugin = Image.OPEN.get(_PILLOW_PLUGINS.get(signature or "", signature or ""))
    if plugin is None:
        return None
    factory = plugin[0]
    try:
        with source.open() as fp, quiet(source.head) as log:
            try:
                factory(fp, source.name).close()
            except PoolcliError:
                return None
            except Exception as exc:  # the reason we are after
                if "not identified by this driver" in str(exc):
                    return None
                said = log.detail()
                return f"Pillow cannot open it: {reason(exc)}" + (f"; {said}" if said else "")
    except PoolcliError:
        return None
    return None


def picture_header(source: Source, orient: bool) -> ImageHeader:
    with decoding(), source.open() as fp, quiet(source.head) as log:
        try:
            with Image.open(fp) as img:
                png16 = _png16_mode(source.head)
                mode = _header_mode(img, png16, source.name)
                width, height = img.size
                _check_size(width, height, source)
                return ImageHeader(
                    source=source.name, format=img.format or "?", mode=mode, source_mode=png16 or img.mode,
                    width=width, height=height, channels=_CHANNELS[mode], bit_depth=_mode_bits(mode),
                    frames=getattr(img, "n_frames", 1), orientation=_orientation(img) if orient else None,
                )
        except PoolcliError:
            raise
        except BAD_FILE_ERRORS as exc:
            raise bad_file(source, exc, log) from None


def load_picture(source: Source, *, orient: bool, all_frames: bool, max_pixels: int | None) -> ImageData:
    """Decode in one go from a fresh file object: a failed decode ends here, so no image object is
    ever loaded twice (a second load() of a truncated palette PNG raises odd TypeErrors)."""
    with decoding(), source.open() as fp, quiet(source.head) as log:
        try:
            with Image.open(fp) as img:
                return _decode_picture(img, source, orient=orient, all_frames=all_frames, max_pixels=max_pixels)
        except PoolcliError:
            raise
        except BAD_FILE_ERRORS as exc:
            raise bad_file(source, exc, log) from None


def _check_size(width: int, height: int, source: Source) -> None:
    """A header that claims no pixels is a corrupt file, not a pipeline that reaches 0."""
    if width < 1 or height < 1:
        signature = signature_format(source.head)
        raise InputError(f"{source.name}: truncated or corrupt {signature + ' ' if signature else ''}file "
                         f"(its header claims {width}×{height} pixels)", "the file may be damaged or incompletely written")


def refuse_over_max_pixels(name: str, width: int, height: int, frames: int, max_pixels: int | None) -> None:
    """The decompression-bomb guard: width × height (× frames read) over ``--max-pixels`` is refused,
    from the header alone, before anything is decoded or a memory estimate is made.

    >>> refuse_over_max_pixels("scan.tif", 40000, 40000, 1, 178_956_970)
    Traceback (most recent call last):
    ...
    poolcli.errors.InputError: scan.tif: 40000×40000 = 1,600,000,000 pixels is over --max-pixels 178,956,970 — raise --max-pixels if you trust this file
    """
    if not max_pixels or width * height * frames <= max_pixels:
        return
    if frames == 1:
        raise InputError(
            f"{name}: {width}×{height} = {width * height:,} pixels is over --max-pixels {max_pixels:,}",
            "raise --max-pixels if you trust this file",
        )
    raise InputError(
        f"{name}: {frames} frames of {width}×{height} = {width * height * frames:,} pixels "
        f"is over --max-pixels {max_pixels:,}",
        "raise --max-pixels if you trust this file, or use --frames first",
    )


def _decode_picture(img: Image.Image, source: Source, *, orient: bool, all_frames: bool,
                    max_pixels: int | None) -> ImageData:
    name = source.name
    width, height = img.size
    _check_size(width, height, source)
    refuse_over_max_pixels(name, width, height, 1, max_pixels)
    _refuse_external_decoder(img, name)
    frame_count = getattr(img, "n_frames", 1)
    if all_frames:
        refuse_over_max_pixels(name, width, height, frame_count, max_pixels)
    orientation = _orientation(img) if orient else None
    png16 = _png16_mode(source.head)
    if png16 and all_frames and frame_count > 1:
        raise InputError(f"{name}: the frames of a 16-bit colour APNG cannot be read", "use --frames first")
    if png16:
        pixels, mode = _read_png16(source, png16, img.info.get("transparency"))
    else:
        pixels, mode = _pillow_frames(img, all_frames, name)
    return ImageData(
        array=_nchw_from_nhwc(_orient(pixels, orientation)),
        maxval=MAXVALS.get(pixels.dtype.name, 1.0),
        mode=mode,
        source_mode=png16 or img.mode,
        format=img.format or "?",
        source=name,
        is_array=False,
        has_alpha=mode.startswith(("LA", "RGBA")),
        orientation_applied=orientation,
        frames=frame_count,
    )


def _refuse_external_decoder(img: Image.Image, name: str) -> None:
    """EPS/PS decode by running Ghostscript on the file: refused unless the user says so, as
    ImageMagick's policy.xml does (a PostScript file is a program)."""
    if img.format not in _EXTERNAL_DECODERS:
        return
    program, variable = _EXTERNAL_DECODERS[img.format]
    if os.environ.get(variable, "") not in ("", "0"):
        return
    raise InputError(f"{name}: refused: decoding {img.format} runs {program}, an external program, on the file",
                     f"set {variable}=1 if you trust the file, or convert it to PNG first")


def _header_mode(img: Image.Image, png16: str | None, name: str) -> str:
    if png16 == "RGB;16" and "transparency" in img.info:
        return "RGBA;16"  # a tRNS colour key becomes alpha
    return png16 or _target_mode(img.mode, img.info, name)


def _target_mode(mode: str, info: dict, name: str) -> str:
    """The mode a Pillow mode becomes: P → RGB, or RGBA when it has transparency (so do 1, L, RGB)."""
    target = _MODE_MAP.get(mode)
    if target is None:
        raise InputError(f"{name}: unsupported image mode {mode}", "convert it to RGB or L first")
    if "transparency" in info and target in ("L", "RGB"):
        target += "A"
    return target


def _mode_bits(mode: str) -> int:
    if mode.endswith("16"):
        return 16
    return 32 if mode in ("I", "F") else 8


def _orientation(img: Image.Image) -> int | None:
    """The EXIF (or XMP) orientation to apply, 2-8; 1, absent or unreadable means as stored."""
    if img.format == "PNG" and "exif" not in img.info:
        return None  # PngImageFile.getexif() would decode every pixel to look after the image data
    try:
        value = img.getexif().get(_ORIENTATION_TAG)
    except BAD_FILE_ERRORS:
        return None  # broken EXIF must not make a readable image unreadable
    return value if value in (2, 3, 4, 5, 6, 7, 8) else None


def _orient(pixels: np.ndarray, orientation: int | None) -> np.ndarray:
    """PIL.ImageOps.exif_transpose on an (N, H, W, C) array of any dtype (16-bit colour too)."""
    if orientation in (5, 6, 7, 8):
        pixels = pixels.swapaxes(1, 2)
    flips = {2: (2,), 3: (1, 2), 4: (1,), 6: (2,), 7: (1, 2), 8: (1,)}.get(orientation or 1, ())
    return np.flip(pixels, flips) if flips else pixels


def _nchw_from_nhwc(pixels: np.ndarray) -> np.ndarray:
    """An NCHW view of the decoded NHWC buffer (read-only when it is Pillow's): no copy. The numpy
    kernels work on it as it is and give channels-last outputs, which the encoder takes without a
    transposing copy; TorchBackend.upload copies it for torch."""
    return pixels.transpose(0, 3, 1, 2)


def _pillow_frames(img: Image.Image, all_frames: bool, name: str) -> tuple[np.ndarray, str]:
    """(N, H, W, C) pixels of the first frame or of every frame, in one common mode."""
    decoded = [_frame_pixels(frame, name, share=not all_frames) for frame in (_every_frame(img) if all_frames else [img])]
    modes = {mode for _, mode in decoded}
    mode = decoded[0][1]
    if len(modes) > 1:
        if not modes <= set(_EIGHT_BIT_MODES):
            raise InputError(f"{name}: frames of different kinds ({', '.join(sorted(modes))})", "use --frames first")
        colour, alpha = any(m.startswith("RGB") for m in modes), any(m.endswith("A") for m in modes)
        mode = ("RGB" if colour else "L") + ("A" if alpha else "")
        decoded = [(_widen(pixels, frame_mode, mode), mode) for pixels, frame_mode in decoded]
    if len({pixels.shape[:2] for pixels, _ in decoded}) > 1:
        raise InputError(f"{name}: frames of different sizes", "use --frames first")
    if len(decoded) == 1:
        return decoded[0][0][None], mode  # a view: np.stack would copy the whole image
    return np.stack([pixels for pixels, _ in decoded]), mode


def _every_frame(img: Image.Image) -> Iterator[Image.Image]:
    """Each frame by seeking; unlike ImageSequence.Iterator a frame that fails to load is an error,
    not the quiet end of a shorter animation."""
    for index in range(getattr(img, "n_frames", 1)):
        img.seek(index)
        yield img


def _frame_pixels(frame: Image.Image, name: str, share: bool = False) -> tuple[np.ndarray, str]:
    """One decoded frame as (H, W, C) and its mode; 32-bit "I" is 16 bits when its values fit.
    ``share``: the frame is not decoded again (no later seek), so its buffer may be shared."""
    frame.decodermaxblock = max(frame.decodermaxblock, DECODE_CHUNK)
    with allocator_for(frame):
        frame.load()  # here, inside the caller's try: a truncated file fails now, not later
    target = _target_mode(frame.mode, frame.info, name)
    shared = shared_pixels(frame) if share and frame.mode == target else None
    if shared is not None:
        pixels = shared
    elif target in _EIGHT_BIT_MODES:
        pixels = np.asarray(frame if frame.mode == target else frame.convert(target))
    elif target == "I;16":
        pixels = np.asarray(frame).astype(np.uint16)  # I;16B arrives big-endian
    elif target == "I":
        pixels = np.asarray(frame)
        if pixels.size and pixels.min() >= 0 and pixels.max() <= 65535:
            pixels, target = pixels.astype(np.uint16), "I;16"
        else:
            pixels = pixels.astype(np.float32)
    else:
        pixels = np.asarray(frame, dtype=np.float32)
    return (pixels[..., None] if pixels.ndim == 2 else pixels), target


def _widen(pixels: np.ndarray, mode: str, target: str) -> np.ndarray:
    """8-bit L/LA/RGB pixels as ``target`` (RGB repeats gray as Pillow does; added alpha is opaque)."""
    colour = pixels[..., :-1] if mode.endswith("A") else pixels
    alpha = pixels[..., -1:] if mode.endswith("A") else np.full((*pixels.shape[:2], 1), 255, np.uint8)
    if target.startswith("RGB") and colour.shape[-1] == 1:
        colour = np.repeat(colour, 3, axis=-1)
    return np.concatenate([colour, alpha], axis=-1) if target.endswith("A") else colour


def _png16_mode(head: bytes) -> str | None:
    """The mode of a 16-bit colour PNG from its IHDR (Pillow would drop the low bytes), else None."""
    if not head.startswith(PNG_MAGIC) or head[12:16] != b"IHDR" or len(head) < 26 or head[24] != 16:
        return None
    return _PNG16_COLOUR_TYPES.get(head[25])


def _read_png16(source: Source, mode: str, transparency: object) -> tuple[np.ndarray, str]:
    """A 16-bit colour PNG's first image as (1, H, W, C) uint16.

    Pillow unfilters these at C speed but keeps only the high byte of each sample (pypng keeps
    both but unfilters in Python: seconds per megapixel). So Pillow decodes the same data again
    through another unpacker of the same width: the little-endian one, whose "high" byte is the
    PNG's low byte, or for LA (which Pillow opens as RGBA) plain 8-bit RGBA, which is every byte.
    """
    if mode == "LA;16":
        raw = _decode_as(source, "RGBA").astype(np.uint16)
        return ((raw[..., 0::2] << 8) | raw[..., 1::2])[None], mode
    high, low = (_decode_as(source, f"{mode[:-3]};16{order}") for order in "BL")
    pixels = (high.astype(np.uint16) << 8) | low
    if transparency is not None:  # tRNS: the one 16-bit colour that is transparent
        alpha = np.where((pixels == np.array(transparency, np.uint16)).all(axis=-1), 0, 65535).astype(np.uint16)
        pixels, mode = np.concatenate([pixels, alpha[..., None]], axis=-1), "RGBA;16"
    return pixels[None], mode


def _decode_as(source: Source, rawmode: str) -> np.ndarray:
    """Decode a PNG's pixel data with ``rawmode`` instead of the one Pillow chose (same bits per pixel)."""
    with source.open() as fp, Image.open(fp) as img:
        codec, extents, offset, args = img.tile[0]
        img.tile = [(codec, extents, offset, rawmode if isinstance(args, str) else (rawmode, *args[1:]))]
        img.load()
        return np.asarray(img)
