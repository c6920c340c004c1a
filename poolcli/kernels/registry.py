"""Which function computes each op on one engine: the engines look kernels up by the op's class,
so adding an op to an engine is one decorated function and nothing switches on op names.

>>> table = KernelTable()
>>> @table.kernel(int)
... def double(stage, x, run):
...     return 2 * x
>>> table.apply(7, 21, None)
42
>>> table.missing([7, "text"])
['str']
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

Kernel = Callable[[Any, Any, Any], Any]


class KernelTable:
    """An engine's kernels by op class: ``(stage, x, run) → y``."""

    def __init__(self) -> None:
        self.kernels: dict[type, Kernel] = {}

    def kernel(self, *classes: type) -> Callable[[Kernel], Kernel]:
        """A decorator registering the function as the kernel of every class in ``classes``."""
        def register(function: Kernel) -> Kernel:
            for cls in classes:
                self.kernels[cls] = function
            return function

        return register

    def apply(self, stage: Any, x: Any, run: Any) -> Any:
        return self.kernels[type(stage)](stage, x, run)

    def missing(self, stages: Iterable[Any]) -> list[str]:
        """The ops in ``stages`` this engine has no kernel for (empty: it can run them all)."""
        return [getattr(stage, "op", type(stage).__name__) for stage in stages
                if type(stage) not in self.kernels]
