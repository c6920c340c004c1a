"""An input opened far enough to know what it is: a file, stdin, a pipe or bytes, sniffed.

Every way a path can fail before a decoder sees it (missing, a folder, a broken link, no
permission, a FIFO nobody writes to, an endless device) becomes one ``InputError`` naming it.
What a source holds is told by its first bytes (``kind_of``), not trusted to its name.
"""

from __future__ import annotations

import io
import os
import stat
import sys
from dataclasses import dataclass
from typing import BinaryIO

from ..errors import InputError

MAX_STREAM_BYTES = 1 << 30  # stdin, pipes and devices are read whole; /dev/zero must not eat the memory
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
ZIP_MAGIC = b"PK\x03\x04"
_HEAD_BYTES = 64
_SIGNATURES = (
    (PNG_MAGIC, "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF8", "GIF"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"BM", "BMP"), (b"qoif", "QOI"), (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"8BPS", "PSD"),
)


@dataclass(frozen=True)
class Source:
    """An input opened far enough to sniff it: a regular file stays on disk, anything else in memory."""

    name: str
    path: str | None
    data: bytes | None
    head: bytes

    @property
    def suffix(self) -> str:
        return os.path.splitext(self.name)[1].lower()

    def open(self) -> BinaryIO:
        if self.data is not None:
            return io.BytesIO(self.data)
        try:
            return open(self.path, "rb")  # type: ignore[arg-type]
        except OSError as exc:  # gone or locked since it was sniffed
            raise InputError(f"{self.name}: cannot read: {exc.strerror or exc}", "check the file") from None


def open_source(src: str | os.PathLike | bytes, name: str | None, stdin: BinaryIO | None) -> Source:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return _memory_source(bytes(src), name or "<bytes>")
    path = os.fspath(src)
    if path == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        return _memory_source(_read_stream(stream, name or "-"), name or "-")
    return _file_source(path, name or path)


def _read_stream(stream: BinaryIO, name: str) -> bytes:
    """All of a stream, refusing more than MAX_STREAM_BYTES (a device like /dev/zero never ends)."""
    data = stream.read(MAX_STREAM_BYTES + 1)
    if len(data) > MAX_STREAM_BYTES:
        raise InputError(f"{name}: more than {MAX_STREAM_BYTES >> 20:,} MiB from a stream",
                         "save it to a file and give the file")
    return data


def _memory_source(data: bytes, name: str) -> Source:
    if not data:
        raise InputError(f"{name}: empty input", "nothing was read; pipe an image or array in")
    return Source(name, None, data, data[:_HEAD_BYTES])


def _file_source(path: str, name: str) -> Source:
    """Classify the ways a path can fail before any decoder sees it; a pipe (``<(cmd)``) is read whole.

    The open is non-blocking so that a named pipe nobody writes to (a FIFO in a folder of images)
    reads as empty instead of hanging; reads block again once it is open.
    """
    try:
        descriptor = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        broken_link = os.path.islink(path)
        raise InputError(f"{name}: {'a broken symbolic link' if broken_link else 'No such file'}",
                         "check the path") from None
    except IsADirectoryError:
        raise _is_a_folder(name) from None
    except PermissionError:
        raise InputError(f"{name}: permission denied", "check the file's permissions") from None
    except OSError as exc:  # ELOOP (a symlink loop), ENXIO (a socket), ...
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}", "check the file") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise _is_a_folder(name)
        os.set_blocking(descriptor, True)
        with open(descriptor, "rb", closefd=False) as fp:
            if stat.S_ISREG(mode):
                head, data = fp.read(_HEAD_BYTES), None
            else:
                data = _read_stream(fp, name)
                head = data[:_HEAD_BYTES]
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}", "check the file") from None
    finally:
        os.close(descriptor)
    if not head:
        raise InputError(f"{name}: empty file", "the file has zero bytes")
    return Source(name, path, data, head)


def _is_a_folder(name: str) -> InputError:
    return InputError(f"{name}: is a folder", "give an image file, or -r to read a folder's images")


def kind_of(source: Source) -> str:
    """npy and zip (torch.save) by their magic, text matrices by name, everything else is Pillow's."""
    if source.head.startswith(NPY_MAGIC):
        return "npy"
    if source.suffix in (".pt", ".pth") or (source.head.startswith(ZIP_MAGIC) and not source.suffix):
        return "pt"
    if source.suffix in (".csv", ".txt"):
        return "csv"
    return "image"


def signature_format(head: bytes) -> str | None:
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return "WebP"
    return next((fmt for magic, fmt in _SIGNATURES if head.startswith(magic)), None)
