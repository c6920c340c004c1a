"""Generate the corpus of broken, hostile and odd input files that poolcli must survive (issue 5).

Deterministic and offline: every file is made from the bundled sample_images/ or drawn here,
mutations come from seeded random generators, and the same Pillow writes the same bytes. The
corpus is a few hundred files, so the default test run stays fast; ``--mutations N`` makes the
long run (thousands of truncations and flipped bytes) for ``make fuzz``.

Every file comes with what poolcli must make of it: ``ok`` (decoded and pooled), ``error``
(exactly one ``poolcli: error: FILE: reason`` line, exit 1) or ``either`` (a random mutation
may or may not leave a readable file; it must be one or the other, cleanly). The manifest is
``generated/manifest.json``; the files are under ``generated/corpus/``.

    python tests/corpus/make_corpus.py [--out DIR] [--mutations N]
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import stat
import struct
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import PIL
from PIL import Image

HERE = Path(__file__).resolve().parent
SAMPLES = HERE.parent.parent / "sample_images"
GENERATED = HERE / "generated"
DEFAULT_MUTATIONS = 2  # flipped-byte variants per file and region (header, body) in the default corpus
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass(frozen=True)
class Entry:
    """One corpus file: its path below the corpus folder, what poolcli must make of it, and why."""

    name: str
    expect: str  # ok | error | either
    reason: str = ""  # for errors: a regular expression the error line must match
    note: str = ""  # what the file is
    in_batch: bool = True  # False for what a folder walk never yields (a folder named x.png)
    size: tuple[int, int] | None = None  # (width, height) of a readable image, when known
    exit_alone: int = 1  # the exit status of an error alone: 2 where the pipeline cannot run on it (a spec error)


class Corpus:
    """Collects files and their entries; refuses a name given twice."""

    def __init__(self, root: Path):
        self.root = root
        self.entries: list[Entry] = []
        self._names: set[str] = set()

    def path(self, name: str) -> Path:
        if name in self._names:
            raise ValueError(f"{name}: given twice")
        self._names.add(name)
        path = self.root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def add(self, name: str, data: bytes, expect: str, reason: str = "", note: str = "", **extra) -> None:
        self.path(name).write_bytes(data)
        self.entries.append(Entry(name, expect, reason, note, **extra))

    def add_image(self, name: str, image: Image.Image, note: str = "", **save) -> bool:
        """Save with Pillow; a format or mode this Pillow cannot write is left out (False)."""
        buffer = io.BytesIO()
        try:
            image.save(buffer, format=save.pop("format", None) or _format_for(name), **save)
        except (OSError, ValueError, KeyError, TypeError):
            return False
        size = image.size
        with contextlib.suppress(Exception), Image.open(io.BytesIO(buffer.getvalue())) as reread:
            size = reread.size
        self.add(name, buffer.getvalue(), "ok", note=note or f"{image.mode} image", size=size)
        return True


def _format_for(name: str) -> str:
    extension = os.path.splitext(name)[1].lower()
    return Image.registered_extensions()[extension]


# ------------------------------------------------------------------------------ sources


def _picture(width: int = 48, height: int = 32) -> Image.Image:
    """A small real photograph (a crop of the coffee sample), so codecs see real content."""
    with Image.open(SAMPLES / "coffee.png") as coffee:
        return coffee.convert("RGB").crop((100, 60, 100 + width, 60 + height))


def _encodings() -> dict[str, tuple[str, bytes]]:
    """The small picture in every format worth truncating and flipping: name → (extension, bytes)."""
    picture = _picture()
    made: dict[str, tuple[str, bytes]] = {}
    plans = [
        ("tif-raw", "tif", "TIFF", {}), ("tif-lzw", "tif", "TIFF", {"compression": "tiff_lzw"}),
        ("tif-deflate", "tif", "TIFF", {"compression": "tiff_adobe_deflate"}),
        ("tif-jpeg", "tif", "TIFF", {"compression": "jpeg"}), ("tif-packbits", "tif", "TIFF", {"compression": "packbits"}),
        ("bmp", "bmp", "BMP", {}), ("gif", "gif", "GIF", {}), ("webp", "webp", "WEBP", {"quality": 80}),
        ("webp-lossless", "webp", "WEBP", {"lossless": True}), ("jpg-progressive", "jpg", "JPEG", {"progressive": True}),
        ("tga-rle", "tga", "TGA", {"compression": "tga_rle"}), ("pcx", "pcx", "PCX", {}), ("ico", "ico", "ICO", {}),
        ("ppm", "ppm", "PPM", {}), ("jp2", "jp2", "JPEG2000", {}), ("sgi", "sgi", "SGI", {}), ("qoi", "qoi", "QOI", {}),
    ]
    for name, extension, fmt, options in plans:
        buffer = io.BytesIO()
        try:
            picture.save(buffer, format=fmt, **options)
        except (OSError, ValueError, KeyError):
            continue
        made[name] = (extension, buffer.getvalue())
    return made


def _samples() -> dict[str, tuple[str, bytes]]:
    return {path.stem: (path.suffix.lstrip("."), path.read_bytes())
            for path in sorted(SAMPLES.iterdir()) if path.suffix.lower() in (".png", ".jpg")}


def _rng(*key: object) -> random.Random:
    """A generator seeded by its purpose, so each mutation is the same on every machine."""
    return random.Random(hashlib.sha256(repr(key).encode()).digest())


# ------------------------------------------------------------------------------ truncated


def add_truncated(corpus: Corpus, samples: dict, encodings: dict) -> None:
    for stem, (extension, data) in samples.items():
        cuts = {"8": 8, "33": 33, "100": 100, "25pc": len(data) // 4, "50pc": len(data) // 2,
                "75pc": len(data) * 3 // 4, "minus1": len(data) - 1}
        for label, cut in cuts.items():
            # A PNG missing only its IEND, or a JPEG missing its EOI, may still hold every pixel.
            expect = "either" if label == "minus1" else "error"
            corpus.add(f"truncated/{stem}-{extension}_cut{label}.{extension}", data[:cut], expect,
                       reason="truncated or corrupt|not an image", note=f"{stem}.{extension} cut to {cut} of {len(data)} bytes")
    for stem, (extension, data) in encodings.items():
        for label, cut in {"33": 33, "50pc": len(data) // 2, "90pc": len(data) * 9 // 10, "minus1": len(data) - 1}.items():
            expect = "error" if label in ("33", "50pc") else "either"
            corpus.add(f"truncated/{stem}_cut{label}.{extension}", data[:cut], expect,
                       reason="truncated or corrupt|not an image", note=f"{stem} cut to {cut} of {len(data)} bytes")


# ------------------------------------------------------------------------------ flipped bytes


def flip(data: bytes, rng: random.Random, start: int, stop: int, count: int) -> bytes:
    mutated = bytearray(data)
    for _ in range(count):
        position = rng.randrange(start, max(start + 1, min(stop, len(data))))
        mutated[position] ^= rng.randrange(1, 256)
    return bytes(mutated)


def add_flipped(corpus: Corpus, samples: dict, encodings: dict, mutations: int, folder: str = "flipped") -> None:
    for stem, (extension, data) in {**samples, **encodings}.items():
        for index in range(mutations):
            header = flip(data, _rng("header", stem, index), 0, 64, 1 + index % 3)
            body = flip(data, _rng("body", stem, index), len(data) // 4, len(data), 1 + 4 * (index % 4))
            corpus.add(f"{folder}/{stem}-{extension}_head{index}.{extension}", header, "either", note="bytes flipped in the header")
            corpus.add(f"{folder}/{stem}-{extension}_body{index}.{extension}", body, "either", note="bytes flipped in the body")


# ------------------------------------------------------------------------------ lying headers


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)


def png(width: int, height: int, *, bit_depth: int = 8, colour_type: int = 2, idat: bytes | None = None,
        extra: bytes = b"") -> bytes:
    """A PNG with a valid (CRC-correct) IHDR claiming width × height, so the lie reaches the decoder."""
    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    data = zlib.compress(b"\x00" * 64) if idat is None else idat
    return PNG_SIGNATURE + png_chunk(b"IHDR", ihdr) + extra + png_chunk(b"IDAT", data) + png_chunk(b"IEND", b"")


def _gif_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    _picture(8, 8).convert("P").save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = struct.pack("<HH", width, height)  # the logical screen
    descriptor = 13 + (3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    while data[descriptor] == 0x21:  # extension blocks: introducer, label, sub-blocks up to a 0
        descriptor += 2
        while data[descriptor]:
            descriptor += data[descriptor] + 1
        descriptor += 1
    data[descriptor + 5:descriptor + 9] = struct.pack("<HH", width, height)  # the first image
    return bytes(data)


def _bmp_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    _picture(8, 8).save(buffer, "BMP")
    data = bytearray(buffer.getvalue())
    data[18:26] = struct.pack("<ii", width, height)
    return bytes(data)


def _tiff_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    _picture(8, 8).save(buffer, "TIFF")
    data = bytearray(buffer.getvalue())
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    for index in range(count):
        at = ifd + 2 + 12 * index
        tag, kind = struct.unpack(order + "HH", data[at:at + 4])
        if tag in (256, 257):
            value = width if tag == 256 else height
            data[at + 8:at + 12] = struct.pack(order + ("HH" if kind == 3 else "I"), *((value, 0) if kind == 3 else (value,)))
    return bytes(data)


def _jpeg_claiming(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    _picture(8, 8).save(buffer, "JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5:sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _tiff_pointing_past_the_end() -> bytes:
    data = bytearray(_tiff_claiming(8, 8))
    order = "<" if data[:2] == b"II" else ">"
    (ifd,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[ifd:ifd + 2])
    for index in range(count):
        at = ifd + 2 + 12 * index
        if struct.unpack(order + "H", data[at:at + 2])[0] == 273:  # StripOffsets
            data[at + 8:at + 12] = struct.pack(order + "I", 10_000_000)
    return bytes(data)


def _tiff_with_an_ifd_loop() -> bytes:
    """Two pages whose second IFD points back at the first: a reader that follows it never ends."""
    buffer = io.BytesIO()
    _picture(8, 8).save(buffer, "TIFF", save_all=True, append_images=[_picture(8, 8)])
    data = bytearray(buffer.getvalue())
    order = "<" if data[:2] == b"II" else ">"
    (first,) = struct.unpack(order + "I", data[4:8])
    (count,) = struct.unpack(order + "H", data[first:first + 2])
    (second,) = struct.unpack(order + "I", data[first + 2 + 12 * count:first + 6 + 12 * count])
    (count2,) = struct.unpack(order + "H", data[second:second + 2])
    data[second + 2 + 12 * count2:second + 6 + 12 * count2] = struct.pack(order + "I", first)
    return bytes(data)


def add_lies(corpus: Corpus) -> None:
    over = "over --max-pixels"
    bad = "truncated or corrupt"
    lies = [
        ("lies/png-40000.png", png(40_000, 40_000), over, "IHDR claims 40000×40000, CRC fixed"),
        ("lies/png-0.png", png(0, 0), bad, "IHDR claims 0×0, CRC fixed"),
        ("lies/png-40000x2.png", png(40_000, 2), bad, "IHDR claims 40000×2 (under the limit) with 64 bytes of data"),
        ("lies/png-1bit-40000.png", png(40_000, 40_000, bit_depth=1, colour_type=0), over, "1-bit gray, 40000×40000"),
        ("lies/gif-40000.gif", _gif_claiming(40_000, 40_000), over, "screen and image claim 40000×40000"),
        ("lies/gif-0.gif", _gif_claiming(0, 0), bad, "screen and image claim 0×0"),
        ("lies/bmp-40000.bmp", _bmp_claiming(40_000, 40_000), over, "BITMAPINFOHEADER claims 40000×40000"),
        ("lies/bmp-topdown-40000.bmp", _bmp_claiming(40_000, -40_000), over, "top-down, claims 40000×40000"),
        ("lies/bmp-0.bmp", _bmp_claiming(0, 0), bad, "claims 0×0"),
        ("lies/tif-40000.tif", _tiff_claiming(40_000, 40_000), over, "ImageWidth/ImageLength claim 40000×40000"),
        ("lies/tif-0.tif", _tiff_claiming(0, 0), bad, "claims 0×0"),
        ("lies/jpg-40000.jpg", _jpeg_claiming(40_000, 40_000), over, "SOF0 claims 40000×40000"),
        ("lies/jpg-0.jpg", _jpeg_claiming(0, 0), bad, "SOF0 claims 0×0"),
        ("lies/tif-strip-past-end.tif", _tiff_pointing_past_the_end(), bad, "StripOffsets beyond the end of the file"),
    ]
    for name, data, reason, note in lies:
        corpus.add(name, data, "error", reason=reason, note=note)
    corpus.add("lies/tif-ifd-loop.tif", _tiff_with_an_ifd_loop(), "either", note="the second IFD points back at the first")
    bad_crc = bytearray(png(8, 8))
    bad_crc[29] ^= 0xFF  # the IHDR CRC
    corpus.add("lies/png-bad-ihdr-crc.png", bytes(bad_crc), "error", reason=bad, note="IHDR CRC wrong")
    huge_chunk = PNG_SIGNATURE + png_chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0))
    huge_chunk += struct.pack(">I", 0x7FFFFFF0) + b"zzZz" + b"\x00" * 32
    corpus.add("lies/png-chunk-2gb.png", huge_chunk, "error", reason=bad, note="a chunk claiming 2 GB in a 100-byte file")


# ------------------------------------------------------------------------------ bombs


def add_bombs(corpus: Corpus) -> None:
    """Small files that inflate: IDAT of 6000×6000 zeros (36 MB, under the default limit, so it is
    pooled), and text/ICC chunks over Pillow's limit for them."""
    side = 6000
    rows = zlib.compress((b"\x00" + b"\x00" * side) * side, 9)
    corpus.add("bombs/zlib-6000.png", png(side, side, colour_type=0, idat=rows), "ok",
               note=f"{len(rows):,} bytes of IDAT inflating to {side * side:,} pixels", size=(side, side))
    ztxt = png_chunk(b"zTXt", b"Comment\x00\x00" + zlib.compress(b"A" * 50_000_000, 9))
    corpus.add("bombs/ztxt-50mb.png", png(8, 8, extra=ztxt, idat=zlib.compress(b"\x00" * (8 * 3 + 1) * 8)), "either",
               note="a zTXt chunk inflating to 50 MB")
    iccp = png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * 50_000_000, 9))
    corpus.add("bombs/iccp-50mb.png", png(8, 8, extra=iccp, idat=zlib.compress(b"\x00" * (8 * 3 + 1) * 8)), "either",
               note="an iCCP profile inflating to 50 MB")


