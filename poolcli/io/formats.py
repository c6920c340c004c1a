"""The one format table: every file format poolcli writes, its names, extensions and abilities.

Readers sniff what they read (``sources``); this table decides what is written and how an
output file is named. ``output_format`` is how ``--format`` and an output's extension become a
format, once per run::

    >>> output_format("small.jpg"), output_format("x.npy"), output_format("-"), output_format(None, "tif")
    ('jpeg', 'npy', 'png', 'tiff')
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError


@dataclass(frozen=True)
class Format:
    """One output format: ``exact`` formats hold the float tensor itself (never quantized)."""

    name: str
    extensions: tuple[str, ...]  # the first is what a batch names its outputs with
    pillow: str | None = None  # Pillow's format name, for pictures
    exact: bool = False  # .npy, .pt, .csv: the values themselves
    frames: bool = False  # holds several frames (GIF, TIFF, WebP, PNG as APNG)
    alpha: bool = True  # keeps an alpha channel
    sixteen_bits: bool = False  # keeps 16-bit pixels (gray and colour PNG, gray TIFF)


FORMATS: dict[str, Format] = {f.name: f for f in (
    Format("png", (".png", ".apng"), "PNG", frames=True, sixteen_bits=True),
    Format("jpeg", (".jpg", ".jpeg", ".jpe", ".jfif"), "JPEG", alpha=False),
    Format("webp", (".webp",), "WEBP", frames=True),
    Format("tiff", (".tif", ".tiff"), "TIFF", frames=True, sixteen_bits=True),
    Format("bmp", (".bmp",), "BMP", alpha=False),
    Format("gif", (".gif",), "GIF", frames=True),
    Format("npy", (".npy",), exact=True),
    Format("pt", (".pt", ".pth"), exact=True),
    Format("csv", (".csv", ".txt"), exact=True),
)}
ALIASES = {"jpg": "jpeg", "tif": "tiff", "txt": "csv"}
BY_EXTENSION = {extension: f.name for f in FORMATS.values() for extension in f.extensions}
NAMES = tuple(FORMATS)


def format_named(name: str) -> Format:
    """``--format`` as a Format (``jpg``, ``.tif`` and ``TXT`` are accepted), or a UsageError."""
    key = name.lower().lstrip(".")
    key = ALIASES.get(key, key)
    if key not in FORMATS:
        raise UsageError(f"--format {name!r} is not a format poolcli writes", f"use one of {', '.join(NAMES)}")
    return FORMATS[key]


def output_format(path: str | os.PathLike | None, format_option: str | None = None) -> str:
    """The format to write: ``--format`` wins, else the extension, else (no extension, stdout) png.

    An extension poolcli cannot write is a UsageError rather than PNG bytes under a wrong name.
    """
    if format_option:
        return format_named(format_option).name
    if path is None or os.fspath(path) == "-":
        return "png"
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if not extension:
        return "png"
    if extension not in BY_EXTENSION:
        raise UsageError(f"{os.fspath(path)}: poolcli cannot write {extension} files",
                         "use --format, or a .png, .jpg, .webp, .tif, .bmp, .gif, .npy, .pt or .csv name")
    return BY_EXTENSION[extension]


def writable_extension(extension: str) -> bool:
    """Whether an input's extension names a format poolcli writes (``.jpg`` yes, ``.ico`` no)."""
    return extension.lower() in BY_EXTENSION
