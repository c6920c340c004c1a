"""Errors for people, and the exit statuses they map to.

Every failure that reaches the user is one line on stderr::

    poolcli: error: WHAT — HINT

``PoolcliError`` carries the WHAT, the HINT and the exit status; the CLI formats it with
``format_error`` and exits with ``error.exit_status``. Library code raises these; it never
prints or exits.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Exit statuses of DESIGN.md §5."""

    OK = 0
    ERROR = 1  # a bad input file, a refused input, or a runtime failure
    USAGE = 2  # a usage or spec error
    INTERRUPTED = 130  # SIGINT (128 + 2)
    TERMINATED = 143  # SIGTERM (128 + 15)


class PoolcliError(Exception):
    """A failure explained for people: ``what`` happened and a ``hint`` of what to do."""

    exit_status: ExitStatus = ExitStatus.ERROR

    def __init__(self, what: str, hint: str | None = None, *, details: tuple[str, ...] = ()):
        super().__init__(what)
        self.what = what
        self.hint = hint
        self.details = tuple(details)  # what a decoder said on the way (warnings, libtiff), beyond the one line

    def __str__(self) -> str:
        return f"{self.what} — {self.hint}" if self.hint else self.what

    def __reduce__(self):  # type: ignore[override]
        """Pickled whole (hint and details too): a Ray worker's outcome carries its error back."""
        return _rebuild, (type(self), self.what, self.hint, self.details)


def _rebuild(kind: type, what: str, hint: str | None, details: tuple[str, ...]) -> "PoolcliError":
    return kind(what, hint, details=details)


class UsageError(PoolcliError):
    """A command line that cannot work (conflicting options, a bad value): exit 2."""

    exit_status = ExitStatus.USAGE


class SpecError(UsageError):
    """A stage spec or pipeline file that does not parse or validate: exit 2."""


class PlanError(UsageError):
    """A pipeline that cannot run on the given input shape (a dimension reaches 0): exit 2."""


class InputError(PoolcliError):
    """A bad, missing or refused input file: exit 1 (the rest of a batch goes on)."""

    exit_status = ExitStatus.ERROR


class OutputError(PoolcliError):
    """An output that cannot be written (unwritable folder, disk full, would overwrite an input)."""

    exit_status = ExitStatus.ERROR


class DeviceError(PoolcliError):
    """A device that is not there (``--device cuda`` without CUDA): exit 1."""

    exit_status = ExitStatus.ERROR


def format_error(error: BaseException) -> str:
    """The one line of DESIGN.md §5 for any error.

    >>> format_error(UsageError("--json with -o -", "use --report FILE"))
    'poolcli: error: --json with -o - — use --report FILE'
    """
    text = str(error) if isinstance(error, PoolcliError) else f"{type(error).__name__}: {error}"
    text = " ".join(text.split())  # one line, whatever the message held
    return f"poolcli: error: {text}"