# ------------------------------------------------------------------------------ not images


def add_not_images(corpus: Corpus) -> None:
    for extension in ("png", "jpg", "gif", "tif", "bmp", "webp", "npy", "pt", "csv"):
        corpus.add(f"empty/zero-{extension}.{extension}", b"", "error", reason="empty", note="zero bytes")
    texts = {
        "text/readme.png": b"This is not a picture.\n",
        "text/page.jpg": b"<!DOCTYPE html><html><body>404 Not Found</body></html>\n",
        "text/data.gif": b'{"not": "an image"}\n',
        "text/script.tif": b"#!/bin/sh\necho hello\n",
        "text/random.bmp": bytes(_rng("random bytes").randrange(256) for _ in range(4096)),
        "text/utf16.webp": "not an image".encode("utf-16"),
        "text/letters.csv": b"a,b,c\nd,e,f\n",
        "text/ragged.csv": b"1,2,3\n4,5\n",
        "text/garbage.pt": bytes(_rng("garbage pt").randrange(256) for _ in range(1024)),
        "text/zip.pt": b"PK\x03\x04" + bytes(200),
    }
    for name, data in texts.items():
        corpus.add(name, data, "error", reason=r"not an image|not a numeric matrix|not a (plain )?tensor file|truncated or corrupt",
                   note="text or noise under an image or array name")


