"""Animated GIF and APNG written frame by frame: each frame is encoded and written as it comes,
so a long animation never holds more than one frame (Pillow's ``save_all`` keeps them all).

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


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


class AnimationWriter:
    """Frames (RGB Pillow images of one size) with their durations in ms, written as they come."""

    def __init__(self, path: str, size: tuple[int, int]):
        self.path = path
        self.size = size
        self.frames = 0
        self.temporary = f"{path}.part{os.getpid()}"
        self.file: BinaryIO = open(self.temporary, "wb")

    def add(self, frame: Any, duration_ms: int) -> None:
        if frame.size != self.size:
            raise ValueError(f"frame of {frame.size} in an animation of {self.size}")
        self.write(frame, duration_ms)
        self.frames += 1

    def write(self, frame: Any, duration_ms: int) -> None:
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

        flat = [v for colour in palette for v in colour]
        flat += flat[-3:] * (256 - len(palette))
        self.palette_image = Image.new("P", (1, 1))
        self.palette_image.putpalette(flat[:768])
        self.started = False

    def write(self, frame: Any, duration_ms: int) -> None:
        from PIL import GifImagePlugin, Image

        indexed = frame.quantize(palette=self.palette_image, dither=Image.Dither.NONE)
        if not self.started:
            header, _ = GifImagePlugin.getheader(indexed, None, {"loop": 0, "optimize": False, "duration": duration_ms})
            self.file.writelines(header)
            self.started = True
        self.file.writelines(GifImagePlugin.getdata(indexed, duration=duration_ms))

    def finish(self) -> None:
        self.file.write(b";")
        super().finish()


class ApngWriter(AnimationWriter):
    """An animated PNG (RGB), looping; the frame count in acTL is written when the file closes."""

    def __init__(self, path: str, size: tuple[int, int]):
        super().__init__(path, size)
        width, height = size
        self.file.write(PNG_SIGNATURE)
        self.file.write(_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)))
        self.actl_at = self.file.tell()
        self.file.write(_chunk(b"acTL", struct.pack(">II", 0, 0)))
        self.sequence = 0

    def write(self, frame: Any, duration_ms: int) -> None:
        buffer = io.BytesIO()
        frame.convert("RGB").save(buffer, "PNG", compress_level=9)
        data = b"".join(_png_chunks(buffer.getvalue(), b"IDAT"))
        width, height = self.size
        control = struct.pack(">IIIIIHHBB", self.sequence, width, height, 0, 0, min(duration_ms, 65535), 1000, 0, 0)
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
