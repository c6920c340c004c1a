"""The one place that knows the streams, as httpie's ``Environment``.

Whether stdout carries image data (``-o -``) or is a terminal, where the report, progress and
errors go, and what ``-q`` silences. Commands print through it, never through ``print``; they
return an ``errors.ExitStatus``, which ``cli.main`` alone turns into the process's end.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from typing import Any, BinaryIO, TextIO

from ..errors import format_error

REPORT_WIDTH_ENV = "POOLCLI_WIDTH"


@dataclass
class Environment:
    stdin: BinaryIO = field(default_factory=lambda: sys.stdin.buffer)
    stdout: TextIO = field(default_factory=lambda: sys.stdout)
    stderr: TextIO = field(default_factory=lambda: sys.stderr)
    data_on_stdout: bool = False  # -o -: stdout holds image bytes, every human line goes to stderr
    quiet: bool = False
    json: bool = False
    _consoles: dict[str, Any] = field(default_factory=dict)

    @property
    def stdout_bytes(self) -> BinaryIO:
        return getattr(self.stdout, "buffer", self.stdout)  # type: ignore[return-value]

    @property
    def stderr_is_terminal(self) -> bool:
        return _isatty(self.stderr)

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

            width = os.environ.get(REPORT_WIDTH_ENV)
            self._consoles[key] = Console(
                file=stream,
                width=int(width) if width else None,
                highlight=False,
                soft_wrap=False,
            )
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

    def error(self, error: BaseException | str) -> None:
        """The one ``poolcli: error: ...`` line on stderr (never silenced)."""
        line = error if isinstance(error, str) else format_error(error)
        self.stderr.write(line + "\n")
        self.stderr.flush()


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False