def add_special(corpus: Corpus) -> None:
    root = corpus.root
    folder = corpus.path("special/x.png")
    folder.mkdir()
    corpus.entries.append(Entry("special/x.png", "error", "is a folder", "an empty folder named x.png", in_batch=False))
    a, b = corpus.path("special/loop-a.png"), corpus.path("special/loop-b.png")
    os.symlink("loop-b.png", a)
    os.symlink("loop-a.png", b)
    for link in (a, b):
        corpus.entries.append(Entry(str(link.relative_to(root)), "error", "Too many levels of symbolic links|cannot read",
                                    "a symlink loop"))
    os.symlink("nowhere.png", corpus.path("special/dangling.png"))
    corpus.entries.append(Entry("special/dangling.png", "error", "broken symbolic link", "a symlink to nothing"))
    good = _picture()
    corpus.add_image("special/real.png", good, note="the target of the links below")
    os.symlink("real.png", corpus.path("special/link-to-real.png"))
    corpus.entries.append(Entry("special/link-to-real.png", "ok", note="a symlink to a good image", size=good.size))
    loop_folder = root / "special" / "loopdir"
    corpus.add_image("special/loopdir/inside.png", good, note="in a folder that links to itself")
    os.symlink(".", loop_folder / "again")
    locked = corpus.path("special/unreadable.png")
    locked.write_bytes((SAMPLES / "odd.png").read_bytes())
    locked.chmod(0)
    corpus.entries.append(Entry("special/unreadable.png", "ok" if IS_ROOT else "error",
                                "" if IS_ROOT else "permission denied",
                                "mode 000 (root reads it anyway)" if IS_ROOT else "mode 000", size=(33, 47)))
    if hasattr(os, "mkfifo"):
        os.mkfifo(corpus.path("special/fifo.png"))
        corpus.entries.append(Entry("special/fifo.png", "error", "empty", "a named pipe nobody writes to"))
    wrong = corpus.path("special/png-named.jpg")
    wrong.write_bytes((SAMPLES / "odd.png").read_bytes())
    corpus.entries.append(Entry("special/png-named.jpg", "ok", note="a PNG under a .jpg name", size=(33, 47)))


