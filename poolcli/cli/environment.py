"""The one place that knows the streams, as httpie's ``Environment``.

Whether stdout carries image data (``-o -``) or is a terminal, where the report, progress and
errors go, and what ``-q`` silences. Commands print through it, never through ``print``; they
return an ``errors.ExitStatus``, which ``cli.main`` alone turns into the process's end.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from ..errors import format_error

REPORT_WIDTH_ENV = "POOLCLI_WIDTH"
NARROWEST = 20  # columns: below this no table, formula or error line can be read


@dataclass
class Environment:
    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    data_on_stdout: bool = False  # -o -: stdout holds image bytes, every human line goes to stderr
    quiet: bool = False
    json: bool = False
    live: Any = None  # a progress bar on stderr while it is shown: lines go above it
    _consoles: dict[str, Any] = field(default_factory=dict)
    _width: tuple[int | None] | None = None

    @property
    def stdout_bytes(self) -> BinaryIO:
        return getattr(self.stdout, "buffer", self.stdout)  # type: ignore[return-value]

    @property
    def stderr_is_terminal(self) -> bool:
        return _isatty(self.stderr)

    @property
    def stdout_is_terminal(self) -> bool:
        return _isatty(self.stdout)

    @property
    def width(self) -> int | None:
        """$POOLCLI_WIDTH as columns, or None (the terminal's). A value that is not a whole number
        of at least NARROWEST columns is ignored with a one-line warning on stderr."""
        if self._width is None:
            text = os.environ.get(REPORT_WIDTH_ENV, "").strip()
            width = int(text) if text.isdigit() else None
            if text and (width is None or width < NARROWEST):
                self.stderr.write(f"poolcli: warning: {REPORT_WIDTH_ENV}={text!r} is not a width of "
                                  f"{NARROWEST} columns or more; using the terminal's\n")
                width = None
            self._width = (width,)
        return self._width[0]

    @property
    def report_stream(self) -> TextIO | None:
        """Where the table goes: stdout, or stderr when stdout carries data; None with -q or --json."""
        if self.quiet:
            return None
        if self.data_on_stdout or self.json:
            return self.stderr
        return self.stdout

    def console(self, stream: TextIO) -> Any:
        """A rich Console on ``stream`` (width from $POOLCLI_WIDTH or the terminal)."""
        key = "err" if stream is self.stderr else "out"
        if key not in self._consoles:
            from rich.console import Console

            self._consoles[key] = Console(file=stream, width=self.width, highlight=False, soft_wrap=False)
        return self._consoles[key]

    def report(self, renderable: Any) -> None:
        """A table or line of the report, unless silenced."""
        stream = self.report_stream
        if stream is not None:
            self.console(stream).print(renderable)

    def info(self, text: str) -> None:
        """A human line that never mixes with data: stderr when stdout carries data."""
        stream = self.report_stream
        if stream is not None:
            self.console(stream).print(text, markup=False, highlight=False)

    def data_line(self, text: str) -> None:
        """A line of data (JSON Lines) on stdout."""
        self.stdout.write(text + "\n")
        self.stdout.flush()

    @contextlib.contextmanager
    def own_stderr(self) -> Iterator[None]:
        """While worker threads decode, fd 2 is kept for poolcli's own lines.

        C decoders print to file descriptor 2 (Pillow's TIFF decoder: "More samples per pixel than
        can be decoded: …"); a decode on the main thread captures that into its file's error line
        (``io.noise``), but with many files decoding in threads a line cannot be told to belong to
        one of them, and it would land between poolcli's own lines. So for a batch, poolcli's lines
        go to a duplicate of the real stderr and fd 2 to the null device; all is put back after.
        """
        try:
            descriptor = self.stderr.fileno()
        except (AttributeError, OSError, ValueError):  # not a file (a test's buffer): nothing reaches it
            descriptor = None
        if descriptor != 2:
            yield
            return
        self.stderr.flush()
        own = os.fdopen(os.dup(2), "w", buffering=1, encoding=getattr(self.stderr, "encoding", None) or "utf-8",
                        errors="backslashreplace")
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, 2)
        os.close(null)
        previous, self.stderr = self.stderr, own
        self._consoles.pop("err", None)
        try:
            yield
        finally:
            own.flush()
            os.dup2(own.fileno(), 2)
            self.stderr = previous
            self._consoles.pop("err", None)
            own.close()

    @contextlib.contextmanager
    def stdout_for_poolcli_only(self, others: TextIO | None = None) -> Iterator[None]:
        """While a library prints to ``sys.stdout`` on its own (Ray's driver prints a lost node's
        "(raylet) … retried" there), those prints go to ``others`` (default: nowhere) and stdout
        keeps poolcli's own lines, the JSON Lines of ``--json`` among them."""
        previous = sys.stdout
        sink = others or open(os.devnull, "w", encoding="utf-8")
        sys.stdout = sink
        try:
            yield
        finally:
            sys.stdout = previous
            if others is None:
                sink.close()

    def error(self, error: BaseException | str) -> None:
        """The one ``poolcli: error: ...`` line on stderr (never silenced); while a progress bar is
        shown, above it, never glued to its line."""
        line = error if isinstance(error, str) else format_error(error)
        if self.live is not None:
            self.live.console.print(line, markup=False, highlight=False, soft_wrap=True)
            return
        self.stderr.write(line + "\n")
        self.stderr.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

