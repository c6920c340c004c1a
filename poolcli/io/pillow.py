"""Pillow's process-wide settings while poolcli decodes, and zero-copy views of its buffers.

Two of Pillow's settings are global: ``Image.MAX_IMAGE_PIXELS`` (its decompression-bomb check,
which ``--max-pixels`` replaces: poolcli checks the header against its own limit first) and its
allocator (one block per image, so that ``shared_pixels`` can hand the decoded buffer to numpy
without a copy). A library must not leave them changed, so ``decoding()`` holds them only while
a decode runs, counted across threads, and the last decode out puts back what it found. The
CLI's own process sets them once at start-up, which makes holding them free.
"""

from __future__ import annotations

import contextlib
import functools
import threading
from collections.abc import Iterator
from typing import Any, Callable

from PIL import Image


class NumpyOnFirstUse:
    """Stands for numpy in a module's namespace until a function there first needs it, then puts
    the module in its place (no cost per call after that).

    Why: reading a header (``poolcli shape IMAGE``, ``info``) needs no numpy, and a decode needs
    only Pillow, whose decoders release the GIL, so numpy's import can run on
    another thread during the first decode instead of before it. Use: ``np = NumpyOnFirstUse(globals())``.
    """

    def __init__(self, namespace: dict[str, Any]):
        self._namespace = namespace

    def __getattr__(self, name: str) -> Any:
        import numpy

        self._namespace["np"] = numpy
        return getattr(numpy, name)


np: Any = NumpyOnFirstUse(globals())


class ProcessSetting:
    """A process-wide setting held at ``value`` while any caller is inside ``held()``, and put
    back as it was found when the last one leaves. Nested and concurrent holds are counted."""

    def __init__(self, get: Callable[[], Any], put: Callable[[Any], None], value: Any):
        self._get, self._put, self._value = get, put, value
        self._lock = threading.Lock()
        self._depth = 0
        self._saved: Any = None

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._saved = self._get()
                if self._saved != self._value:
                    self._put(self._value)
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved != self._value:
                    self._put(self._saved)


def _set_max_pixels(value: int | None) -> None:
    Image.MAX_IMAGE_PIXELS = value


_NO_PILLOW_LIMIT = ProcessSetting(lambda: Image.MAX_IMAGE_PIXELS, _set_max_pixels, None)


_SINGLE_BLOCK = hasattr(Image.core, "set_use_block_allocator") and hasattr(Image.core, "get_use_block_allocator")
_BLOCK_LIMIT = 1 << 31  # Pillow's single blocks stop below 2 GiB; bigger images need its chunks
_allocator_lock = threading.Lock()


@contextlib.contextmanager
def allocator_for(image: Image.Image) -> Iterator[None]:
    """Pillow's chunked allocator while ``image`` (over 2 GiB at 4 bytes a pixel) is allocated,
    its single blocks otherwise. The setting is global: an image decoded meanwhile in another
    thread may come out chunked, and is then copied instead of shared."""
    width, height = image.size
    if not _SINGLE_BLOCK or width * height * 4 < _BLOCK_LIMIT:
        yield
        return
    with _allocator_lock:
        previous = Image.core.get_use_block_allocator()
        Image.core.set_use_block_allocator(0)
        try:
            yield
        finally:
            Image.core.set_use_block_allocator(previous)


_SHARED_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}  # Pillow keeps RGB as 4 bytes a pixel, the 4th unused


def shared_pixels(image: Image.Image) -> np.ndarray | None:
    """An L, RGB or RGBA image's pixels as an (H, W, C) uint8 view of Pillow's own buffer, or None
    where Pillow cannot share it (another mode, or memory in several blocks).

    Why: ``np.asarray(image)`` packs the pixels into a new buffer, a second copy of the decoded
    image (36 MB for a 12 MP photo, 300 MB for a 100 MP scan). Pillow exports a
    single-block image through the Arrow C data interface without a copy; the view keeps the
    export, and with it Pillow's memory, alive. Pillow's single-block allocator, on while
    ``decoding()`` holds it, makes every image a single block.

    >>> with decoding():
    ...     rgb = Image.new("RGB", (3, 2), (10, 20, 30))
    >>> view = shared_pixels(rgb)
    >>> view.shape, view[1, 2].tolist(), np.array_equal(view, np.asarray(rgb))
    ((2, 3, 3), [10, 20, 30], True)
    """
    channels = _SHARED_CHANNELS.get(image.mode)
    if channels is None or not hasattr(image, "__arrow_c_array__") or not image.im.isblock():
        return None
    import ctypes

    try:
        _, capsule = image.__arrow_c_array__()
    except (ValueError, OSError):
        return None
    get_pointer = ctypes.pythonapi.PyCapsule_GetPointer
    get_pointer.restype, get_pointer.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    array = _arrow_array_type().from_address(get_pointer(capsule, b"arrow_array"))
    if image.mode != "L":  # a fixed-size list of 4 uint8: the bytes are its one child's
        array = array.children[0].contents
    width, height = image.size
    size = width * height * (1 if image.mode == "L" else 4)
    if array.length != size or array.n_buffers != 2:
        return None
    memory = (ctypes.c_uint8 * size).from_address(array.buffers[1])
    memory.export = capsule  # Pillow frees the buffer when the export is released
    pixels = np.frombuffer(memory, np.uint8).reshape(height, width, -1)
    return pixels if pixels.shape[-1] == channels else pixels[..., :channels]


@functools.cache
def _arrow_array_type():
    """ctypes' view of the Arrow C data interface's ``struct ArrowArray`` (a stable ABI)."""
    import ctypes

    class ArrowArray(ctypes.Structure):
        pass

    ArrowArray._fields_ = [
        ("length", ctypes.c_int64), ("null_count", ctypes.c_int64), ("offset", ctypes.c_int64),
        ("n_buffers", ctypes.c_int64), ("n_children", ctypes.c_int64),
        ("buffers", ctypes.POINTER(ctypes.c_void_p)), ("children", ctypes.POINTER(ctypes.POINTER(ArrowArray))),
        ("dictionary", ctypes.c_void_p), ("release", ctypes.c_void_p), ("private_data", ctypes.c_void_p),
    ]
    return ArrowArray


_SINGLE_BLOCKS = ProcessSetting(
    (lambda: Image.core.get_use_block_allocator()) if _SINGLE_BLOCK else (lambda: 1),
    (lambda on: Image.core.set_use_block_allocator(on)) if _SINGLE_BLOCK else (lambda on: None),
    1,
)


@contextlib.contextmanager
def decoding() -> Iterator[None]:
    """Pillow as poolcli decodes: no size limit of its own (``--max-pixels`` is checked from the
    header instead, at the user's limit), and one memory block per image (``shared_pixels``)."""
    with _NO_PILLOW_LIMIT.held(), _SINGLE_BLOCKS.held():
        yield


def settings_for_this_process() -> None:
    """The CLI's process, once at start-up: ``decoding()``'s settings for good, so holding them
    costs nothing per file. Never called by the library."""
    _set_max_pixels(None)
    if _SINGLE_BLOCK:
        Image.core.set_use_block_allocator(1)