# ------------------------------------------------------------------------------ modes and formats


def add_modes(corpus: Corpus) -> None:
    """Every Pillow mode poolcli maps, in each format that stores it."""
    rgb = _picture()
    rng = np.random.default_rng(5)
    gray16 = Image.fromarray(rng.integers(0, 65536, (32, 48), dtype=np.uint16))
    images = {
        "1": rgb.convert("1"), "L": rgb.convert("L"), "LA": rgb.convert("LA"), "P": rgb.convert("P"),
        "RGB": rgb, "RGBA": rgb.convert("RGBA"), "CMYK": rgb.convert("CMYK"), "YCbCr": rgb.convert("YCbCr"),
        "LAB": Image.frombytes("LAB", rgb.size, rng.integers(0, 256, 32 * 48 * 3, dtype=np.uint8).tobytes()), "I": Image.fromarray(rng.integers(-70000, 70000, (32, 48), dtype=np.int32)),
        "I16": gray16, "F": Image.fromarray(rng.standard_normal((32, 48)).astype(np.float32)),
        "PA": rgb.convert("PA"),
    }
    formats = {
        "1": ["png", "bmp", "tif", "gif", "xbm", "msp", "pbm"], "L": ["png", "jpg", "tif", "bmp", "gif", "pgm", "webp", "tga"],
        "LA": ["png", "tif", "tga"], "P": ["png", "gif", "bmp", "tif", "pcx", "tga"], "RGB": ["png", "tif", "dds", "blp", "icns"],
        "RGBA": ["png", "tif", "webp", "tga", "dds"], "CMYK": ["jpg", "tif"], "YCbCr": ["jpg", "tif"], "LAB": ["tif"],
        "I": ["png", "tif"], "I16": ["png", "tif", "pgm"], "F": ["tif", "pfm"], "PA": ["png"],
    }
    for mode, extensions in formats.items():
        for extension in extensions:
            corpus.add_image(f"modes/{mode.lower()}-{extension}.{extension}", images[mode], note=f"mode {mode} as {extension}")
    transparent = rgb.convert("P")
    corpus.add_image("modes/p-transparent-png.png", transparent, transparency=0, note="P with a transparent index")
    corpus.add_image("modes/p-transparent-gif.gif", transparent, transparency=0, note="P with a transparent index")
    special = np.full((32, 48), np.nan, np.float32)
    special[::2] = np.inf
    special[::3] = -np.inf
    corpus.add_image("modes/f-nan-inf-tif.tif", Image.fromarray(special), note="32-bit float TIFF of NaN and ±inf")


