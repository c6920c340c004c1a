"""What poolcli's own process does to start fast and end fast, in one place, and why.

Three shortcuts reach into other packages or into the process, so they live here, apart from
the library, each with the plain path it falls back to:

- ``use_plain_coercion``: typer 0.2x imports pydantic and builds one ``TypeAdapter`` per option
  before a command runs, which for ``pool``'s forty options costs as much as Pillow takes to
  halve a 12 MP JPEG (benchmarks/results.md, start-up). poolcli's options are all str/int/float/bool (or lists of str), so they are
  converted by ``_plain_value``; any other annotation, or a typer without ``typer._coercion``,
  keeps typer's own conversion.
- ``app_for``: click builds every registered command's options before it parses anything; for
  ``poolcli pool photo.jpg`` one command's options are enough.
- ``exit_now``: after ``import torch`` the interpreter's teardown is a noticeable part of a run; by the time
  a command returns every output is written and reported, so the process ends with ``os._exit``
  once stdout and stderr are flushed.

``configure_process`` sets what only a whole program may set (thread counts, Pillow's global
settings, the C allocator's thresholds); the library never does (DESIGN.md §6).
"""

from __future__ import annotations

import copy
import os
import sys
from typing import Any, NoReturn

_PLAIN_NAMES = {int: "integer", float: "number"}
PLAIN_TYPES = (str, int, float, bool, list[str])


# Commands that compute pixels: the only ones whose memory is worth tuning (the rest start faster without ctypes).
PIXEL_COMMANDS = frozenset({"pool", "conv", "unpool", "run"})

# glibc's mallopt parameters, and what poolcli sets them to (see ``reuse_freed_memory``); the values
# were chosen by measuring page faults over a 1080p batch and the peak memory of a 100 MP picture.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 16 << 20
TRIM_THRESHOLD = 8 << 20


def configure_process(args: list[str] | None = None) -> None:
    """Process-wide settings for poolcli's own process, before any command runs.

    OpenBLAS gets one thread unless the user says otherwise: its pool would start a busy thread
    per core as numpy is imported, taking the second core from the first decode, and poolcli's
    only BLAS call is ``linear`` on LeNet-sized features. Pillow's decoding settings
    (``io.pillow.decoding``: no size limit of its own, one block per image) are set for good, so
    that holding them per file costs nothing. For a command that computes pixels (``args[0]`` in
    ``PIXEL_COMMANDS``) freed memory is kept for the next image (``reuse_freed_memory``).
    """
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from ..io.pillow import settings_for_this_process

    settings_for_this_process()
    if args and args[0] in PIXEL_COMMANDS and not {"--help", "-h"} & set(args):
        reuse_freed_memory()


def reuse_freed_memory() -> bool:
    """Serve blocks up to ``MMAP_THRESHOLD`` (16 MiB) from the C heap and trim the heap only when
    more than ``TRIM_THRESHOLD`` (8 MiB) lies free at its top, so that a batch's next decoded
    picture, its output and Pillow's encoder buffers reuse the memory the previous ones freed
    instead of mapping fresh pages (a page fault and a zeroed page per 4 KiB). glibc only;
    returns whether it took effect.

    Why: a 1080p RGBX picture is an 8 MiB block. glibc's own threshold starts at 128 KiB and
    grows only as mapped blocks are freed, and each worker thread's heap is trimmed as it
    empties, so without this a 200-picture batch maps about 550 fresh pages per picture; with it
    about none (tests/cli/test_startup.py). Larger blocks (a 12 MP or 100 MP picture) stay mapped
    and are returned when freed, so the peak memory of one big picture does not grow. Pillow keeps
    its single block per image (``io.pillow.decoding``): decoded pictures are still shared with
    numpy without a copy.
    """
    import ctypes

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def _plain_value(kind: type, value: Any, param: Any, ctx: Any) -> Any:
    """``value`` as ``kind`` (str, int, float or bool), or click's BadParameter in words; flags
    arrive from click as bools already."""
    from typer._click.exceptions import BadParameter

    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        return value
    if kind in _PLAIN_NAMES and isinstance(value, (str, int)) and not isinstance(value, bool):
        try:
            return kind(value)
        except ValueError:
            pass
    expected = _PLAIN_NAMES.get(kind, kind.__name__)
    raise BadParameter(f"{value!r} is not a valid {expected}", ctx=ctx, param=param)


def use_plain_coercion() -> bool:
    """Convert plain options with ``_plain_value`` instead of typer's pydantic adapters; returns
    whether the shortcut is in place (False: typer changed, and its own conversion runs)."""
    try:
        import typer.core as typer_core
        from typer._coercion import RuntimeParam
    except ImportError:
        return False
    typers_own = getattr(typer_core, "build_runtime_param", None)
    if typers_own is None:
        return False
    if getattr(typers_own, "plain", False):
        return True

    class PlainParam(RuntimeParam):
        def _coerce_value(self, value: Any, param: Any, ctx: Any) -> Any:
            kind = str if self.annotation == list[str] else self.annotation
            if isinstance(value, (list, tuple)):
                return [_plain_value(kind, item, param, ctx) for item in value]
            return _plain_value(kind, value, param, ctx)

    def build_runtime_param(descriptor: Any) -> Any:
        info = descriptor.parameter_info
        if (descriptor.annotation in PLAIN_TYPES and not descriptor.file_annotation
                and getattr(info, "parser", None) is None and getattr(info, "click_type", None) is None
                and getattr(info, "min", None) is None and getattr(info, "max", None) is None):
            return PlainParam(parameter_info=info, annotation=descriptor.annotation)
        return typers_own(descriptor)

    build_runtime_param.plain = True  # type: ignore[attr-defined]
    typer_core.build_runtime_param = build_runtime_param
    return True


def app_for(app: Any, args: list[str]) -> Any:
    """``app``, or a copy that holds only the command ``args`` starts with. Anything else
    (``--help``, a mistyped command) keeps every command, for the list and the suggestions."""
    import typer

    first = args[0] if args else None
    chosen = [info for info in app.registered_commands
              if (info.name or typer.main.get_command_name(info.callback.__name__)) == first]
    if not chosen:
        return app
    narrowed = copy.copy(app)
    narrowed.registered_commands = chosen
    return narrowed


def exit_now(status: int) -> NoReturn:
    """End the process with ``status`` once stdout and stderr are flushed, without the
    interpreter's teardown. Only for poolcli's own process (``cli.main``), never a library call."""
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a reader that went away, or a stream already closed
            pass
    os._exit(status)
