"""Animated GIF and APNG written frame by frame: each frame is encoded and written as it comes,
so a long animation holds only the frame before it (Pillow's ``save_all`` keeps them all). A
frame after the first is written as the rectangle where it differs from the one before, placed
over it (GIF's frame offset, APNG's fcTL offset), its unchanged pixels transparent, which keeps
files small: a window moving over a grid changes a few cells.

The file is written beside its final name and renamed at the end, so a failure leaves no half
file. A GIF's frames share one fixed palette (``palette``): the colours drawn and their blends
with the text colour, so quantizing needs no dithering and the colours stay exact.
"""

from __future__ import annotations

import io
import os
import struct
import zlib
from typing import Any, BinaryIO, Sequence

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
TRANSPARENT = 255  # the GIF palette index of unchanged pixels
KEY_COLOUR = (255, 0, 255)  # its colour, never drawn


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


class AnimationWriter:
    """Frames (RGB Pillow images of one size) with their durations in ms, written as they come."""

    def __init__(self, path: str, size: tuple[int, int]):
        self.path = path
        self.size = size
        self.frames = 0
        self.previous: Any = None
        self.temporary = f"{path}.part{os.getpid()}"
        self.file: BinaryIO = open(self.temporary, "wb")

    def add(self, frame: Any, duration_ms: int) -> None:
        from PIL import ImageChops

        if frame.size != self.size:
            raise ValueError(f"frame of {frame.size} in an animation of {self.size}")
        frame = frame.convert("RGB")
        box, unchanged = (0, 0, *self.size), None
        if self.previous is not None:
            difference = ImageChops.difference(self.previous, frame)
            box = difference.getbbox() or (0, 0, 1, 1)
            unchanged = difference.crop(box).convert("L").point(lambda v: 255 if v == 0 else 0)
        self.write(frame.crop(box), box[:2], unchanged, duration_ms)
        self.previous = frame
        self.frames += 1

    def write(self, part: Any, offset: tuple[int, int], unchanged: Any, duration_ms: int) -> None:
        """Write ``part`` at ``offset``; ``unchanged`` (a mask, None for the first frame) is where it
        equals the frame before."""
        raise NotImplementedError

    def finish(self) -> None:
        self.file.close()

    def close(self) -> int:
        """Finish the file and move it to its name; the number of frames."""
        try:
            self.finish()
        except BaseException:
            self.abort()
            raise
        os.replace(self.temporary, self.path)
        return self.frames

    def abort(self) -> None:
        self.file.close()
        if os.path.exists(self.temporary):
            os.remove(self.temporary)


class GifWriter(AnimationWriter):
    """GIF89a, looping, one global palette."""

    def __init__(self, path: str, size: tuple[int, int], palette: Sequence[tuple[int, int, int]]):
        super().__init__(path, size)
        from PIL import Image

        if len(palette) > TRANSPARENT:
            raise ValueError(f"a GIF palette of {len(palette)} colours leaves no index for transparency")
        flat = [v for colour in palette for v in colour]
        flat += flat[-3:] * (TRANSPARENT - len(palette)) + list(KEY_COLOUR)
        self.palette_image = Image.new("P", (1, 1))
        self.palette_image.putpalette(flat[:768])
        self.started = False

    def write(self, part: Any, offset: tuple[int, int], unchanged: Any, duration_ms: int) -> None:
        from PIL import GifImagePlugin, Image

        indexed = part.quantize(palette=self.palette_image, dither=Image.Dither.NONE)
        if not self.started:
            header, _ = GifImagePlugin.getheader(indexed, None, {"loop": 0, "optimize": False, "duration": duration_ms})
            self.file.writelines(header)
            self.started = True
        params: dict[str, Any] = {"duration": duration_ms, "disposal": 1}
        if unchanged is not None:
            indexed.paste(TRANSPARENT, mask=unchanged)
            params["transparency"] = TRANSPARENT
        self.file.writelines(GifImagePlugin.getdata(indexed, offset, **params))

    def finish(self) -> None:
        self.file.write(b";")
        super().finish()


class ApngWriter(AnimationWriter):
    """An animated PNG (RGB), looping; the frame count in acTL is written when the file closes."""

    def __init__(self, path: str, size: tuple[int, int]):
        super().__init__(path, size)
        width, height = size
        self.file.write(PNG_SIGNATURE)
        self.file.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)))
        self.actl_at = self.file.tell()
        self.file.write(_chunk(b"acTL", struct.pack(">II", 0, 0)))
        self.sequence = 0

    def write(self, part: Any, offset: tuple[int, int], unchanged: Any, duration_ms: int) -> None:
        from PIL import ImageChops

        rgba = part.convert("RGBA")
        if unchanged is not None:  # transparent where unchanged, blended over the frame before
            rgba.putalpha(ImageChops.invert(unchanged))
            rgba = transparent_black(rgba)
        buffer = io.BytesIO()
        rgba.save(buffer, "PNG", compress_level=6)
        data = b"".join(_png_chunks(buffer.getvalue(), b"IDAT"))
        width, height = part.size
        blend = 1 if unchanged is not None else 0  # APNG_BLEND_OP_OVER, or SOURCE for the first frame
        control = struct.pack(">IIIIIHHBB", self.sequence, width, height, offset[0], offset[1],
                              min(duration_ms, 65535), 1000, 0, blend)
        self.file.write(_chunk(b"fcTL", control))
        self.sequence += 1
        if self.frames == 0:
            self.file.write(_chunk(b"IDAT", data))
        else:
            self.file.write(_chunk(b"fdAT", struct.pack(">I", self.sequence) + data))
            self.sequence += 1

    def finish(self) -> None:
        self.file.write(_chunk(b"IEND", b""))
        self.file.seek(self.actl_at)
        self.file.write(_chunk(b"acTL", struct.pack(">II", self.frames, 0)))
        super().finish()


def transparent_black(rgba: Any) -> Any:
    """Transparent pixels as (0, 0, 0, 0), so that they compress to runs of zeros."""
    from PIL import Image

    black = Image.new("RGBA", rgba.size, (0, 0, 0, 0))
    return Image.composite(rgba, black, rgba.getchannel("A"))


def _png_chunks(png: bytes, kind: bytes) -> list[bytes]:
    """The data of every ``kind`` chunk of a PNG file, in order."""
    out, at = [], len(PNG_SIGNATURE)
    while at < len(png):
        (length,) = struct.unpack(">I", png[at:at + 4])
        if png[at + 4:at + 8] == kind:
            out.append(png[at + 8:at + 8 + length])
        at += 12 + length
    return out


FORMATS = {".gif": "GIF", ".png": "APNG"}


def writer_for(path: str, size: tuple[int, int], palette: Sequence[tuple[int, int, int]]) -> AnimationWriter:
    """The writer for a path's extension (``FORMATS``)."""
    extension = os.path.splitext(path)[1].lower()
    if extension == ".gif":
        return GifWriter(path, size, palette)
    if extension == ".png":
        return ApngWriter(path, size)
    raise ValueError(f"no animation format for {extension!r}")