def add_same_stems(corpus: Corpus) -> None:
    """One picture under one stem in several formats: a batch writes each, none over another
    (``hopper.ico`` and ``hopper.tga`` both keep their extension: ``hopper.ico.png``)."""
    picture = _picture()
    for extension in ("ico", "dds", "tga", "png", "jpg", "bmp", "gif"):
        corpus.add_image(f"samestem/hopper.{extension}", picture, note=f"the same stem as a {extension}")


def add_sizes(corpus: Corpus) -> None:
    """Pictures too small for a 2×2 pool (a dimension of 1: the pipeline reaches 0) and just large
    enough (a dimension of 2)."""
    for width, height in ((1, 1), (1, 7), (7, 1)):
        corpus.add_image(f"sizes/tiny-{width}x{height}.png", _picture(width, height), note=f"{width}×{height} pixels")
        corpus.entries[-1] = Entry(corpus.entries[-1].name, "error", r"gives [HW]_out=0", f"{width}×{height} pixels",
                                   exit_alone=2)
    for width, height in ((2, 2), (2, 9), (9, 2)):
        corpus.add_image(f"sizes/least-{width}x{height}.png", _picture(width, height), note=f"{width}×{height} pixels")


def add_formats(corpus: Corpus) -> None:
    """Odd formats Pillow reads, animations and pages."""
    picture = _picture()
    for name, options in {"ico.ico": {}, "ppm.ppm": {}, "tga-rle.tga": {"compression": "tga_rle"}, "pcx.pcx": {},
                          "sgi.sgi": {}, "jp2.jp2": {}, "j2k.j2k": {}, "qoi.qoi": {}, "spider.spi": {"format": "SPIDER"},
                          "webp-lossless.webp": {"lossless": True}, "jpg-progressive.jpg": {"progressive": True},
                          "tif-lzw.tif": {"compression": "tiff_lzw"}, "tif-jpeg.tif": {"compression": "jpeg"},
                          "bmp-rle8.bmp": {}}.items():
        image = picture.convert("F") if name.startswith("spider") else picture
        image = picture.convert("P") if name.startswith("bmp-rle8") else image
        corpus.add_image(f"formats/{name}", image, note=f"{name.split('.')[0]}", **options)
    frames = [_picture().rotate(angle) for angle in (0, 90, 180, 270)]
    for name, fmt in (("animated-gif.gif", "GIF"), ("animated-webp.webp", "WEBP"), ("apng.png", "PNG"),
                      ("multipage-tif.tif", "TIFF")):
        corpus.add_image(f"formats/{name}", frames[0], format=fmt, save_all=True, append_images=frames[1:],
                         note=f"{len(frames)} frames")
    corpus.add_image("formats/multipage-sizes-tif.tif", frames[0], format="TIFF", save_all=True,
                     append_images=[_picture(16, 16)], note="pages of different sizes")
    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 16 16\n"
           b"0 0 moveto 16 16 lineto stroke\nshowpage\n%%EOF\n")
    corpus.add("formats/eps.eps", eps, "error", reason="refused: decoding EPS runs Ghostscript.*POOLCLI_ALLOW_GHOSTSCRIPT",
               note="PostScript: decoding would run Ghostscript")
    corpus.add("formats/ps.ps", eps.replace(b" EPSF-3.0", b""), "error",
               reason="refused: decoding EPS runs Ghostscript|not an image", note="plain PostScript")


