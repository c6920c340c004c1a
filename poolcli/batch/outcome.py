"""What happened to each input, and to the batch: the data the report and the JSON records read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..core.plan import Plan
from ..errors import PoolcliError


@dataclass(frozen=True)
class Outcome:
    """One input's result: the JSON record's fields, the plan it ran and what the run measured."""

    input: str
    output: str | None
    status: str  # ok, skipped or error
    error: str | None = None
    device: str | None = None
    plan: Plan | None = None
    seconds: tuple[float, ...] | None = None  # per stage, this input's share of its batch
    normalize: str | None = None  # how the output was brought into range ("none", "auto → minmax", ...)
    engine: str | None = None
    exception: PoolcliError | None = None
    megapixels: float = 0.0
    execution: dict[str, Any] | None = None  # memory.Execution.record(): whole or tiled, and why
    notes: tuple[str, ...] = ()  # lines for under the table (a tiled run says so)

    @classmethod
    def failed(cls, path: str, exc: PoolcliError) -> "Outcome":
        """An input that failed, its error line naming it (DESIGN §3: everything that concerns one
        input fails that input alone, with its name in the line)."""
        exc = naming_input(exc, path)
        return cls(path, None, "error", str(exc), exception=exc)


def naming_input(exc: PoolcliError, path: str) -> PoolcliError:
    """``exc`` with the input's name in front of its message, unless it starts with it already
    (the readers name the file themselves); the same kind of error, so the same exit status.

    >>> from poolcli.errors import PlanError
    >>> str(naming_input(PlanError("maxpool:k=2 on H=1 gives H_out=0", "use a smaller kernel"), "tiny.png"))
    'tiny.png: maxpool:k=2 on H=1 gives H_out=0 — use a smaller kernel'
    """
    if exc.what.startswith(f"{path}:") or exc.what.startswith(f"{path} "):
        return exc
    named = type(exc)(f"{path}: {exc.what}", exc.hint, details=exc.details)
    named.__cause__ = exc
    return named


@dataclass
class Summary:
    """The outcomes of a batch in input order, how long it took, and whether a signal stopped it."""

    outcomes: list[Outcome] = field(default_factory=list)
    total: int = 0
    seconds: float = 0.0
    interrupted: int = 0  # the signal that stopped the batch (SIGINT 2, SIGTERM 15), else 0

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    def as_row(self) -> dict[str, Any]:
        ok = self.count("ok")
        megapixels = sum(o.megapixels for o in self.outcomes)
        seconds = max(self.seconds, 1e-9)
        return {
            "ok": ok,
            "skipped": self.count("skipped"),
            "failed": self.count("error"),
            "seconds": f"{self.seconds:.2f}",
            "images/s": f"{ok / seconds:.1f}",
            "MP/s": f"{megapixels / seconds:.1f}",
        }
