"""Decoder noise: what Pillow, libtiff and other C decoders say while a file is read.

None of it may reach the user's terminal as it happens (a truncated JPEG warns, libtiff prints
hundreds of lines for some broken TIFFs); it is recorded per decode (``quiet``) so that a
failure's one line can say what the decoder saw. Warning filters and fd 2 are process state:
they are changed only while a decode runs and restored by the last decode out.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import warnings
from collections.abc import Iterator
from typing import BinaryIO

class DecodeLog:
    """What the decoders said while one input was read: Python warnings ("Truncated File Read",
    "Corrupt EXIF data", DecompressionBombWarning, torch's pickle notes), libtiff's messages and
    whatever C code wrote to file descriptor 2. None of it is an error (a file that is really
    bad raises); it is kept so that a failure's one line can say what the decoder saw."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self.stderr_capture: BinaryIO | None = None  # fd 2 while decoding, read back on demand

    def lines(self) -> list[str]:
        """Every distinct message, in order, the captured fd-2 lines last."""
        captured: list[str] = []
        if self.stderr_capture is not None:
            with contextlib.suppress(OSError, ValueError):
                self.stderr_capture.seek(0)
                raw = self.stderr_capture.read(64 * 1024)
                captured = [line.strip() for line in raw.decode("utf-8", "replace").splitlines() if line.strip()]
        return list(dict.fromkeys(self.messages + captured))

    def detail(self, limit: int = 160) -> str:
        """The first messages, shortened to fit the one line (how many more there were, if any)."""
        lines = self.lines()
        if not lines:
            return ""
        text = " ".join(lines[0].split())[:limit]
        return text + (f" (+{len(lines) - 1} more)" if len(lines) > 1 else "")


_decode_logs = threading.local()  # .log: the DecodeLog of the decode running in this thread
_warning_capture_lock = threading.Lock()
_warning_capture_depth = 0
_warning_capture_saved: list = []  # [catch_warnings context, the showwarning it replaced]
_stderr_capture_lock = threading.Lock()
_QUIET_CATEGORIES = (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning)


@contextlib.contextmanager
def quiet(head: bytes = b"") -> Iterator[DecodeLog]:
    """Decode with nothing reaching the user's terminal; yields the log of what decoders said.
    ``head``: the file's first bytes; a TIFF's (``II``/``MM``) installs the libtiff handlers.

    - Python warnings, and what Pillow logs at warning level or above (its TIFF reader logs
      "More samples per pixel than can be decoded"), are recorded into the decoding thread's
      log. Warning filters and the PIL logger are process state, so one capture is installed for
      all threads at once (counted, restored by the last one out); warnings and records from
      threads that are not decoding go where they went before.
    - libtiff prints straight to stderr from C (hundreds of lines for some broken TIFFs): its
      error and warning handlers are replaced once, for good, by one that records (libtiff),
      when the first TIFF is read: only TIFFs reach libtiff, and finding it costs ctypes.util.
    - Anything else C code writes to fd 2 is captured by pointing fd 2 at an anonymous file, only
      in the main thread and when no other capture runs: with worker threads decoding, the main
      thread prints the batch's own error lines and progress to fd 2, and those must not be lost.
    """
    log = DecodeLog()
    enclosing = getattr(_decode_logs, "log", None)
    _decode_logs.log = log
    if head[:2] in (b"II", b"MM"):
        libtiff.install()
    _start_warning_capture()
    try:
        with _stderr_captured(log):
            yield log
    finally:
        _stop_warning_capture()
        _decode_logs.log = enclosing
        if enclosing is not None:
            enclosing.messages.extend(log.lines())


def _start_warning_capture() -> None:
    global _warning_capture_depth
    with _warning_capture_lock:
        if _warning_capture_depth == 0:
            context = warnings.catch_warnings()
            context.__enter__()
            _warning_capture_saved[:] = [context, warnings.showwarning]
            warnings.simplefilter("always")
            warnings.showwarning = _record_warning
            _PILLOW_LOGS.start()
        _warning_capture_depth += 1


def _stop_warning_capture() -> None:
    global _warning_capture_depth
    with _warning_capture_lock:
        _warning_capture_depth -= 1
        if _warning_capture_depth == 0:
            context, _ = _warning_capture_saved
            _warning_capture_saved.clear()
            context.__exit__(None, None, None)
            _PILLOW_LOGS.stop()


class _PillowLogs(logging.Handler):
    """Pillow's log records of warning level and above, into the decoding thread's log while a
    decode runs; a record from another thread is passed on as the PIL logger would have."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self._logger = logging.getLogger("PIL")
        self._propagate = True

    def start(self) -> None:
        self._propagate = self._logger.propagate
        self._logger.addHandler(self)
        self._logger.propagate = False

    def stop(self) -> None:  # not release(): logging.Handler has one, for its lock
        self._logger.removeHandler(self)
        self._logger.propagate = self._propagate

    def emit(self, record: logging.LogRecord) -> None:
        log = getattr(_decode_logs, "log", None)
        if log is not None:
            log.messages.append(record.getMessage())
        elif self._propagate and self._logger.parent is not None:
            self._logger.parent.handle(record)


_PILLOW_LOGS = _PillowLogs()


def _record_warning(message, category, filename, lineno, file=None, line=None) -> None:
    log = getattr(_decode_logs, "log", None)
    if log is not None:
        log.messages.append(f"{category.__name__}: {message}")
    elif _warning_capture_saved and not issubclass(category, _QUIET_CATEGORIES):
        _warning_capture_saved[1](message, category, filename, lineno, file, line)


@contextlib.contextmanager
def _stderr_captured(log: DecodeLog) -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread() or not _stderr_capture_lock.acquire(blocking=False):
        yield
        return
    try:
        try:
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            saved = os.dup(2)
        except OSError:  # no fd 2 at all (a daemon): nothing can reach a terminal
            yield
            return
        capture = _capture_file()
        try:
            os.dup2(capture.fileno(), 2)
            log.stderr_capture = capture
            try:
                yield
            finally:
                os.dup2(saved, 2)
                log.messages = log.lines()  # read back before the file goes
                log.stderr_capture = None
        finally:
            os.close(saved)
            capture.close()
    finally:
        _stderr_capture_lock.release()


def _capture_file() -> BinaryIO:
    """An anonymous file for fd 2 while decoding: in memory where Linux offers it, else a temporary file."""
    if hasattr(os, "memfd_create"):
        with contextlib.suppress(OSError):
            return os.fdopen(os.memfd_create("poolcli-decoder-stderr", getattr(os, "MFD_CLOEXEC", 0)), "w+b")
    import tempfile

    return tempfile.TemporaryFile()


class LibtiffHandlers:
    """libtiff's error and warning handlers, replaced through ctypes by one that records the message
    into the decoding thread's log (outside a decode it is dropped). libtiff formats its messages
    with a va_list, handed on to the C library's vsnprintf as the pointer it is passed as.

    Pillow links libtiff dynamically; the loaded copy is found in /proc/self/maps (Linux) or next
    to Pillow (its wheels bundle it). Where none is found, or ctypes fails, nothing changes and
    only the fd-2 capture remains.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tried = False
        self._keep: list = []  # the library handles and the callback, alive as long as the process

    def install(self) -> None:
        """Once per process; a thread that arrives during the install waits for it to finish."""
        if self._tried:
            return
        with self._lock:
            if not self._tried:
                with contextlib.suppress(Exception):
                    self._install()
                self._tried = True

    @property
    def installed(self) -> bool:
        return bool(self._keep)

    def _install(self) -> None:
        import ctypes
        import ctypes.util

        path = _libtiff_path()
        libc_name = ctypes.util.find_library("c")
        if path is None:
            return
        libtiff, libc = ctypes.CDLL(path), ctypes.CDLL(libc_name)
        libc.vsnprintf.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_char_p, ctypes.c_void_p]
        handler_type = ctypes.CFUNCTYPE(None, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_void_p)

        def record(module: bytes | None, fmt: bytes | None, args: int | None) -> None:
            try:
                log = getattr(_decode_logs, "log", None)
                if log is None or fmt is None:
                    return
                buffer = ctypes.create_string_buffer(512)
                libc.vsnprintf(buffer, len(buffer), fmt, args)
                text = buffer.value.decode("utf-8", "replace")
                where = module.decode("utf-8", "replace") if module else ""
                where = "" if where == "tempfile.tif" else where  # the name Pillow gives every file it hands libtiff
                log.messages.append(f"libtiff: {where + ': ' if where else ''}{text}")
            except BaseException:  # noqa: BLE001 - nothing may escape into C
                pass

        callback = handler_type(record)
        for setter in (libtiff.TIFFSetErrorHandler, libtiff.TIFFSetWarningHandler):
            setter.restype = ctypes.c_void_p
            setter.argtypes = [handler_type]
            setter(callback)
        self._keep = [libtiff, libc, callback]


def _libtiff_path() -> str | None:
    from PIL import _imaging  # noqa: F401 - loads the libtiff Pillow uses

    with contextlib.suppress(OSError):
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip()
                if "libtiff" in os.path.basename(path) and os.path.exists(path):
                    return path
    import glob

    import PIL

    here = os.path.dirname(PIL.__file__)
    for pattern in (os.path.join(here, ".dylibs", "libtiff*"), os.path.join(here, "..", "pillow.libs", "libtiff*")):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    return None


libtiff = LibtiffHandlers()


def reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    kind = type(exc).__name__
    text = text.removeprefix(f"{kind}: ")
    return f"{kind}: {text[:160]}" if text else kind