def _npy_header(text: str) -> bytes:
    """An .npy 1.0 header holding ``text`` as numpy pads it (to 64 bytes, ending in a newline)."""
    body = text.encode("latin1")
    body += b" " * (-(10 + len(body) + 1) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(body)) + body


def add_arrays(corpus: Corpus) -> None:
    rng = np.random.default_rng(7)

    def npy(array: np.ndarray, **kwargs) -> bytes:
        buffer = io.BytesIO()
        np.save(buffer, array, allow_pickle=kwargs.pop("allow_pickle", False))
        return buffer.getvalue()

    good = {
        "hw-float32": rng.random((12, 16), np.float32), "chw-float64": rng.random((3, 12, 16)),
        "nchw-uint8": rng.integers(0, 256, (2, 1, 12, 16), dtype=np.uint8), "int64": rng.integers(-5, 5, (12, 16)),
        "bool": rng.random((12, 16)) > 0.5, "float16": rng.random((12, 16)).astype(np.float16),
        "big-endian": rng.random((12, 16)).astype(">f8"), "fortran": np.asfortranarray(rng.random((12, 16))),
        "nan-inf": np.array([[np.nan, np.inf] * 8, [-np.inf, 0.5] * 8] * 6), "huge-values": np.full((12, 16), 1e300),
    }
    for name, array in good.items():
        corpus.add(f"arrays/{name}.npy", npy(array), "either" if "nan" in name or "huge" in name else "ok",
                   note=f"{array.dtype} {array.shape}")
    bad = {
        "five-d": (npy(rng.random((1, 1, 1, 4, 4))), "5-D array"),
        "one-d": (npy(rng.random(16)), "1-D array"),
        "complex": (npy(rng.random((4, 4)) + 1j), "complex"),
        "empty-shape": (npy(np.zeros((0, 4))), "empty array"),
        "structured": (npy(np.zeros((4, 4), dtype=[("a", "f4"), ("b", "i4")])), "array|give numbers"),
        "object-pickle": (npy(np.array([{"a": 1}, None], dtype=object), allow_pickle=True), "refused: pickled"),
        "truncated": (npy(rng.random((64, 64)))[:300], "truncated"),
        "header-lies": (_npy_header("{'descr': '<f8', 'fortran_order': False, 'shape': (100000, 100000), }") + bytes(16),
                        "truncated .npy: its header promises"),
        "corrupt-header": (b"\x93NUMPY\x01\x00\x20\x00{'descr': <f8, 'shape': (4,4)}    \n" + bytes(128), "corrupt .npy header"),
    }
    for name, (data, reason) in bad.items():
        corpus.add(f"arrays/{name}.npy", data, "error", reason=reason, note="a bad or refused .npy")
    corpus.add("arrays/matrix.csv", b"0,1,2\n3,4,5\n6,7,8\n9,10,11\n", "ok", note="a 4×3 csv matrix")
    corpus.add("arrays/matrix-spaces.txt", b"# a comment\n0 1 2 3\n4 5 6 7\n8 9 10 11\n", "ok", note="whitespace matrix")
    with contextlib.suppress(ImportError):
        import torch

        buffer = io.BytesIO()
        torch.save(torch.arange(48, dtype=torch.float32).reshape(1, 1, 6, 8), buffer)
        corpus.add("arrays/tensor.pt", buffer.getvalue(), "ok", note="a float32 tensor from torch.save")
        buffer = io.BytesIO()
        torch.save({"weights": torch.zeros(2)}, buffer)
        corpus.add("arrays/dict.pt", buffer.getvalue(), "error", reason="not a tensor", note="a dict of tensors")


# ------------------------------------------------------------------------------ building


def build(root: Path, mutations: int = DEFAULT_MUTATIONS) -> list[Entry]:
    """Write the whole corpus into ``root`` (which must be empty or missing); return its entries."""
    root.mkdir(parents=True, exist_ok=True)
    corpus = Corpus(root)
    samples, encodings = _samples(), _encodings()
    add_truncated(corpus, samples, encodings)
    add_flipped(corpus, samples, encodings, mutations)
    add_lies(corpus)
    add_bombs(corpus)
    add_not_images(corpus)
    add_special(corpus)
    add_modes(corpus)
    add_formats(corpus)
    add_same_stems(corpus)
    add_sizes(corpus)
    add_arrays(corpus)
    return corpus.entries


def stamp(mutations: int) -> str:
    """Changes whenever the corpus would: this script, the samples, Pillow, numpy, the user's powers."""
    digest = hashlib.sha256(Path(__file__).read_bytes())
    for path in sorted(SAMPLES.iterdir()):
        digest.update(path.name.encode() + path.read_bytes())
    digest.update(f"{PIL.__version__} {np.__version__} {mutations} {IS_ROOT}".encode())
    return digest.hexdigest()[:16]


def ensure(out: Path = GENERATED, mutations: int = DEFAULT_MUTATIONS) -> tuple[Path, list[Entry]]:
    """The corpus folder and its entries, built once: concurrent test workers wait on a lock and
    reuse what the first one made; a corpus from an older script is rebuilt."""
    import fcntl

    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.json"
    root = out / "corpus"
    with open(out / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        wanted = stamp(mutations)
        with contextlib.suppress(OSError, ValueError, KeyError):
            recorded = json.loads(manifest.read_text())
            if recorded["stamp"] == wanted and root.is_dir():
                return root, [Entry(**{**e, "size": tuple(e["size"]) if e["size"] else None}) for e in recorded["entries"]]
        _remove(root)
        staging = Path(tempfile.mkdtemp(prefix=".corpus-", dir=out))
        entries = build(staging / "corpus", mutations)
        os.replace(staging / "corpus", root)
        staging.rmdir()
        temp = manifest.with_suffix(".tmp")
        temp.write_text(json.dumps({"stamp": wanted, "entries": [asdict(e) for e in entries]}, indent=1))
        os.replace(temp, manifest)
        return root, entries


def _remove(root: Path) -> None:
    if not os.path.lexists(root):
        return
    for folder, _, files in os.walk(root):
        for name in files:  # a mode-000 file stops nothing, but be explicit for non-root runs
            path = os.path.join(folder, name)
            if not os.path.islink(path) and stat.S_ISREG(os.lstat(path).st_mode):
                with contextlib.suppress(OSError):
                    os.chmod(path, 0o600)
    shutil.rmtree(root)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=GENERATED, help="folder for manifest.json and corpus/")
    parser.add_argument("--mutations", type=int, default=DEFAULT_MUTATIONS,
                        help="flipped-byte variants per file and region (the long run uses hundreds)")
    args = parser.parse_args(argv)
    root, entries = ensure(args.out, args.mutations)
    counts = {kind: sum(1 for e in entries if e.expect == kind) for kind in ("ok", "error", "either")}
    print(f"{len(entries)} files in {root}: " + ", ".join(f"{n} {kind}" for kind, n in counts.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
